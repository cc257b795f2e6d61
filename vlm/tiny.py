"""Tiny offline backbones, saved as ordinary Hugging Face folders.

Each ``TINY_BACKBONES`` member writes a complete checkpoint folder (config, safetensors weights,
tokenizer or image processor) so the rest of the code loads it through the same
``from_pretrained`` path a real checkpoint takes; the open_clip and timm ones are written in those
libraries' own hub layouts, as real checkpoints of theirs are. ``tiny_path`` builds a folder once and caches it.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import open_clip
import timm
import torch
from safetensors.torch import save_file
from timm.models import save_for_hf
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    BitImageProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    ConvNextConfig,
    ConvNextImageProcessor,
    ConvNextV2Config,
    Dinov2Config,
    Dinov2WithRegistersConfig,
    GenerationConfig,
    LlamaConfig,
    PreTrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Siglip2ImageProcessor,
    Siglip2VisionConfig,
    SiglipImageProcessor,
    SiglipVisionConfig,
)
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from vlm.registry import Registry
from vlm.templates import CHAT_TEMPLATES

# Bump whenever a factory's output changes, so stale cached folders are not reused.
FACTORY_VERSION = 4
SEED = 0
VOCAB_SIZE = 1536

TINY_BACKBONES: Registry[Callable[[Path], None]] = Registry("tiny backbone")


def cache_root() -> Path:
    return Path(os.environ.get("VLM_CACHE") or Path.home() / ".cache" / "vlm")


def tiny_path(key: str) -> Path:
    """The folder of tiny backbone ``key``, built on first use (atomically, safe across processes)."""
    factory = TINY_BACKBONES.get(key)
    final = cache_root() / "tiny" / f"{key}-v{FACTORY_VERSION}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        factory(tmp)
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        # Another process finished first; its folder is identical, keep it.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- the shared tokenizer -------------------------------------------------------------------------

COLOURS = "red green blue yellow purple orange white black gray pink brown cyan".split()
SHAPES = "circle square triangle star diamond hexagon cross ellipse oval".split()
SIZES = "small large tiny big medium".split()
RELATIONS = ["to the left of", "to the right of", "above", "below", "next to"]
DIRECTIONS = ["left", "right", "above", "below"]
NUMBER_WORDS = "zero one two three four five six seven eight nine ten".split()
PLACES = ["top left", "top right", "bottom left", "bottom right", "center", "middle", "top", "bottom"]
FILLER = (
    "the a an is are was were be been being it its this that these those there here and or but not no "
    "yes of in on at to from with by for as into onto over under between near far than then so if "
    "what which who whom whose where when why how many much some any all each every both either "
    "neither only also very just more most less least other another same different such own "
    "i you he she we they me him her us them my your his our their mine yours can could do does did "
    "has have had will would should must may might shall please thank thanks sure okay sorry "
    "answer question image picture photo scene shape shapes object objects colour colours color "
    "colors size sizes position positions count number numbers box boxes bounding coordinates corner "
    "corners edge edges background foreground side sides half part whole row column line grid "
    "describe show see look find tell give point list name say write read think know want need "
    "make take use get go come put keep move turn place draw paint fill sort compare check choose "
    "left right above below beside behind inside outside around across along near middle centre "
    "first second third last next previous one two three four five six seven eight nine ten "
    "big bigger biggest small smaller smallest large larger largest tall short wide narrow long "
    "bright dark light pale deep plain solid empty full round sharp straight curved flat "
    "up down out off again still even already always never often sometimes usually maybe "
    "because while after before until since about against during without within through "
    "good new old great high low early late young important able certain clear whole true false "
    "time year day way thing man woman child world life hand eye place work week case group "
    "problem fact area system program point home water room mother story word business side "
    "user assistant system model answer reply response caption description example task "
    "correct incorrect wrong right exactly approximately about total altogether together only"
).split()


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x")) else "s")


def _box(rng: random.Random) -> str:
    x0, y0 = rng.randint(0, 60) / 100, rng.randint(0, 60) / 100
    x1, y1 = x0 + rng.randint(10, 40) / 100, y0 + rng.randint(10, 40) / 100
    return "[" + ", ".join(f"{v:.2f}" for v in (x0, y0, x1, y1)) + "]"


def _sentences(rng: random.Random) -> Iterator[str]:
    """One round of shapes-world phrasing: questions, answers, captions and grounding."""
    colour, other = rng.sample(COLOURS, 2)
    shape, other_shape = rng.sample(SHAPES, 2)
    size, relation, place = rng.choice(SIZES), rng.choice(RELATIONS), rng.choice(PLACES)
    n = rng.randint(0, 10)
    count = rng.choice([str(n), NUMBER_WORDS[n]])
    thing, other_thing = f"{size} {colour} {shape}", f"{other} {other_shape}"
    yield f"What colour is the {shape}? The {shape} is {colour}."
    yield f"What color is the {size} {shape}? It is {colour}."
    yield f"What shape is the {colour} object? It is a {shape}."
    yield f"How many {_plural(shape)} are there? There are {count} {_plural(shape)}."
    yield f"How many shapes are in the image? {n}. There are {NUMBER_WORDS[n]} shapes."
    yield f"Is there a {colour} {shape}? {rng.choice(['Yes', 'No'])}, there {rng.choice(['is', 'is not'])}."
    yield f"Is the {thing} {relation} the {other_thing}? {rng.choice(['yes', 'no'])}"
    yield f"Where is the {thing}? It is in the {place} of the image, {relation} the {other_thing}."
    yield f"Describe the image. There are {NUMBER_WORDS[n]} shapes: a {thing} and a {other_thing}."
    yield f"Describe the image in one sentence. A {thing} {relation} a {other_thing}."
    yield f"The {thing} is {relation} the {other_thing}, and it is {rng.choice(['smaller', 'larger', 'bigger'])} than the {other_shape}."
    yield f"Give the bounding box of the {colour} {shape}. {_box(rng)}"
    yield f"The {other_thing} is at {_box(rng)} and the {shape} is at {_box(rng)}."
    yield f"Which shape is at {_box(rng)}? The {thing}."
    yield f"Count the {colour} shapes. {count}"
    yield " ".join(rng.choices(FILLER, k=12)) + "."
    # one-word replies start a turn with no leading space: real tokenizers hold those forms whole too
    yield from (colour, shape, size, count, rng.choice(["yes", "no", "Yes", "No"]), rng.choice(DIRECTIONS))
    yield "Answer with one word. Answer yes or no. Answer with a number. Answer left, right, above or below."


def corpus(rounds: int = 400, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    lines = [
        "user",
        "assistant",
        "system",
        " ".join(NUMBER_WORDS),
        " ".join(str(i) for i in range(11)),
        " ".join(FILLER),
    ]
    for _ in range(rounds):
        lines.extend(_sentences(rng))
    return lines


# transformers rebuilds a qwen2 tokenizer from vocab and merges with this split (and NFC); training and
# saving with the same pipeline keeps the two LMs' tokenizers identical before and after loading.
SPLIT_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


@functools.cache
def _base_tokenizer_json() -> str:
    """A byte-level BPE trained on ``corpus()``, without special tokens, as JSON."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer(special: dict[str, str], extra: list[str], chat_template: str) -> PreTrainedTokenizerFast:
    """The shared BPE with ``special`` (``{"eos_token": ...}``) and ``extra`` special tokens appended."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_base_tokenizer_json()),
        **special,
        extra_special_tokens=extra,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


# --- language models ------------------------------------------------------------------------------

# Many narrow heads and an init scaled to the width (~1/sqrt(64); transformers' 0.02 suits widths near 1000).
# Given oracle one-hot object features, the LM with 4 heads at 0.02 answered colour questions 18 % right after
# 2000 steps (a long plateau before it learns to find an object by one attribute and report another); with 16
# heads at 0.1 it answered 86 %.
LM_SIZES = dict(
    hidden_size=64,
    intermediate_size=176,
    num_hidden_layers=2,
    num_attention_heads=16,
    num_key_value_heads=8,
    initializer_range=0.1,
    max_position_embeddings=4096,
)


def _save_model(config: PreTrainedConfig, auto: type, out: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = auto.from_config(config)
    model.save_pretrained(out)


def _save_lm(
    out: Path, config_class: type, tokenizer: PreTrainedTokenizerFast, eos: int | list[int], tied: bool
) -> None:
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    config = config_class(vocab_size=len(tokenizer), tie_word_embeddings=tied, **LM_SIZES, **ids)
    _save_model(config, AutoModelForCausalLM, out)
    GenerationConfig(**ids).save_pretrained(out)
    tokenizer.save_pretrained(out)


@TINY_BACKBONES.register("tiny-llama")
def tiny_llama(out: Path) -> None:
    tokenizer = tiny_tokenizer(
        {
            "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>",
            "pad_token": "<|finetune_right_pad_id|>",
        },
        ["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"],
        CHAT_TEMPLATES.get("llama3"),
    )
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end_of_text|>")]
    _save_lm(out, LlamaConfig, tokenizer, eos, tied=False)


@TINY_BACKBONES.register("tiny-qwen2")
def tiny_qwen2(out: Path) -> None:
    tokenizer = tiny_tokenizer(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        ["<|im_start|>"],
        CHAT_TEMPLATES.get("chatml"),
    )
    _save_lm(out, Qwen2Config, tokenizer, tokenizer.eos_token_id, tied=True)


# --- vision encoders ------------------------------------------------------------------------------

VISION_SIZES = dict(
    image_size=64,
    patch_size=8,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
)


@TINY_BACKBONES.register("tiny-clip")
def tiny_clip(out: Path) -> None:
    _save_model(CLIPVisionConfig(**VISION_SIZES), AutoModel, out)
    CLIPImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    ).save_pretrained(out)


@TINY_BACKBONES.register("tiny-siglip")
def tiny_siglip(out: Path) -> None:
    _save_model(SiglipVisionConfig(**VISION_SIZES), AutoModel, out)
    SiglipImageProcessor(
        size={"height": 64, "width": 64}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    ).save_pretrained(out)


DINOV2_SIZES = {k: v for k, v in VISION_SIZES.items() if k != "intermediate_size"}  # DINOv2 takes mlp_ratio


def _save_dinov2(out: Path, config: PreTrainedConfig) -> None:
    _save_model(config, AutoModel, out)
    BitImageProcessor(
        size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
        image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD,
    ).save_pretrained(out)


@TINY_BACKBONES.register("tiny-dinov2")
def tiny_dinov2(out: Path) -> None:
    """DINOv2 on the same 8x8 grid at 64 px as tiny-siglip, so the two fuse (Prismatic's pairing)."""
    _save_dinov2(out, Dinov2Config(**DINOV2_SIZES, mlp_ratio=2))


@TINY_BACKBONES.register("tiny-dinov2-registers")
def tiny_dinov2_registers(out: Path) -> None:
    """tiny-dinov2 with 4 register tokens (prefix: CLS + 4)."""
    _save_dinov2(out, Dinov2WithRegistersConfig(**DINOV2_SIZES, mlp_ratio=2, num_register_tokens=4))


def _save_convnext(out: Path, config: PreTrainedConfig) -> None:
    _save_model(config, AutoModel, out)
    ConvNextImageProcessor(
        size={"shortest_edge": config.image_size}, image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD
    ).save_pretrained(out)


@TINY_BACKBONES.register("tiny-convnext")
def tiny_convnext(out: Path) -> None:
    """A 4-stage ConvNeXt (stride 32) for 256 px; ConvLLaVA's stage 5 comes from ``vision_overrides``."""
    # layer scale starts at 1: the 1e-6 of deep ConvNeXts would leave these few blocks inert for long
    _save_convnext(out, ConvNextConfig(
        patch_size=4, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1], image_size=256, layer_scale_init_value=1.0
    ))


