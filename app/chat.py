"""The chat demo: `python app/chat.py --model PATH` (same as `vlm chat --model PATH`; `--cli` for a terminal)."""

import sys

from vlm.chat.main import main

if __name__ == "__main__":
    sys.exit(main())
