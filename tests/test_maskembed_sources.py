"""MaskEmbed on open_clip and timm ViTs: the masks' numerics against the libraries' own models, a short
stage run in the loop, and the aligned student saved in the library's format (loaded by open_clip / timm
themselves, by our `open_clip:` / `timm:` sources and as a VLM's vision part)."""

import json

import numpy as np
import open_clip
import pytest
import timm
import torch
from safetensors.torch import load_file
from timm.models import save_for_hf

from vlm.build import BuildSpec, build
from vlm.data.maskembed import MaskedImages
from vlm.shapes.patch_probe import patch_probe
from vlm.shapes.world import SyntheticWorld
from vlm.tiny.backbone import tiny_path
from vlm.tiny.pretrain_image_level import pretrain_image_level
from vlm.train.config import DataConfig, OptimConfig, RunConfig, StageConfig
from vlm.train.engine import make_accelerator
from vlm.train.fit import FitConfig
from vlm.train.loop import train_stage
from vlm.train.observe import MetricsLog
from vlm.train.stages.maskembed import MaskEmbedStage
from vlm.vision.sources import vision_source

TRAIN = {"vision": "full"}


@pytest.fixture(scope="module")
def timm_registers(tmp_path_factory):
    """timm's test_vit with two register tokens (prefix = CLS + 2) in timm's HF layout."""
    out = tmp_path_factory.mktemp("timm-registers")
    args = dict(img_size=64, patch_size=8, num_classes=10, reg_tokens=2)
    torch.manual_seed(0)
    save_for_hf(timm.create_model("test_vit", **args), out, model_args=args, safe_serialization=True,
                data_config={"input_size": (3, 64, 64)})
    return out


def _folder(name, request):
    return request.getfixturevalue("timm_registers") if name == "timm-registers" else tiny_path(name)


def _library_model(folder):
    """The folder loaded by its own library (no vlm code) and the module whose output is the last block's tokens."""
    if (folder / "open_clip_config.json").is_file():
        model = open_clip.create_model(f"local-dir:{folder}").eval()
        return model, model.visual.transformer.resblocks[-1], model.encode_image
    config = json.loads((folder / "config.json").read_text())
    model = timm.create_model(config["architecture"], pretrained=True, **config["model_args"],
                              pretrained_cfg_overlay={"file": str(folder / "model.safetensors")}).eval()
    return model, model.blocks[-1], model


def _last_block_tokens(folder, pixels):
    _, block, run = _library_model(folder)
    seen = []
    handle = block.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        run(pixels)
    handle.remove()
    return seen[0]


def _mean_std(folder):
    if (folder / "open_clip_config.json").is_file():
        cfg = json.loads((folder / "open_clip_config.json").read_text())["preprocess_cfg"]
    else:
        cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    return torch.tensor(cfg["mean"]).view(3, 1, 1), torch.tensor(cfg["std"]).view(3, 1, 1)


def _stage(n_images=4, steps=0):
    return MaskEmbedStage(StageConfig(
        name="maskembed", kind="maskembed", train=TRAIN, data=DataConfig(n_images=n_images, image_size=64),
        optim=OptimConfig(lr=1e-3, betas=[0.9, 0.95], weight_decay=0.01, warmup_ratio=0.0),
        batch_size=2, max_steps=steps, group_by_length=False, save_every=0, log_every=1,
    ))


