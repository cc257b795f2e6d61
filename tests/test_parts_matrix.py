"""The parts matrix (`vlm.parts.matrix`): every encoder example x projector x high-res strategy.

Each combination is built with `vlm.build.build` (keys that only re-size another key's class on a few
encoders): a training step and generation on two aspect ratios, placeholders == scattered features ==
layout count, and the export it gets. The refusals the code makes by design and the native exports are
listed here, and the README's parts table must be the one `vlm.parts.table` renders from the matrix.
"""

import difflib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

import vlm.build
from vlm.build import build, resolve_vision
from vlm.cli import main as cli
from vlm.export import HF_TARGETS, NotExportableError, export_hf
from vlm.highres.base import HIGH_RES
from vlm.parts.matrix import ENCODER_EXAMPLES, VLM_FORMAT, Combination, combinations, verdict
from vlm.parts.table import END, REGENERATE, START, readme_block, render, stale
from vlm.projectors.base import PROJECTORS
from vlm.tiny.backbone import TINY_BACKBONES, self_trained, tiny_path
from vlm.vision.base import VISION_ENCODERS

SIZES = [(40, 96), (80, 48)]  # (height, width): wide and tall, so anyres and tiles pick different grids
ALL_ENCODERS, ALL_MODES = tuple(ENCODER_EXAMPLES), tuple(HIGH_RES.keys())
CLS_KEPT = "tiny-clip (full: CLS kept)"
SPATIAL = tuple(k for k in PROJECTORS.keys() if PROJECTORS.get(k).needs_grid)  # built on the token grid
QUERIES = tuple(k for k in PROJECTORS.keys() if not PROJECTORS.get(k).keeps_grid)  # learned queries, no grid place

# Refused by design: (encoders, projectors, high_res modes) -> the error they must get.
REFUSED = [
    ((CLS_KEPT,), SPATIAL, ALL_MODES, r"needs exactly 8x8=64 patch tokens, got 65 \(1 prefix tokens .* use 'default'"),
    ((CLS_KEPT,), tuple(k for k in PROJECTORS.keys() if k not in SPATIAL + QUERIES), ("anyres",),
     r"anyres lays tiles out on a square token grid, but a tile gives 65 tokens"),
    (ALL_ENCODERS, QUERIES, ("anyres",),
     r"high_res='anyres' rejoins each image's tiles on their token grid, but projector 'resampler\d*' emits learned queries"),
]
LLAVA, LLAVA_NEXT = "LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration"
# Native transformers exports; everything else that builds stays in the vlm format.
EXPORTS = {
    **{(e, p, "none"): LLAVA for e in ("tiny-clip", "tiny-siglip", CLS_KEPT) for p in ("linear", "mlp2x_gelu")},
    **{(e, p, "anyres"): LLAVA_NEXT for e in ("tiny-clip", "tiny-siglip") for p in ("linear", "mlp2x_gelu")},
}
HF_CLASSES = {LLAVA: LlavaForConditionalGeneration, LLAVA_NEXT: LlavaNextForConditionalGeneration}
# Keys that only re-size another key's class (MLP depth, resampler queries): their verdicts are checked
# on every encoder (test_verdicts_are_the_listed_ones), the full run on these encoders, to stay quick.
RESIZED = {"mlp3x_gelu": "mlp2x_gelu", "mlp4x_gelu": "mlp2x_gelu", "resampler16": "resampler",
           "resampler32": "resampler", "resampler144": "resampler", "resampler256": "resampler"}
RESIZED_ON = ("tiny-clip", "tiny-convnextv2", "tiny-dinov2+tiny-siglip")


def expected_refusal(combination: Combination) -> str | None:
    matches = [error for encoders, projectors, modes, error in REFUSED
               if combination.encoder in encoders and combination.projector in projectors and combination.high_res in modes]
    assert len(matches) <= 1, f"{combination} matches several refusals"
    return matches[0] if matches else None


@pytest.fixture(scope="module")
def one_llm():
    """`build` loads the LLM and its tokenizer once: later builds get the first ones, with the image token
    already added, so each combination costs only its vision part and projector. Sharing them is safe:
    no test changes weights (a step's gradients are dropped after it). One torch thread: these models
    are too small to gain from more, and on shared cores spinning threads make every step much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, processor = build(Combination("tiny-clip", "linear", "none").spec())
    loaded = {"lm": model.language_model, "tokenizer": processor.tokenizer}

    class Loaded:
        def __init__(self, key: str):
            self.key = key

        def from_pretrained(self, *args, **kwargs):
            return loaded[self.key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vlm.build, "AutoModelForCausalLM", Loaded("lm"))
        mp.setattr(vlm.build, "AutoTokenizer", Loaded("tokenizer"))
        yield loaded["lm"]
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in SIZES]


def test_the_matrix_covers_every_part():
    used = {key for spec in ENCODER_EXAMPLES.values() for key in spec["vision"].split("+")}
    built = [key for key in TINY_BACKBONES.keys() if key not in self_trained()]
    tiny_vision = {key for key in built if not (tiny_path(key) / "tokenizer.json").is_file()}  # LLMs have one
    assert tiny_vision <= used, f"tiny encoders missing from ENCODER_EXAMPLES: {sorted(tiny_vision - used)}"
    families = {resolve_vision(Combination(e, "linear", "none").spec())[1].model_type for e in ENCODER_EXAMPLES}
    assert families == set(VISION_ENCODERS.keys()), "every vision family needs an example in ENCODER_EXAMPLES"
    assert any(spec.get("s2_scales") for spec in ENCODER_EXAMPLES.values())
    assert {c.projector for c in combinations()} == set(PROJECTORS.keys())
    assert {c.high_res for c in combinations()} == set(ALL_MODES)
    assert set(HF_CLASSES) == set(HF_TARGETS.keys())


def test_resized_keys_share_their_base_code():
    for key, base in RESIZED.items():
        resized, original = PROJECTORS.get(key), PROJECTORS.get(base)
        assert (resized.forward, resized.__init__) == (original.forward, original.__init__), key
        assert {name for name in vars(resized) if not name.startswith("_")} <= {"depth", "num_queries"}, key


def run_in_full(combination: Combination) -> bool:
    return combination.projector not in RESIZED or combination.encoder in RESIZED_ON


def ask(processor, pictures):
    """Two rows, one picture each (left-padded, as for generation), labels on every real token."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    processor.tokenizer.padding_side = "left"
    batch = processor(text=[text, text], images=[[p] for p in pictures], padding=True, return_tensors="pt")
    return batch, batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)