@TINY_BACKBONES.register("tiny-convnextv2")
def tiny_convnextv2(out: Path) -> None:
    """tiny-convnext's shape as a ConvNeXt V2 (GRN blocks), for 128 px: a 4x4 grid."""
    _save_convnext(out, ConvNextV2Config(patch_size=4, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1], image_size=128))


@TINY_BACKBONES.register("tiny-siglip2")
def tiny_siglip2(out: Path) -> None:
    """A SigLIP2 NaFlex tower with tiny-siglip's sizes; ``image_size`` (which NaFlex configs lack) is the
    fixed size the VLM feeds it."""
    _save_model(Siglip2VisionConfig(**VISION_SIZES, num_patches=64), AutoModel, out)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=64).save_pretrained(out)


# --- open_clip and timm towers, saved in those libraries' own folder layouts ----------------------

OPEN_CLIP_TEXT = dict(context_length=16, vocab_size=64, width=32, heads=2, layers=1)  # a valid, minimal text tower
OPEN_CLIP_PREPROCESS = dict(mean=list(OPENAI_CLIP_MEAN), std=list(OPENAI_CLIP_STD), interpolation="bicubic")


def _save_open_clip(out: Path, vision_cfg: dict) -> None:
    """A whole open_clip CLIP in its hub layout, as laion/* repos ship it: open_clip_config.json + safetensors."""
    model_cfg = {"embed_dim": 32, "vision_cfg": vision_cfg, "text_cfg": OPEN_CLIP_TEXT}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = open_clip.CLIP(**model_cfg)
    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), out / "open_clip_model.safetensors")
    config = {"model_cfg": model_cfg, "preprocess_cfg": OPEN_CLIP_PREPROCESS}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))