@pytest.mark.parametrize("name,prefix", [("tiny-open_clip-vit", 1), ("tiny-timm-vit", 1), ("timm-registers", 3)])
def test_masks_act_on_normalised_pixels_and_student_tokens(name, prefix, request):
    folder = _folder(name, request)
    stage = _stage()
    model = stage.prepare(stage.load(folder))
    data = stage.dataset(stage.load_processor(folder), seed=0)
    batch = MaskedImages.collate([data[i] for i in range(2)])
    pixels, masks = batch["pixel_values"], batch["masks"]

    # pixels: the library's mean/std on [0, 1] RGB (64 px scenes, the towers' own size)
    mean, std = _mean_std(folder)
    world = SyntheticWorld("train", 64)
    for i in range(2):
        rgb = torch.from_numpy(np.asarray(world.image(i), dtype=np.float32) / 255).permute(2, 0, 1)
        assert torch.allclose(pixels[i], (rgb - mean) / std, atol=1e-5)

    # the teacher's input: each view's masked 8 px patches zeroed after normalisation, the rest untouched
    masked = pixels.repeat_interleave(3, 0).clone()
    for view, m in enumerate(masks.reshape(6, 64)):
        for patch in torch.nonzero(m == 0).flatten().tolist():
            row, col = divmod(patch, 8)
            masked[view, :, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8] = 0
    target = _last_block_tokens(folder, masked)
    assert target.shape == (6, prefix + 64, 64)

    # the decoder's input: the student's tokens (= the library's, before training) x m, prefix zeroed
    seen = []
    model.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    loss = stage.loss(model, batch, torch.tensor(6.0))
    student = _last_block_tokens(folder, pixels).repeat_interleave(3, 0)
    keep = torch.cat([torch.zeros(6, prefix), masks.reshape(6, 64)], 1).unsqueeze(-1)
    assert (seen[0][:, :prefix] == 0).all()
    assert torch.allclose(seen[0], student * keep, atol=1e-5)
    with torch.no_grad():
        reconstruction = model.decoder(seen[0])
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(reconstruction, target).item(), rel=1e-4)
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in stage.teacher.parameters())
    assert sum(p.grad.abs().sum() for p in model.vision_tower.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("name", ["tiny-open_clip-vit", "tiny-timm-vit"])
def test_short_stage_run_trains_the_student_and_saves_the_library_format(name, tmp_path):
    folder = tiny_path(name)
    run = RunConfig(output_dir=str(tmp_path), tracker="none", seed=0)
    accelerator = make_accelerator(run, tmp_path)
    stage = _stage(n_images=8, steps=4)
    out = train_stage(accelerator, stage, folder, tmp_path / "stage", tmp_path / "model", run,
                      MetricsLog(accelerator, tmp_path))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(np.isfinite(losses))

    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folder.iterdir())  # the same layout
    weights = "open_clip_model.safetensors" if name.startswith("tiny-open_clip") else "model.safetensors"
    before, after = load_file(folder / weights), load_file(out / weights)
    assert before.keys() == after.keys()
    tower = "visual." if name.startswith("tiny-open_clip") else ""
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(tower) for k in changed)  # only the image tower trained
    assert not any(k.startswith(("text", "token_embedding", "head.")) for k in changed)  # text tower, head kept
    teacher = {k.removeprefix("visual."): v for k, v in before.items() if k.startswith(tower)}
    held = (stage.teacher.visual if tower else stage.teacher.model).state_dict()
    assert all(torch.equal(held[k], teacher[k]) for k in held)  # the teacher is the untouched original
    _library_model(out)  # open_clip.create_model / timm.create_model load it strictly


@pytest.mark.parametrize("name", ["tiny-open_clip-vit", "tiny-timm-vit"])
def test_aligned_student_loads_everywhere_with_its_features(name, tmp_path):
    folder = tiny_path(name)
    stage = _stage()
    model = stage.prepare(stage.load(folder))
    data = stage.dataset(stage.load_processor(folder), seed=0)
    batch = MaskedImages.collate([data[i] for i in range(2)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        stage.loss(model, batch, torch.tensor(6.0)).backward()
        optimizer.step()
        optimizer.zero_grad()
    pixels = batch["pixel_values"]
    with torch.no_grad():
        student = model.vision_tower(pixels)
    assert not torch.allclose(student, _last_block_tokens(folder, pixels), atol=1e-3)  # it did train

    stage.finish(model).save_pretrained(tmp_path / "aligned")
    aligned = tmp_path / "aligned"
    assert torch.allclose(_last_block_tokens(aligned, pixels), student, atol=1e-5)  # the library's own loader
    kind = "open_clip" if name.startswith("tiny-open_clip") else "timm"
    assert vision_source(f"{kind}:local-dir:{aligned}").weights is not None
    vlm, _ = build(BuildSpec(vision=str(aligned), llm="tiny-llama", vision_feature_layer=-1,
                             vision_feature_select_strategy="full"))
    with torch.no_grad():
        assert torch.allclose(vlm.vision_tower(pixels), student, atol=1e-5)  # --model.vision DIR


def test_recipe_helpers_keep_the_open_clip_format(tmp_path):
    """tiny-open_clip-vit-image-level: image-level pretraining saves an open_clip
    folder (open_clip loads it, its image tower changed, its text tower kept) and the patch probe reads it."""
    folder = tiny_path("tiny-open_clip-vit")
    report = pretrain_image_level(folder, tmp_path, FitConfig(steps=3, batch_size=4, warmup=1))
    assert np.isfinite(report["last_loss"]) and (tmp_path / "pretrain.json").is_file()
    before, after = load_file(folder / "open_clip_model.safetensors"), load_file(tmp_path / "open_clip_model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("visual.") for k in changed)
    open_clip.create_model(f"local-dir:{tmp_path}")
    scores = patch_probe(tmp_path, steps=3, batch_size=4, eval_images=4)
    assert set(scores) == {"colour", "shape", "centre_shape", "box_l1"} and scores["box_l1"] >= 0.0
    assert all(0.0 <= scores[k] <= 1.0 for k in ("colour", "shape", "centre_shape"))
