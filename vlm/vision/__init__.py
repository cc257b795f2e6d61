"""Vision encoders: the seam (`base.py`), one module per family, S² and fused wrappers, and where
encoders come from (`sources.py`). Members register themselves; the registries import this package's
modules on first lookup."""
