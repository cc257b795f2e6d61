"""Stage kinds, one module each (`base.py` is the seam); `STAGES` imports this package's modules on first
lookup, so a new kind is one new file here."""
