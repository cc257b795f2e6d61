"""The local cache (``$VLM_CACHE``, default ``~/.cache/vlm``): folders built once, like downloads."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BUILT: dict[str, float] = {}  # folder name -> seconds it took to build, for the folders this process built


def cache_root() -> Path:
    return Path(os.environ.get("VLM_CACHE") or Path.home() / ".cache" / "vlm")


def cached_folder(final: Path, write: Callable[[Path], None]) -> Path:
    """``final``, written by ``write(folder)`` on first use: into a temporary folder beside it, then
    renamed into place, so readers never see a half-written folder and concurrent builders are safe."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    start = time.perf_counter()
    try:
        write(tmp)
        os.replace(tmp, final)
        BUILT[final.name] = time.perf_counter() - start
    except OSError:
        if not final.is_dir():
            raise
        # another process finished first; its folder is identical, keep it
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
