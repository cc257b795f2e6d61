"""The performance table, ours vs HF Llava with identical weights: `python bench/run.py`."""

import sys

from vlm.benchmarks.suite import main

if __name__ == "__main__":
    sys.exit(main())
