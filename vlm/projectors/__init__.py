"""Projectors (connectors). Importing this package registers every member."""

from vlm.projectors import compress, ldp, mlp, resampler  # noqa: F401
from vlm.projectors.base import PROJECTORS, Projector

__all__ = ["PROJECTORS", "Projector"]
