"""Bad samples: each has a kind; training skips and counts them, strict mode fails at the first."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from enum import Enum

log = logging.getLogger("vlm.data")


class BadSampleKind(str, Enum):
    MISSING_IMAGE = "missing_image"
    CORRUPT_IMAGE = "corrupt_image"
    OVERSIZED_IMAGE = "oversized_image"
    PATH_ESCAPE = "path_escape"
    MALFORMED_RECORD = "malformed_record"
    BAD_CONVERSATION = "bad_conversation"
    IMAGE_COUNT_MISMATCH = "image_count_mismatch"
    TOO_LONG = "too_long"


class BadSample(ValueError):
    """A sample that cannot be used; carries its id and kind."""

    def __init__(self, kind: BadSampleKind, sample_id: str, detail: str):
        super().__init__(f"bad sample {sample_id!r} ({kind.value}): {detail}")
        self.kind, self.sample_id, self.detail = kind, sample_id, detail

    def __reduce__(self):  # picklable, so DataLoader workers can hand bad samples to the main process
        return (type(self), (self.kind, self.sample_id, self.detail))


class BadSampleLog:
    """Counts bad samples by kind and keeps a few examples of each; ``strict`` re-raises the first."""

    def __init__(self, strict: bool = False, examples_per_kind: int = 3):
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self._keep = examples_per_kind

    def record(self, error: BadSample) -> None:
        if self.strict:
            raise error
        self.counts[error.kind.value] += 1
        if len(self.examples[error.kind.value]) < self._keep:
            self.examples[error.kind.value].append(str(error))
        log.warning("skipped %s", error)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "no bad samples"
        lines = [f"{self.total} bad samples skipped:"]
        for kind, n in sorted(self.counts.items()):
            lines.append(f"  {kind}: {n}  e.g. {self.examples[kind][0]}")
        return "\n".join(lines)
