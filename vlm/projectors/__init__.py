"""Projectors (connectors): the seam (`base.py`) and one module per kind. Members register themselves;
`PROJECTORS` imports this package's modules on first lookup."""
