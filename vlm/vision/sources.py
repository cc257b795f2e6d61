"""Where a vision encoder comes from: a ``BuildSpec.vision`` string resolved to a `VisionSource`.

The forms, dispatched through `SOURCE_KINDS` by the exact prefix before the first colon:

    tiny-clip | openai/clip-vit-large-patch14 | /path/folder    no prefix: a part (`vlm.hub.resolve_part`) whose
                                                                folder is recognised by the files it holds
    open_clip:ViT-B-32 | timm:vit_base_patch16_224              a library's built-in architecture, random weights
    open_clip:ViT-B-32@/path/ckpt.pt | timm:NAME@/path/w.safetensors   ... with a local checkpoint file
    open_clip:hf-hub:laion/REPO | timm:hf-hub:timm/REPO          a hub repo in that library's folder layout
    open_clip:local-dir:/path | timm:local-dir:/path            a local folder in that library's layout

A folder is recognised by each kind's marker file (``config.json`` with ``model_type``: transformers;
``open_clip_config.json``: open_clip; ``config.json`` with ``architecture``: timm). When several
match (laion's ViT repos ship both transformers and open_clip files) the lowest ``priority`` wins;
a prefix chooses explicitly. Adding a kind is one `SourceKind` entry, registered next to its encoder.

A kind's ``save`` writes a trained encoder back into its source folder's layout (the `maskembed` stage's
result): the folder's other files copied, its weights file rewritten with the trained tensors in place
of the tower's and every other tensor (text towers, classifier heads) kept, so it loads wherever the
original did.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoImageProcessor, AutoModel, PreTrainedConfig
from transformers.image_utils import PILImageResampling

from vlm.hub import PartNotFoundError, resolve_part
from vlm.registry import Registry
from vlm.vision.hf import load_vision_config

logger = logging.getLogger(__name__)
SCHEMAS = ("hf-hub", "local-dir")  # both open_clip and timm name their folder sources so


@dataclass(frozen=True)
class Normalisation:
    """An encoder's pixel statistics: the resampling and mean/std its own preprocessing uses."""

    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    resample: int = PILImageResampling.BICUBIC
    rescale_factor: float = 1 / 255

    @classmethod
    def named(cls, mean, std, interpolation: str) -> Normalisation:
        """From a library's preprocessing config (open_clip, timm): an interpolation such as "bicubic"."""
        return cls(tuple(mean), tuple(std), PILImageResampling[interpolation.upper()])

    def to_dict(self) -> dict:
        return {**asdict(self), "image_mean": list(self.image_mean), "image_std": list(self.image_std)}


@dataclass(frozen=True)
class VisionSource:
    """A resolved encoder: its vision sub-config, what the encoder's ``pretrained`` argument receives
    (a folder or checkpoint file; ``None``: random weights) and its normalisation."""

    config: PreTrainedConfig
    weights: str | None
    normalisation: Normalisation


@dataclass(frozen=True)
class SourceKind:
    """One library's way of naming towers. ``marker`` says what `recognise` looks for (error messages);
    ``named(name, checkpoint)`` builds a built-in architecture, None where the library has none.
    ``save(encoder, folder, out)`` writes ``encoder`` (built from ``folder``'s source) into ``out`` in
    ``folder``'s layout; None where the kind cannot."""

    marker: str
    recognise: Callable[[Path], bool]
    folder: Callable[[Path], VisionSource]
    named: Callable[[str, str | None], VisionSource] | None = None
    priority: int = 0
    save: Callable[[nn.Module, Path, Path], None] | None = None


SOURCE_KINDS: Registry[SourceKind] = Registry("vision source kind", package="vlm.vision")


def vision_source(ref: str) -> VisionSource:
    """The `VisionSource` of a ``BuildSpec.vision`` string (one encoder; "a+b" is split by the builder)."""
    kind, sep, rest = ref.partition(":")
    if sep and not Path(ref).expanduser().exists():
        if kind not in SOURCE_KINDS:
            raise ValueError(
                f"unknown vision source kind {kind!r} in {ref!r}; known: {', '.join(SOURCE_KINDS.keys())} "
                f"(KIND:NAME, KIND:NAME@CHECKPOINT, KIND:hf-hub:REPO, KIND:local-dir:PATH), or a part without a prefix"
            )
        return _prefixed(kind, SOURCE_KINDS.get(kind), rest)
    return folder_source(resolve_part(ref))


