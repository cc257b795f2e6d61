"""Checking corpora as training reads them, and preparing the paper presets' mixture files; offline, on
your files only.

`scan` reads every record of a LLaVA JSON/JSONL file through `vlm.data.sources` (so exactly what
training would skip) and checks its images (existence, or ``decode``: what `load_image` does in
training), counting bad samples by kind and missing images per top-level folder. `prepare` scans the
known corpora under a root laid out as `data/README.md` shows and writes the mixture YAMLs the presets
read (``vlm data check`` and ``vlm data prepare``).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.images import load_image, resolve_in_root
from vlm.data.sources import LlavaJsonDataset

# The corpora the paper presets read, as laid out under ROOT (LLaVA's `playground/data`, with ShareGPT4V's
# annotations in `sharegpt4v/`): name -> (annotation file, the folder its image paths are relative to).
CORPORA = {
    "llava_pretrain_558k": ("LLaVA-Pretrain/blip_laion_cc_sbu_558k.json", "LLaVA-Pretrain/images"),
    "llava_v1_5_mix665k": ("llava_v1_5_mix665k.json", "."),
    "sharegpt4v_pt_1246k": ("sharegpt4v/share-captioner_coco_lcs_sam_1246k_1107.json", "."),
    "sharegpt4v_cap100k": ("sharegpt4v/sharegpt4v_instruct_gpt4-vision_cap100k.json", "."),
}
# The mixture files the presets read (`vlm train RECIPE --preset paper`) -> the corpora each holds.
MIXTURES = {
    "llava15_pretrain.yaml": ["llava_pretrain_558k"],
    "llava15_finetune.yaml": ["llava_v1_5_mix665k"],
    "convllava_stage1.yaml": ["sharegpt4v_pt_1246k"],
    "convllava_stage2.yaml": ["sharegpt4v_pt_1246k", "sharegpt4v_cap100k", "llava_pretrain_558k"],
}
OTHER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif")


@dataclass
class Report:
    path: Path
    image_root: Path
    records: int = 0
    bad: Counter = field(default_factory=Counter)
    bad_ids: dict[str, list[str]] = field(default_factory=dict)  # the first few sample ids of each kind
    images: Counter = field(default_factory=Counter)  # referenced, per top-level folder
    missing: Counter = field(default_factory=Counter)
    other_extension: int = 0  # missing, but present under another extension (ocr_vqa's .gif/.png)
    decoded: bool = False

    def add_bad(self, kind: str, sample_id: str) -> None:
        self.bad[kind] += 1
        if len(self.bad_ids.setdefault(kind, [])) < 5:
            self.bad_ids[kind].append(sample_id)

    def lines(self) -> list[str]:
        good = self.records - sum(self.bad.values())
        out = [f"{self.path}  (images under {self.image_root})", f"  records: {self.records}, usable: {good}"]
        out += [f"  bad {kind}: {n} (e.g. {', '.join(self.bad_ids.get(kind, []))})" for kind, n in sorted(self.bad.items())]
        for folder, n in sorted(self.images.items(), key=lambda kv: (-self.missing[kv[0]], kv[0]))[:20]:
            out.append(f"  images {folder}/: {n} referenced, {self.missing[folder]} missing")
        if len(self.images) > 20:
            out.append(
                f"  ... {len(self.images) - 20} more folders, {sum(self.missing.values())} missing in all"
            )
        if self.other_extension:
            out.append(f"  {self.other_extension} missing images exist with another extension: convert them")
        if not self.decoded:
            out.append("  (images checked for existence only; --decode also decodes them)")
        return out


def scan(path: Path, image_root: Path, decode: bool = False, workers: int = 8) -> Report:
    """Validate every record of one annotation file the way training reads it."""
    dataset = LlavaJsonDataset(path, image_root)
    report = Report(path, image_root, records=len(dataset), decoded=decode)
    checks: list[tuple[str, str, int]] = []  # (image ref, sample id, index) of valid records
    for index in range(len(dataset)):
        try:
            sample_id, _, refs = dataset.parse(index)
            checks += [(ref, sample_id, index) for ref in refs]
        except BadSample as bad:
            report.add_bad(bad.kind.value, bad.sample_id)
    bad_images: dict[int, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        kinds = list(pool.map(lambda check: _check(*check[:2], image_root, decode), checks))
    for (ref, sample_id, index), kind in zip(checks, kinds, strict=True):
        folder = ref.split("/")[0] if isinstance(ref, str) and "/" in ref else "."
        report.images[folder] += 1
        if kind is BadSampleKind.MISSING_IMAGE:
            report.missing[folder] += 1
            report.other_extension += _has_other_extension(image_root / ref)
        if kind is not None:
            bad_images.setdefault(index, (kind.value, sample_id))  # a sample counts once, by its first bad image
    for kind, sample_id in bad_images.values():
        report.add_bad(kind, sample_id)
    return report


def _check(ref: str, sample_id: str, root: Path, decode: bool) -> BadSampleKind | None:
    try:
        if decode:
            load_image(ref, root, sample_id)
        elif not resolve_in_root(ref, root, sample_id).is_file():
            return BadSampleKind.MISSING_IMAGE
    except BadSample as bad:
        return bad.kind
    return None


def _has_other_extension(path: Path) -> bool:
    return any(path.with_suffix(ext).is_file() for ext in OTHER_EXTENSIONS if ext != path.suffix)


def prepare(root: Path, out: Path | None = None, decode: bool = False, workers: int = 8) -> tuple[list[Report], list[Path]]:
    """Check every known corpus under ``root`` as training reads it, then write each preset's mixture YAML
    whose corpora are all there (into ``out``, default ``root``); returns the reports and the YAMLs."""
    out = out or root
    found = {name: (root / file, root / images) for name, (file, images) in CORPORA.items() if (root / file).is_file()}
    reports = {name: scan(path, images, decode, workers) for name, (path, images) in found.items()}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for target, names in MIXTURES.items():
        if all(name in found for name in names):
            entries = [{"path": os.path.relpath(found[n][0], out), "image_root": os.path.relpath(found[n][1], out),
                        "sampling": "all"} for n in names]
            (out / target).write_text(f"# written by vlm data prepare\n{yaml.safe_dump({'datasets': entries})}")
            written.append(out / target)
    return list(reports.values()), written


def missing(root: Path) -> list[str]:
    """The known corpora not under ``root``, as the path each is looked for at."""
    return [f"{name}: {root / file}" for name, (file, _) in CORPORA.items() if not (root / file).is_file()]
