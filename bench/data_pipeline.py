"""Data-pipeline samples/s next to the model's step time: `python bench/data_pipeline.py`."""

from vlm.benchmarks.data_pipeline import main

if __name__ == "__main__":
    main()
