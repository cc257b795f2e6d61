"""The ``vlm.plugins`` entry point of the shapes world: registers its data sources and eval tasks."""

from vlm.shapes import benchmarks, dataset, hallucination, patch_probe  # noqa: F401