@pytest.mark.parametrize("combination", [c for c in combinations() if run_in_full(c)], ids=str)
def test_combination(combination, one_llm, pictures, tmp_path_factory):
    refusal, result = expected_refusal(combination), verdict(combination)
    if refusal is not None:
        assert not result.works and re.search(refusal, result.error), result
        with pytest.raises(ValueError, match=refusal):
            build(combination.spec())
        return
    assert result.works, f"{combination} is refused: {result.error}"
    assert result.export == EXPORTS.get((combination.encoder, combination.projector, combination.high_res), VLM_FORMAT)

    model, processor = build(combination.spec())
    assert model.config.image_seq_length == result.tile_tokens == processor.layout.tile_tokens
    batch, labels = ask(processor, pictures)
    scattered = []
    image_features = model.image_features

    def spy(*args, **kwargs):
        features = image_features(*args, **kwargs)
        scattered.extend(f.shape[0] for f in features)
        return features

    model.image_features = spy
    model.train()
    loss = model(**batch, labels=labels).loss
    loss.backward()
    placeholders = (batch["input_ids"] == model.config.image_token_id).sum(1).tolist()
    sizes = SIZES if processor.layout.strategy.sized else [None, None]
    assert placeholders == scattered == [processor.layout.num_tokens(s) for s in sizes]
    if combination.high_res != "none":
        assert batch["image_sizes"].tolist() == [list(s) for s in SIZES]
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.projector.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)

    one_llm.zero_grad(set_to_none=True)

    model.eval()
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    assert generated.shape == (2, batch["input_ids"].shape[1] + 2)

    if result.export == VLM_FORMAT:
        with pytest.raises(NotExportableError, match="stays in the vlm format"):
            export_hf(model, processor, "never-written")
        return
    out, target = export_hf(model, processor, tmp_path_factory.mktemp("hf"))
    assert target == result.export
    native = HF_CLASSES[target].from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(native(**batch).logits, model(**batch).logits, rtol=0, atol=1e-5)


def test_verdicts_are_the_listed_ones():
    refused = {c for c in combinations() if not verdict(c).works}
    assert refused == {c for c in combinations() if expected_refusal(c)}
    exported = {(c.encoder, c.projector, c.high_res) for c in combinations() if verdict(c).export != VLM_FORMAT}
    assert exported == set(EXPORTS)


def test_readme_parts_table_is_current():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    current, fresh = readme_block(readme), render()
    diff = "\n".join(difflib.unified_diff(current.splitlines(), fresh.splitlines(), "README.md", "generated", lineterm=""))
    assert current == fresh, f"README.md's parts table is stale; regenerate it with `{REGENERATE}`:\n{diff}"


def test_architecture_registry_table_is_current():
    architecture = Path(__file__).resolve().parents[1] / "ARCHITECTURE.md"
    assert stale(architecture) == [], "ARCHITECTURE.md's registry table is stale: vlm parts --write ARCHITECTURE.md"


def test_parts_command_writes_and_checks(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{START}\nold table\n{END}\n\nafter\n")
    assert cli(["parts", "--check", str(readme)]) == 1
    assert f"regenerate them with `vlm parts --write {readme}`" in capsys.readouterr().err
    assert cli(["parts", "--write", str(readme)]) == 0 and cli(["parts", "--check", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\n") and text.endswith("\n\nafter\n") and "old table" not in text
    assert "| `pool2x2` | `Pool2x2Projector` | 144 | 196 | yes (no prefix tokens) |" in text
    readme.write_text("no markers\n")
    assert cli(["parts", "--write", str(readme)]) == 2
    assert "holds no generated block (none of <!-- parts-table:start -->" in capsys.readouterr().err


def test_export_blockers_name_a_tower_without_image_size():
    """SigLIP2 NaFlex configs have no image_size: the LlavaNext check names it rather than failing."""
    model = build(Combination("tiny-siglip2", "linear", "anyres").spec())[0]
    del model.config.vision_config.image_size
    with pytest.raises(NotExportableError, match=r"image_size=64 differs from the vision tower's \(None\)"):
        export_hf(model, None, "never-written")


def test_docs_parts_page_is_current():
    page = Path(__file__).resolve().parents[1] / "docs" / "parts.md"
    assert stale(page) == [], "docs/parts.md is stale: vlm parts --write docs/parts.md"
