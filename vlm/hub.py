"""Resolve a part argument (a named part, a local folder or a Hugging Face hub id) to a local folder.

Named parts (``PARTS``) each come with a function that returns their folder (writing it on first use):
the config-only ``shape-…`` parts of `vlm.published` (the papers' backbones at their true shapes, no
weights), and what plugins register, e.g. the tiny backbones of `vlm.tiny`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download

from vlm.registry import Registry

# Seconds to wait for the hub before giving up; a real download only starts once it has answered.
# (huggingface_hub may spend up to 3 s more, once per process, fetching its agent registry.)
HUB_PROBE_TIMEOUT = 3.0
# Weight formats transformers does not load into torch models; skipped when downloading.
IGNORE_PATTERNS = [
    "*.msgpack",
    "*.h5",
    "*.ot",
    "*.onnx",
    "*.tflite",
    "*.gguf",
    "onnx/*",
    "original/*",
    "coreml/*",
]

PARTS: Registry[Callable[[], Path]] = Registry("named part", package="vlm.published")


class PartNotFoundError(FileNotFoundError):
    """A part argument is neither a named part, a local folder, a cached hub repo nor downloadable."""


def resolve_part(name_or_path: str) -> Path:
    """The local folder for a named part, an existing directory or a hub repo id."""
    if "/" not in name_or_path and name_or_path in PARTS:
        return PARTS.get(name_or_path)()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.absolute()

    try:
        return Path(snapshot_download(name_or_path, local_files_only=True))
    except ValueError as error:  # not a valid repo id (HFValidationError)
        hub = f"it is not a valid hub id ({_one_line(error)})"
    except FileNotFoundError:  # LocalEntryNotFoundError
        hub = _download(name_or_path)
        if isinstance(hub, Path):
            return hub

    raise PartNotFoundError(
        f"Cannot find part {name_or_path!r}: it is not a named part "
        f"({', '.join(PARTS.keys())}), not a local folder ({path.absolute()}), "
        f"not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and {hub}."
    )


def _download(repo_id: str) -> Path | str:
    """The downloaded snapshot of ``repo_id``, or why the hub could not provide it."""
    if _offline():
        return "the hub was not tried because offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)"
    try:
        # A quick probe first: snapshot_download's own look-up waits up to 10 s on a silent network.
        HfApi().repo_info(repo_id, timeout=HUB_PROBE_TIMEOUT)
        return Path(snapshot_download(repo_id, ignore_patterns=IGNORE_PATTERNS))
    except Exception as error:  # any failure means the hub cannot provide it; the reason is reported
        return f"the hub could not provide it ({type(error).__name__}: {_one_line(error)})"


def _offline() -> bool:
    # huggingface_hub reads the variable once at import; tests and users may set it later.
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or value.upper() in {"1", "ON", "YES", "TRUE"}


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else repr(error)
