"""Eval throughput, batched vs batch size 1: `python bench/eval_throughput.py`."""

from vlm.benchmarks.eval_throughput import main

if __name__ == "__main__":
    main()
