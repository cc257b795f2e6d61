"""The parts matrix: every encoder example x projector x high-res strategy, and what the code says of each.

`ENCODER_EXAMPLES` are the tiny examples every vision family declares (``VisionEncoder.examples``: named
parts of the tiny plugin, with the settings the family needs), S²'s and the fused pair's among them. Projectors and high-res strategies are
their registries' keys. `verdict` decides a combination from its config alone, reading no weights:
the ``ValueError`` the code refuses it with, or its tokens per tile and the export target it fits
(the first of `vlm.export.HF_TARGETS` whose blockers are empty, else the vlm format). The README's
parts table is rendered from these verdicts (`vlm.parts.table`); tests/test_parts_matrix.py builds
every combination for real and checks its verdict against what the built model does.
"""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedConfig

from vlm.build import BuildSpec, resolve_vision, spec_config
from vlm.config import VLMConfig
from vlm.export import HF_TARGETS
from vlm.highres.base import HIGH_RES
from vlm.hub import resolve_part
from vlm.modeling import new_projector
from vlm.projectors.base import PROJECTORS
from vlm.vision.base import VISION_ENCODERS
from vlm.vision.encoder import encoder_class
from vlm.vision.s2 import S2Encoder

LLM = "tiny-llama"
VLM_FORMAT = "vlm"  # the export verdict of a model no transformers class represents: it stays ours
SETTINGS = {"max_tiles": 4}  # every combination's: at most 4 tiles (+ thumbnail) keeps the matrix quick


def encoder_examples() -> dict[str, dict[str, Any]]:
    """label -> BuildSpec fields: the ``examples`` every vision family declares, then S²'s."""
    out: dict[str, dict[str, Any]] = {}
    for cls in [*(VISION_ENCODERS.get(key) for key in VISION_ENCODERS), S2Encoder]:
        out.update(vars(cls).get("examples", {}))
    return out


ENCODER_EXAMPLES = encoder_examples()


@dataclass(frozen=True)
class Combination:
    encoder: str  # an ENCODER_EXAMPLES label
    projector: str  # a PROJECTORS key
    high_res: str  # a HIGH_RES key

    def spec(self) -> BuildSpec:
        return BuildSpec(projector=self.projector, high_res=self.high_res, llm=LLM,
                         **SETTINGS, **ENCODER_EXAMPLES[self.encoder])

    def __str__(self) -> str:
        return f"{self.encoder} | {self.projector} | {self.high_res}"


@dataclass(frozen=True)
class Verdict:
    """``error``: the code refuses the combination, with this message. Else ``tile_tokens`` placeholder
    tokens per base-size image, and ``export``: the transformers class it exports to, or `VLM_FORMAT`."""

    error: str | None = None
    tile_tokens: int | None = None
    export: str = VLM_FORMAT

    @property
    def works(self) -> bool:
        return self.error is None


def combinations() -> list[Combination]:
    return [Combination(*c) for c in itertools.product(ENCODER_EXAMPLES, PROJECTORS.keys(), HIGH_RES.keys())]


@functools.cache
def _vision_config(encoder: str) -> PreTrainedConfig:
    return resolve_vision(BuildSpec(**ENCODER_EXAMPLES[encoder]))[1]


@functools.cache
def _text_config(llm: str) -> PreTrainedConfig:
    return AutoConfig.from_pretrained(resolve_part(llm))


@functools.cache
def _meta_lm(llm: str) -> nn.Module:
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(_text_config(llm))


@dataclass(frozen=True)
class _Shell:
    """What the export blockers read of a model: its config and its LLM (on the meta device)."""

    config: VLMConfig
    language_model: nn.Module


_PARTS_ERRORS: dict[tuple[str, str], str | None] = {}


def _parts_error(combination: Combination, config: VLMConfig) -> str | None:
    """The refusal of the encoder's or projector's constructor, built on the meta device; high_res
    changes neither, so each (encoder, projector) pair is built once."""
    key = (combination.encoder, combination.projector)
    if key not in _PARTS_ERRORS:
        try:
            with torch.device("meta"):
                encoder_class(config)(config)
                new_projector(config)
            _PARTS_ERRORS[key] = None
        except ValueError as err:
            _PARTS_ERRORS[key] = str(err)
    return _PARTS_ERRORS[key]


def config_of(combination: Combination) -> VLMConfig:
    """The config `vlm.build` assembles for ``combination`` (no weights read); ``ValueError`` when refused."""
    spec = combination.spec()
    vision_config, text_config = _vision_config(combination.encoder), _text_config(spec.llm)
    return spec_config(spec, copy.deepcopy(vision_config), copy.deepcopy(text_config), image_token_id=None)


@functools.cache
def verdict(combination: Combination) -> Verdict:
    """What the code makes of ``combination``: the config `vlm.build` assembles (token counts and
    high_res checks), the encoder and projector built on the meta device (their own checks), then the
    blockers of each HF export target."""
    try:
        config = config_of(combination)
    except ValueError as err:
        return Verdict(error=str(err))
    if error := _parts_error(combination, config):
        return Verdict(error=error)
    shell = _Shell(config, _meta_lm(LLM))
    fits = [name for name in HF_TARGETS if not HF_TARGETS.get(name)[0](shell)]
    return Verdict(tile_tokens=config.image_seq_length, export=fits[0] if fits else VLM_FORMAT)
