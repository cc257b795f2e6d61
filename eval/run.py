"""`python eval/run.py --model PATH --tasks a,b,c` is `vlm eval run --model PATH --tasks a,b,c`."""

import sys

from vlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", "run", *sys.argv[1:]]))