def folder_source(folder: Path) -> VisionSource:
    """The source of a local folder, by the kind whose marker files it holds."""
    return SOURCE_KINDS.get(folder_kind(folder)).folder(folder)


def folder_kind(folder: Path) -> str:
    """The key of the kind whose marker files ``folder`` holds (of several, the lowest ``priority``)."""
    kinds = {key: SOURCE_KINDS.get(key) for key in SOURCE_KINDS}
    matches = sorted((key for key, kind in kinds.items() if kind.recognise(folder)), key=lambda key: kinds[key].priority)
    if not matches:
        looked = "; ".join(f"{kind.marker} ({key})" for key, kind in kinds.items())
        raise PartNotFoundError(f"{folder} holds no vision encoder this project reads: looked for {looked}")
    return matches[0]


def _prefixed(key: str, kind: SourceKind, rest: str) -> VisionSource:
    schema, sep, target = rest.partition(":")
    if sep and schema in SCHEMAS:
        folder = resolve_part(target) if schema == "hf-hub" else Path(target).expanduser()
        if not folder.is_dir():
            raise PartNotFoundError(f"{key}:{rest}: no folder at {folder.absolute()}")
        if not kind.recognise(folder):
            raise PartNotFoundError(f"{key}:{rest}: {folder} does not hold {kind.marker}")
        return kind.folder(folder)
    if kind.named is None:
        raise ValueError(f"{key} has no built-in architectures: name a hub id or folder, or {key}:hf-hub:REPO")
    name, _, checkpoint = rest.partition("@")
    if checkpoint:
        checkpoint = str(require_file(Path(checkpoint), f"the {key} checkpoint for {name!r}"))
    else:
        logger.warning("%s:%s has no checkpoint: its weights are random", key, name)
    return kind.named(name, checkpoint or None)


def require_file(path: Path, what: str) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise PartNotFoundError(f"Cannot find {what}: no file at {path.absolute()}")
    return path.absolute()


def first_file(folder: Path, names: tuple[str, ...], what: str) -> Path:
    """The first of ``names`` present in ``folder``, else an error naming them all."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise PartNotFoundError(f"{folder} has {what} but no weights: looked for {', '.join(names)}")


def with_trained(original: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], what: str) -> dict:
    """``original``'s tensors with ``trained``'s in place of those of the same name (each must exist, same shape)."""
    unknown = sorted(k for k in trained if k not in original)
    reshaped = sorted(k for k in trained if k in original and original[k].shape != trained[k].shape)
    if unknown or reshaped:
        raise ValueError(f"the trained encoder does not fit {what}: tensors it lacks {unknown[:3]}, "
                         f"of another shape {reshaped[:3]}")
    return {k: trained.get(k, v).detach().contiguous() for k, v in original.items()}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".index.json")


def copy_other_files(folder: Path, out: Path) -> None:
    """Every file of ``folder`` but its weights (and those ``out`` already has): configs, preprocessing,
    tokenizers, so a saved folder keeps the original's layout."""
    out.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES) and not (out / path.name).exists():
            shutil.copy2(path, out / path.name)


def _transformers_save(encoder: nn.Module, folder: Path, out: Path) -> None:
    """The folder's whole model (a vision model, or e.g. a CLIPModel with its text tower), its part that
    holds the tower's tensors replaced."""
    whole = AutoModel.from_pretrained(folder, dtype=encoder.model.dtype)
    trained = encoder.model.state_dict()
    tower = next((m for _, m in whole.named_modules() if trained.keys() <= m.state_dict().keys()), None)
    if tower is None:
        raise ValueError(f"{folder}'s {type(whole).__name__} has no part holding the trained tower's tensors")
    tower.load_state_dict(with_trained(tower.state_dict(), trained, str(folder)))
    whole.save_pretrained(out)
    copy_other_files(folder, out)


def _transformers_folder(folder: Path) -> VisionSource:
    processor = AutoImageProcessor.from_pretrained(folder)
    normalisation = Normalisation(
        tuple(processor.image_mean), tuple(processor.image_std), processor.resample, processor.rescale_factor
    )
    return VisionSource(load_vision_config(str(folder)), str(folder), normalisation)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


SOURCE_KINDS.register("transformers", SourceKind(
    marker="config.json with model_type",
    recognise=lambda folder: "model_type" in read_json(folder / "config.json"),
    folder=_transformers_folder,
    save=_transformers_save,
))
