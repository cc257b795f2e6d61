import os

os.environ["HF_HUB_OFFLINE"] = "1"

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
)

import vlm.cache as vlm_cache  # noqa: E402
from vlm.cache import cache_root  # noqa: E402
from vlm.hub import PartNotFoundError, resolve_part  # noqa: E402
from vlm.tiny import tokenizer  # noqa: E402
from vlm.tiny.backbone import FACTORY_VERSION, TINY_BACKBONES, self_trained, tiny_path  # noqa: E402

LMS = {
    "tiny-llama": [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    + ["<|finetune_right_pad_id|>"],
    "tiny-qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
}
VISION = {"tiny-clip": 65, "tiny-siglip": 64}  # tokens per 64x64 image (CLIP adds a class token)
TEXT = "What colour is the small red circle? It is at [0.12, 0.40, 0.55, 0.90]. Größe: 日本 🙂"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh VLM_CACHE for this module, shared by its tests so each key builds once."""
    root = tmp_path_factory.mktemp("vlm-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLM_CACHE", str(root))
        yield root


def test_registry_keys():
    assert {*LMS, *VISION} <= set(TINY_BACKBONES.keys())


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("VLM_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("VLM_CACHE")
    assert cache_root() == Path.home() / ".cache" / "vlm"


# open_clip's hub layout (as laion/* repos ship it) rather than transformers'
FILES = {key: ("open_clip_config.json", "open_clip_model.safetensors") for key in ("tiny-open_clip-vit", "tiny-open_clip-convnext")}


@pytest.mark.parametrize("key", sorted(set(TINY_BACKBONES.keys()) - set(self_trained())))
def test_tiny_path_builds_once(cache, key):
    path = tiny_path(key)
    config, weights = FILES.get(key, ("config.json", "model.safetensors"))
    assert path == cache / "tiny" / f"{key}-v{FACTORY_VERSION}"
    assert (path / config).is_file() and (path / weights).is_file()
    stamp = (path / weights).stat().st_mtime_ns
    assert tiny_path(key) == path
    assert (path / weights).stat().st_mtime_ns == stamp
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp dirs left


@pytest.mark.parametrize("key", sorted(LMS))
def test_lm_loads(cache, key):
    path = tiny_path(key)
    config = AutoConfig.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert config.vocab_size == len(tokenizer) == model.get_input_embeddings().num_embeddings
    assert 1000 < len(tokenizer) < 2100
    assert config.hidden_size == 128 and config.num_hidden_layers == 2 and config.num_attention_heads == 4 and config.num_key_value_heads == 4
    assert config.tie_word_embeddings == (key == "tiny-qwen2")
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id is not None
    assert tokenizer.eos_token_id in torch.tensor(model.generation_config.eos_token_id).flatten().tolist()
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))


@pytest.mark.parametrize("key", sorted(LMS))
def test_tokenizer(cache, key):
    path = tiny_path(key)
    tokenizer = AutoTokenizer.from_pretrained(path)
    for token in LMS[key]:
        assert tokenizer.encode(token) == [tokenizer.convert_tokens_to_ids(token)], token
    assert set(LMS[key]) <= set(tokenizer.all_special_tokens)
    if key == "tiny-llama":
        assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")
        assert tokenizer.pad_token == "<|finetune_right_pad_id|>"
    else:
        assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
            None,
            "<|im_end|>",
            "<|endoftext|>",
        )

    ids = tokenizer.encode(TEXT)
    assert tokenizer.bos_token_id not in ids  # no post-processor adds BOS; the chat template does
    assert tokenizer.decode(ids) == TEXT  # byte-level: any text round-trips
    # transformers may rebuild the pipeline from vocab and merges (qwen2 does); it must match the file.
    assert ids == Tokenizer.from_file(str(path / "tokenizer.json")).encode(TEXT).ids
    for word in ["circle", "hexagon", "purple", "triangle", "below", "describe"]:
        assert len(tokenizer.encode(" " + word)) == 1, word


@pytest.mark.parametrize(
    ("key", "first", "eos"),
    [("tiny-llama", "<|begin_of_text|>", "<|eot_id|>"), ("tiny-qwen2", "<|im_start|>", "<|im_end|>")],
)
def test_chat_template_with_image(cache, key, first, eos):
    tokenizer = AutoTokenizer.from_pretrained(tiny_path(key))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "What colour is the star?"}],
        },
        {"role": "assistant", "content": "It is yellow."},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "<image>\nWhat colour is the star?" in text and f"It is yellow.{eos}" in text
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert ids[0] == tokenizer.convert_tokens_to_ids(first) and ids[1] != ids[0]  # exactly one BOS
    assert tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]) == f"It is yellow.{eos}"


@pytest.mark.parametrize("key", sorted(VISION))
def test_vision_loads(cache, key):
    path = tiny_path(key)
    config = AutoConfig.from_pretrained(path)
    assert (config.image_size, config.patch_size, config.hidden_size, config.num_hidden_layers) == (
        64,
        8,
        64,
        3,
    )
    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    pixels = processor(Image.new("RGB", (96, 80), "red"), return_tensors="pt").pixel_values
    assert pixels.shape == (1, 3, 64, 64)
    assert model(pixel_values=pixels).last_hidden_state.shape == (1, VISION[key], 64)


@pytest.mark.parametrize("key", sorted(set(TINY_BACKBONES.keys()) - set(self_trained())))
def test_build_is_deterministic(tmp_path, key):
    factory = TINY_BACKBONES.get(key)
    factory(tmp_path / "a")
    tokenizer._base_tokenizer_json.cache_clear()  # retrain the tokenizer too
    factory(tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_tiny_path_loses_race(monkeypatch, tmp_path):
    """Another process renaming its folder into place first: ours is dropped, theirs is used."""
    monkeypatch.setenv("VLM_CACHE", str(tmp_path))
    final = tmp_path / "tiny" / f"tiny-siglip-v{FACTORY_VERSION}"
    real_replace = os.replace

    def other_process_wins(src, dst):
        TINY_BACKBONES.get("tiny-siglip")(final)
        (final / "winner").touch()
        real_replace(src, dst)

    monkeypatch.setattr(vlm_cache.os, "replace", other_process_wins)
    assert tiny_path("tiny-siglip") == final
    assert (final / "winner").exists()
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]


def test_resolve_key_and_folder(cache, tmp_path):
    assert resolve_part("tiny-clip") == tiny_path("tiny-clip")
    assert resolve_part(str(tmp_path)) == tmp_path
    assert resolve_part(str(tiny_path("tiny-llama"))) == tiny_path("tiny-llama")


def _assert_not_found(name: str, *fragments: str) -> str:
    start = time.monotonic()
    with pytest.raises(PartNotFoundError) as info:
        resolve_part(name)
    assert time.monotonic() - start < 10
    message = str(info.value)
    for fragment in (repr(name), *TINY_BACKBONES.keys(), str(Path(name).absolute()), *fragments):
        assert fragment in message
    return message


def test_resolve_unreachable_hub_id_offline(cache):
    _assert_not_found("someone/does-not-exist", str(constants.HF_HUB_CACHE), "HF_HUB_OFFLINE")


def test_resolve_unreachable_hub_id_online(cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    message = _assert_not_found("someone/does-not-exist", "hub could not provide it")
    assert "\n" not in message


def test_close_key_is_not_matched(cache):
    _assert_not_found("tiny-clip2")
    with pytest.raises(KeyError, match="tiny-clip2"):
        tiny_path("tiny-clip2")
