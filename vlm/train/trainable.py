"""What trains in a stage: per part frozen / full / LoRA / QLoRA / "from:K", and the table that shows it.

Parts are the VLM's three children: ``vision`` (vision_tower), ``projector`` and ``llm``
(language_model). LoRA adapters are injected with peft into the chosen parts' linear layers; the
model stays a `VLMForConditionalGeneration` (``inject_adapter_in_model``), so the loop, the
checkpoints and saving treat LoRA and full training alike, and `merge_lora` folds them back in.
"""

from __future__ import annotations

import importlib.util

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from vlm.modeling import VLMForConditionalGeneration
from vlm.train.config import LoraConfig

PARTS = {"vision": "vision_tower", "projector": "projector", "llm": "language_model"}
MODES = ("frozen", "full", "lora", "qlora")


class QLoRAUnavailableError(RuntimeError):
    """QLoRA needs bitsandbytes and a CUDA device."""


def check_modes(train: dict[str, str]) -> None:
    unknown = sorted(set(train) - set(PARTS))
    if unknown:
        raise ValueError(f"train: unknown parts {unknown}; parts are {list(PARTS)}")
    for part, mode in train.items():
        if mode not in MODES and not (mode.startswith("from:") and mode[5:].isdigit()):
            raise ValueError(f"train.{part}={mode!r}: use one of {list(MODES)} or from:K")
        if mode.startswith("from:") and part != "vision":
            raise ValueError(f"train.{part}={mode!r}: from:K applies to the vision encoder's blocks only")
    if "qlora" in train.values():
        require_qlora()


def require_qlora() -> None:
    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        raise QLoRAUnavailableError(
            "QLoRA quantises the LLM to 4 bit with bitsandbytes, which needs a CUDA GPU "
            f"(bitsandbytes installed: {importlib.util.find_spec('bitsandbytes') is not None}, "
            f"CUDA available: {torch.cuda.is_available()}). Use lora (same adapters, unquantised base) "
            "on this machine, or install the `gpu` extra on a CUDA machine."
        )


def load_quantized(source) -> VLMForConditionalGeneration:
    """The model with its LLM's linear layers in 4-bit NF4 (vision tower, projector and head stay as they are)."""
    require_qlora()
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=["vision_tower", "projector", "lm_head"],
    )
    model = VLMForConditionalGeneration.from_pretrained(source, quantization_config=quantization, dtype=torch.bfloat16)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def apply_train_modes(model: VLMForConditionalGeneration, train: dict[str, str], lora: LoraConfig) -> None:
    """Freeze everything, then enable what ``train`` asks for (LoRA adapters are injected here)."""
    check_modes(train)
    model.requires_grad_(False)
    lora_parts = [p for p, m in train.items() if m in ("lora", "qlora")]
    if lora_parts:
        targets = [
            name
            for part in lora_parts
            for name in _linear_names(model, PARTS[part])
            if not _is_output_head(model, name)
        ]
        config = PeftLoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets
        )
        inject_adapter_in_model(config, model)  # adapters are the only trainable weights it adds
    for part, mode in train.items():
        module = getattr(model, PARTS[part])
        if mode == "full":
            module.requires_grad_(True)
        elif mode.startswith("from:"):
            blocks = module.blocks()
            k = int(mode[5:])
            if not 1 <= k <= len(blocks):
                raise ValueError(f"train.vision=from:{k}: the encoder has blocks 1..{len(blocks)}")
            for block in blocks[k - 1 :]:
                block.requires_grad_(True)
        elif mode in ("lora", "qlora"):
            for name, param in module.named_parameters():
                param.requires_grad_("lora_" in name)


def _linear_names(model: nn.Module, prefix: str) -> list[str]:
    return [
        name
        for name, module in model.named_modules()
        if name.startswith(prefix + ".") and isinstance(module, nn.Linear)
    ]


def _is_output_head(model: VLMForConditionalGeneration, name: str) -> bool:
    return model.get_submodule(name) is model.language_model.get_output_embeddings()


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA adapter into its base layer and put the plain layer back, in place."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())


def _numel(p: torch.Tensor) -> int:
    return getattr(p, "ds_numel", p.numel())  # ZeRO-3 partitions leave an empty local tensor


def parameter_table(model: nn.Module, modes: dict[str, str], parts: dict[str, str] = PARTS) -> str:
    """Per part (``parts``: name -> attribute of ``model``): its mode, parameters and trainable parameters."""
    rows = [f"{'part':<12}{'mode':<10}{'parameters':>14}{'trainable':>14}"]
    total = trainable = 0
    for part, attr in parts.items():
        params = list(getattr(model, attr).parameters())
        n, t = sum(_numel(p) for p in params), sum(_numel(p) for p in params if p.requires_grad)
        total, trainable = total + n, trainable + t
        rows.append(f"{part:<12}{modes.get(part, 'frozen'):<10}{n:>14,}{t:>14,}")
    rows.append(f"{'total':<22}{total:>14,}{trainable:>14,}  ({100 * trainable / max(total, 1):.1f} % trainable)")
    return "\n".join(rows)
