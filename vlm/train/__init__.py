"""Staged training: recipes of stages over one accelerate loop (`loop.py`); stage kinds in `stages/`."""