@TINY_BACKBONES.register("tiny-open_clip-vit")
def tiny_open_clip_vit(out: Path) -> None:
    """An open_clip ViT on tiny-clip's grid: 8 px patches at 64 px, width 64, 3 blocks."""
    _save_open_clip(out, dict(image_size=64, patch_size=8, width=64, layers=3, head_width=16, mlp_ratio=2.0))


@TINY_BACKBONES.register("tiny-open_clip-convnext")
def tiny_open_clip_convnext(out: Path) -> None:
    """convnext_large_d_320's tower layout (a timm trunk, no pooling, MLP projection, stochastic depth)
    on timm's test_convnext (widths 24-64, stride 32), for 256 px."""
    _save_open_clip(out, dict(timm_model_name="test_convnext", timm_model_pretrained=False, timm_pool="",
                              timm_proj="mlp", timm_drop=0.0, timm_drop_path=0.1, image_size=256))


@TINY_BACKBONES.register("tiny-timm-vit")
def tiny_timm_vit(out: Path) -> None:
    """timm's test_vit (width 64, 6 blocks) with 8 px patches at 64 px and a 10-class head, in timm's HF layout."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = timm.create_model("test_vit", pretrained=False, img_size=64, patch_size=8, num_classes=10)
    save_for_hf(model, out, safe_serialization=True, data_config={"input_size": (3, 64, 64)})


# --- self-trained on the shapes world (minutes, once per cache, like a download) -------------------
# The embedded default starts from an encoder that has learned something, as real recipes start from
# CLIP; from a random encoder its tiny VLM stays at chance on every question type.
SELF_TRAINED = ("tiny-convnext-shapes", "tiny-llama-shapes")


# tiny-convnext with a wider third and fourth stage and more blocks there (cheap at 16x16 and 8x8): the
# 5 blocks of tiny-convnext could not learn to tell the shapes apart (a probe read 29 % of them at stride 64).
SHAPES_CONVNEXT = dict(
    patch_size=4, hidden_sizes=[16, 32, 64, 96], depths=[1, 1, 3, 2], image_size=256, layer_scale_init_value=1.0
)


@TINY_BACKBONES.register("tiny-convnext-shapes")
def tiny_convnext_shapes(out: Path) -> None:
    """A 4-stage tiny ConvNeXt (stride 32, 256 px) trained to tell each grid cell's colour, shape and
    object box (``vlm.tiny_pretrain``)."""
    # imported here: tiny_pretrain uses the processor, which imports the vision sources, which import this module
    from vlm.tiny_pretrain import PretrainConfig, pretrain_patch_labels

    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "tiny-convnext-shapes"  # the name the progress bar shows
        _save_convnext(start, ConvNextConfig(**SHAPES_CONVNEXT))
        pretrain_patch_labels(start, out, PretrainConfig(lr=6e-3))


@TINY_BACKBONES.register("tiny-llama-shapes")
def tiny_llama_shapes(out: Path) -> None:
    """tiny-llama after reading shapes-world scenes as text and answering questions about them
    (``vlm.tiny_lm_pretrain``): the "is it there?" skill a real VLM inherits from its LLM."""
    from vlm.tiny_lm_pretrain import pretrain_text

    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "tiny-llama-shapes"  # the name the progress bar shows
        tiny_llama(start)
        pretrain_text(start, out)
