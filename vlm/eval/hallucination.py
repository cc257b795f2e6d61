"""Hallucination probes on the synthetic world (held-out test scenes), for preference recipes.

POPE: the ``synthetic_pope`` task of `vlm eval` (per scene, three categories with one present and
one absent object each), scored as LLaVA's POPE script does.
Yes/no AUC: the same POPE questions scored without decoding: per split, the ROC AUC of
``logit(yes) - logit(no)`` at the answer's first token between present and absent objects. Accuracy,
F1 and yes-ratio mix the model's yes/no bias with whether it tells present from absent; the AUC is
the second alone (0.5: the answer does not depend on what is in the image).
CHAIR-style: greedy captions; every "<colour> <shape>" they mention is checked against the scene
(CHAIR_i = hallucinated mentions / mentions, CHAIR_s = captions with any, recall = objects named).

    python -m vlm.eval.hallucination BEFORE_DIR AFTER_DIR --out pope.json [--n 100] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from vlm.data.synthetic import COLOURS, SHAPES, SyntheticWorld
from vlm.eval.generate import first_token_margins, generate_answers


def pope_probe(model_dir: Path, limit: int | None = None, out: Path | None = None) -> dict:
    """The ``synthetic_pope`` task through `vlm eval` (first ``limit`` questions): per split and
    ``mean``, accuracy, precision, recall, F1, yes-ratio, as LLaVA's POPE script scores them."""
    from vlm.eval.runner import EvalSettings, evaluate

    out = out or Path(model_dir).parent / f"{Path(model_dir).name}-eval"
    settings = EvalSettings(str(model_dir), ["synthetic_pope"], limit=limit, out=str(out))
    return evaluate(settings)["results"]["synthetic_pope"]["breakdown"]


def roc_auc(positive: list[float], negative: list[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney U from mid-ranks,
    so memory stays linear in the number of scores)."""
    scores = torch.tensor(list(positive) + list(negative), dtype=torch.float64)
    order = scores.argsort()
    _, group, counts = torch.unique_consecutive(scores[order], return_inverse=True, return_counts=True)
    mid_ranks = counts.cumsum(0).double() - (counts.double() - 1) / 2  # 1-based mean rank of each tie group
    ranks = torch.empty_like(scores)
    ranks[order] = mid_ranks[group]
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def yes_no_auc(model_dir: Path, n_images: int = 100, image_size: int = 256, batch_size: int = 32) -> dict:
    """Per POPE split (and ``mean``): AUC of ``logit(yes) - logit(no)``, present vs absent objects."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    world = SyntheticWorld("test", image_size)
    probes = [(rec, i) for i in range(n_images) for rec in world.records(i, "pope")]
    prompts = [([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _question(rec)}]}],
                [world.image(i)]) for rec, i in probes]
    margins = first_token_margins(model, processor, prompts, "yes", "no", batch_size)
    out = {}
    for split in ("random", "popular", "adversarial"):
        rows = [(m, rec["answer"]) for m, (rec, _) in zip(margins, probes, strict=True) if rec["category"] == split]
        out[split] = roc_auc([m for m, a in rows if a == "yes"], [m for m, a in rows if a == "no"])
    out["mean"] = sum(out.values()) / 3
    return out


def _question(record: dict) -> str:
    return record["conversations"][0]["value"].replace("<image>", "").strip()


_MENTION = re.compile(rf"\b({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})")


def chair_probe(model_dir: Path, n_images: int = 200, image_size: int = 256, batch_size: int = 32) -> dict:
    """CHAIR-style caption hallucination: ``chair_i``, ``chair_s``, ``recall`` and ``mentions``."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    world = SyntheticWorld("test", image_size)
    message = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image briefly."}]}]
    prompts = [(message, [world.image(i)]) for i in range(n_images)]
    captions = generate_answers(model, processor, prompts, batch_size=batch_size, max_new_tokens=48)
    mentions = hallucinated = bad_captions = named = objects = 0
    for i, caption in enumerate(captions):
        present = {o.name for o in world.scene(i).objects}
        said = {" ".join(m) for m in _MENTION.findall(caption.lower())}
        mentions, hallucinated = mentions + len(said), hallucinated + len(said - present)
        bad_captions += bool(said - present)
        named, objects = named + len(said & present), objects + len(present)
    return {"chair_i": hallucinated / max(mentions, 1), "chair_s": bad_captions / n_images,
            "recall": named / max(objects, 1), "mentions": mentions, "example": captions[0]}


def compare(before: Path, after: Path, out: Path, n_images: int = 100, image_size: int = 256) -> dict:
    """Probe both models, write ``out`` (JSON) and return ``{"before": report, "after": report, ...}``
    (POPE reports on the first ``n_images`` scenes, 6 questions each, under ``before``/``after``;
    yes/no AUCs under ``auc_before``/``auc_after``; CHAIR-style ones under ``chair_before``/``chair_after``)."""
    probes = out.parent / f"{out.stem}-eval"
    result = {"before": pope_probe(before, 6 * n_images, probes / "before"),
              "after": pope_probe(after, 6 * n_images, probes / "after"),
              "auc_before": yes_no_auc(before, n_images, image_size),
              "auc_after": yes_no_auc(after, n_images, image_size),
              "chair_before": chair_probe(before, n_images, image_size),
              "chair_after": chair_probe(after, n_images, image_size),
              "n_images": n_images, "before_model": str(before), "after_model": str(after)}
    out.write_text(json.dumps(result, indent=1))
    return result


def table(result: dict) -> str:
    keys = ("accuracy", "precision", "recall", "f1", "yes_ratio")
    lines = [f"{'POPE (mean of 3 splits)':<26}" + "".join(f"{k:>11}" for k in keys)]
    for name in ("before", "after"):
        lines.append(f"{name:<26}" + "".join(f"{100 * result[name]['mean'][k]:>11.1f}" for k in keys))
    splits = ("random", "popular", "adversarial", "mean")
    lines.append(f"{'yes/no AUC x100':<26}" + "".join(f"{k:>12}" for k in splits))
    for name in ("before", "after"):
        lines.append(f"{name:<26}" + "".join(f"{100 * result[f'auc_{name}'][k]:>12.1f}" for k in splits))
    lines.append(f"{'captions (CHAIR-style)':<26}" + "".join(f"{k:>11}" for k in ("chair_i", "chair_s", "recall")))
    for name in ("before", "after"):
        chair = result[f"chair_{name}"]
        lines.append(f"{name:<26}" + "".join(f"{100 * chair[k]:>11.1f}" for k in ("chair_i", "chair_s", "recall")))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vlm.eval.hallucination", description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    print(table(compare(args.before, args.after, args.out, args.n, args.size)))


if __name__ == "__main__":
    main()
