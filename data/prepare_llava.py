"""Check a downloaded LLaVA-format corpus and write mixture YAMLs for it; offline, on your files only.

    python data/prepare_llava.py ROOT [--json FILE ...] [--image-root DIR] [--out DIR] [--decode]

For each annotation file (``--json``, else the known LLaVA/ShareGPT4V files found under ROOT, else
every top-level *.json/*.jsonl) it counts records, bad records by kind (through `vlm.data.sources`,
so exactly what training would skip), and referenced/missing images per top-level image folder.
``--decode`` also fully decodes every image (slow: what `load_image` does in training). Then it
writes ``pretrain.yaml`` / ``finetune.yaml`` (known caption / instruction files) and
``mixture.yaml`` (anything else) into ``--out`` (default ROOT), loadable with
`vlm.data.mixture.load_mixture`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.images import load_image, resolve_in_root
from vlm.data.sources import LlavaJsonDataset

STAGES = {
    "blip_laion_cc_sbu_558k.json": "pretrain",
    "share-captioner_coco_lcs_sam_1246k_1107.json": "pretrain",
    "sharegpt4v_instruct_gpt4-vision_cap100k.json": "pretrain",
    "llava_v1_5_mix665k.json": "finetune",
    "sharegpt4v_mix665k_cap23k_coco-ap9k_lcs3k_sam9k_div2k.json": "finetune",
}
OTHER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif")


@dataclass
class Report:
    path: Path
    image_root: Path
    records: int = 0
    bad: Counter = field(default_factory=Counter)
    images: Counter = field(default_factory=Counter)  # referenced, per top-level folder
    missing: Counter = field(default_factory=Counter)
    other_extension: int = 0  # missing, but present under another extension (ocr_vqa's .gif/.png)
    decoded: bool = False

    def lines(self) -> list[str]:
        good = self.records - sum(self.bad.values())
        out = [f"{self.path}  (images under {self.image_root})", f"  records: {self.records}, usable: {good}"]
        out += [f"  bad {kind}: {n}" for kind, n in sorted(self.bad.items())]
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
            report.bad[bad.kind.value] += 1
    bad_images: dict[int, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        kinds = list(pool.map(lambda check: _check(*check[:2], image_root, decode), checks))
    for (ref, _, index), kind in zip(checks, kinds, strict=True):
        folder = ref.split("/")[0] if isinstance(ref, str) and "/" in ref else "."
        report.images[folder] += 1
        if kind is BadSampleKind.MISSING_IMAGE:
            report.missing[folder] += 1
            report.other_extension += _has_other_extension(image_root / ref)
        if kind is not None:
            bad_images.setdefault(index, kind.value)  # a sample counts once, by its first bad image
    report.bad.update(bad_images.values())
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


def guess_image_root(path: Path, candidates: list[Path], probe: int = 200) -> Path:
    """The candidate under which most of the first ``probe`` image references exist."""
    dataset = LlavaJsonDataset(path, path.parent)
    refs: list[str] = []
    for index in range(min(len(dataset), probe * 5)):
        try:
            refs += [r for r in dataset.parse(index)[2] if isinstance(r, str)]
        except BadSample:
            continue
        if len(refs) >= probe:
            break
    return max(candidates, key=lambda root: sum((root / r).is_file() for r in refs[:probe]))


def find_annotations(root: Path) -> list[Path]:
    known = [p for name in STAGES for p in sorted(root.rglob(name))]
    return known or sorted(p for p in root.iterdir() if p.suffix in (".json", ".jsonl"))


def write_mixtures(reports: list[Report], out: Path) -> list[Path]:
    """One YAML per stage, paths relative to the YAML's folder."""
    stages: dict[str, list[dict]] = {}
    for report in reports:
        entry = {
            "path": os.path.relpath(report.path, out),
            "image_root": os.path.relpath(report.image_root, out),
            "sampling": "all",
        }
        stages.setdefault(STAGES.get(report.path.name, "mixture"), []).append(entry)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stage, entries in stages.items():
        target = out / f"{stage}.yaml"
        target.write_text(f"# written by data/prepare_llava.py\n{yaml.safe_dump({'datasets': entries})}")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the downloaded folder")
    parser.add_argument("--json", type=Path, nargs="*", help="annotation files (default: found under ROOT)")
    parser.add_argument("--image-root", type=Path, help="image folder (default: guessed per file)")
    parser.add_argument("--out", type=Path, help="where the YAMLs go (default: ROOT)")
    parser.add_argument("--decode", action="store_true", help="fully decode every image (slow)")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    files = [p.resolve() for p in args.json] if args.json else find_annotations(root)
    if not files:
        print(f"no annotation files under {root}", file=sys.stderr)
        return 1
    reports = []
    for path in files:
        candidates = [path.parent, path.parent / "images", root, root / "images"]
        image_root = args.image_root.resolve() if args.image_root else guess_image_root(path, candidates)
        reports.append(scan(path, image_root, args.decode, args.workers))
        print("\n".join(reports[-1].lines()))
    for target in write_mixtures(reports, (args.out or root).resolve()):
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
