"""High-resolution strategies (``high_res``): the seam (`base.py`) and one module per strategy. Members
register themselves; `HIGH_RES` imports this package's modules on first lookup."""
