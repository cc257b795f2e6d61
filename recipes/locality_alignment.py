"""Locality alignment (MaskEmbed, Covert et al. 2024) of a ViT, then VLMs with and without it.

    python recipes/locality_alignment.py                    # everything below, RUN = runs/locality
    python recipes/locality_alignment.py --vision tiny-open_clip-vit   # the same from an open_clip ViT
    accelerate launch --use_deepspeed --zero_stage 2 --num_processes 2 recipes/locality_alignment.py \
        --align_only --encoder DIR                          # only the maskembed stage, on any engine

1. RUN/encoder-image-level/: ``--vision`` (a tiny ViT backbone, default tiny-clip) pre-trained with an
   image-level objective (pooled CLS: colours/shapes present, object count), as CLIP is: patch tokens
   are never asked for local content.
2. The ``maskembed`` stage aligns it (teacher on masked images, student + 2-block decoder, masks
   m / 1-m / ones, MSE) -> RUN/model/, an encoder folder in the input's format (transformers,
   open_clip or timm).
3. A LLaVA-1.5-style VLM (recipes/llava15.py, last-layer features) on each encoder ->
   RUN/vlm-unaligned/, RUN/vlm-aligned/ with held-out VQA (spatial) and grounding Acc@0.5.
4. RUN/locality.json: the patch-level linear probe (colour per patch, shape per object centre) of
   both encoders and the VLM scores side by side.
"""

import json
import subprocess
import sys
from pathlib import Path

from vlm.build import BuildSpec
from vlm.train.config import DataConfig, MaskEmbedConfig, OptimConfig, Recipe, RunConfig, StageConfig
from vlm.train.recipe import resolve, run_recipe

HERE = Path(__file__).resolve().parent
DEFAULT = Recipe(
    name="locality_alignment",
    model=BuildSpec(vision="tiny-clip"),  # not built: the stage starts from the encoder folder
    stages=[
        StageConfig(
            name="maskembed", kind="maskembed", train={"vision": "full", "projector": "full", "llm": "frozen"},
            data=DataConfig(n_images=4800, image_size=64),
            maskembed=MaskEmbedConfig(decoder_layers=2, decoder_heads=4),
            optim=OptimConfig(lr=3e-4, betas=[0.9, 0.95], weight_decay=0.01, schedule="cosine", max_grad_norm=1.0),
            batch_size=32, group_by_length=False, max_steps=300, save_every=100, log_every=10,
        ),
    ],
    run=RunConfig(output_dir="runs/locality", eval_limit=0),
)
VLM_ARGS = [  # a short llava15 run: align (projector) then instruct on VQA + grounding
    "--model.vision_feature_layer", "-1", "--run.tracker", "none", "--run.eval_tasks", "synthetic_vqa,synthetic_ref",
    "--stages.align.data.n_images", "1000", "--stages.align.max_steps", "60",
    "--stages.instruct.data.tasks", "vqa,ground", "--stages.instruct.data.n_images", "1500",
    "--stages.instruct.max_steps", "400", "--stages.instruct.optim.lr", "1e-3",
]


def _take(argv: list[str], flag: str, default: str | None = None) -> tuple[str | None, list[str]]:
    """The value after ``flag`` (or ``default``) and ``argv`` without them."""
    if flag not in argv:
        return default, argv
    i = argv.index(flag)
    if i + 1 == len(argv):
        raise SystemExit(f"{flag} needs a value")
    return argv[i + 1], argv[:i] + argv[i + 2 :]


def main(argv: list[str]) -> None:
    align_only = "--align_only" in argv
    argv = [a for a in argv if a != "--align_only"]
    encoder, argv = _take(argv, "--encoder")
    encoder = Path(encoder) if encoder else None
    vision, argv = _take(argv, "--vision", "tiny-clip")
    recipe = resolve(DEFAULT, {}, argv)
    run_dir = Path(recipe.run.output_dir)
    if encoder is None:
        from vlm.tiny import tiny_path
        from vlm.train.locality import pretrain_image_level

        encoder = run_dir / "encoder-image-level"
        if not encoder.is_dir():
            run_dir.mkdir(parents=True, exist_ok=True)
            tmp = run_dir / ".tmp-encoder-image-level"
            tmp.mkdir(exist_ok=True)
            pretrain_image_level(tiny_path(vision), tmp)
            tmp.rename(encoder)
    recipe.run.start_from = str(encoder)
    aligned = run_recipe(recipe)
    if align_only:
        return
    from vlm.train.locality import patch_probe

    result = {"encoder": str(encoder), "aligned": str(aligned)}
    for name, enc in (("unaligned", encoder), ("aligned", aligned)):
        out = run_dir / f"vlm-{name}"
        if not (out / "eval.json").is_file():
            cmd = [sys.executable, str(HERE / "llava15.py"), "--run.output_dir", str(out), "--model.vision", str(enc),
                   *VLM_ARGS, *(["--resume"] if out.is_dir() else [])]
            subprocess.run(cmd, check=True)
        evaluated = json.loads((out / "eval.json").read_text())["results"]
        vqa, ref = evaluated["synthetic_vqa"], evaluated["synthetic_ref"]
        result[name] = {
            "patch_probe": patch_probe(enc),
            "vqa_spatial": vqa["breakdown"]["spatial"]["accuracy"], "vqa_overall": vqa["metrics"]["accuracy"],
            "grounding_acc@0.5": ref["metrics"]["acc@0.5"],
        }
    (run_dir / "locality.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
