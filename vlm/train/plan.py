"""Planning a recipe at real size before any weight exists: parameters per part, tokens per image,
trainable parameters per stage, and per-GPU memory under DDP and DeepSpeed ZeRO, next to DeepSpeed's
own estimators (`vlm plan`).

The model is built on the meta device (`vlm.build.build_on_meta`): every shape, no memory. A part
argument that names a published checkpoint (a hub id, also as ``open_clip:hf-hub:ID``) is replaced by
its code-written shape (`vlm.published`: ``shape-…``), so the papers' presets plan offline; anything
else (named parts, folders) resolves as `vlm.build` resolves it.

Memory per GPU, for N GPUs in all, Ψ parameters of which Ψt train (LoRA adapters included):

    bytes per parameter    weights (all)   gradients (trained)   optimizer (trained, AdamW)
    bf16/fp16 mixed        2               2                     12 = fp32 master 4 + two moments 4 + 4
    no mixed precision     4               4                     8 = two moments

    DDP                    weights         gradients             optimizer
    ZeRO-2                 weights         gradients / N         optimizer / N
    ZeRO-3                 weights / N     gradients / N         optimizer / N        + live layers
    ZeRO-3 + CPU offload   -               reduce bucket         -                    + live layers

"Live layers" are the parameters ZeRO-3 gathers to compute with: the largest layer (a transformer block,
or a single module such as the embedding) twice, the one running and the one prefetched.
Offloading keeps parameters and optimizer on the host (``cpu_ram`` per node). DeepSpeed's estimators
count 18 bytes of model states per parameter (they add an fp32 gradient copy) and treat every parameter
as trained; they are printed as DeepSpeed computes them.

Activations are measured, not modelled (`vlm.train.activations`): one training forward of a micro-batch
(the stage's batch size at its ``max_length``) on the meta device. The LM head and loss are counted at every
position (an upper bound: the sft stage computes logits only where a token is supervised). With gradient
checkpointing every checkpointable layer keeps only its input, and one layer's activations are rebuilt at a
time. A configuration fits when its total stays within
`USABLE` of the GPU's memory (the rest: CUDA context, communication buffers, allocator fragmentation).
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from vlm.build import BuildSpec, build_on_meta
from vlm.layout import image_layout, tokens_per_image
from vlm.modeling import VLMForConditionalGeneration
from vlm.published.base import published, stand_in
from vlm.train.activations import measure_activations
from vlm.train.config import LoraConfig, Recipe, StageConfig
from vlm.train.stages.base import STAGES, VLM_PARTS, stage_options
from vlm.train.trainable import apply_train_modes
from vlm.vision.encoder import encoder_class

GiB = 2**30
USABLE = 0.9
ENGINES = ("DDP", "ZeRO-2", "ZeRO-3", "ZeRO-3 + CPU offload")


@dataclass(frozen=True)
class Hardware:
    gpus: int = 8  # per node
    nodes: int = 1
    gpu_memory: float = 80.0  # GiB per GPU

    @property
    def world(self) -> int:
        return self.gpus * self.nodes


@dataclass(frozen=True)
class Part:
    name: str  # vision | projector | llm
    ref: str  # what the recipe names
    resolved: str  # what was planned (a stand-in shape, or the ref itself)
    parameters: int
    published: float | None = None  # the authors' figure, where the part is a published shape
    reported: str = ""


@dataclass(frozen=True)
class Memory:
    """Per-GPU bytes of one engine for one stage; ``deepspeed``: DeepSpeed's estimate of the same
    engine's model states (weights + gradients + optimizer) when every parameter trains."""

    engine: str
    checkpointing: bool
    weights: float
    gradients: float
    optimizer: float
    live: float
    activations: float
    cpu_ram: float = 0.0  # per node, offload only

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.live + self.activations


@dataclass
class StagePlan:
    name: str
    kind: str
    modes: dict[str, str]
    batch_size: int
    seq_length: int
    trainable: dict[str, int] = field(default_factory=dict)
    rows: list[Memory] = field(default_factory=list)
    note: str = ""


@dataclass
class Plan:
    recipe: str
    hardware: Hardware
    precision: str
    attention: str
    parts: list[Part]
    tokens: list[tuple[str, int]]
    projector: str
    stages: list[StagePlan]
    all_trainable: list[tuple[str, float, float]]  # (engine, ours, DeepSpeed's) model states with Ψt = Ψ
    deepspeed_printout: str
    largest_layer: int
    vision_overrides: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(p.parameters for p in self.parts)


# --- parts ---------------------------------------------------------------------------------------


def shaped(spec: BuildSpec) -> tuple[BuildSpec, dict[str, str]]:
    """``spec`` with every part naming a published checkpoint replaced by its code-written shape; the
    replacements (ref -> ``shape-…``)."""
    swaps: dict[str, str] = {}

    def swap(ref: str) -> str:
        part = stand_in(ref)
        if part is not None:
            swaps[ref] = part
        return part or ref

    vision = "+".join(swap(v) for v in spec.vision.split("+"))
    return replace(spec, vision=vision, llm=swap(spec.llm)), swaps


def _part(name: str, ref: str, swaps: dict[str, str], parameters: int) -> Part:
    refs = ref.split("+") if name == "vision" else [ref]
    entries = [published().get(swaps.get(r, r)) for r in refs]
    figure = sum(e.parameters for e in entries) if all(entries) else None
    reported = " + ".join(e.reported for e in entries) if all(entries) else ""
    resolved = "+".join(swaps.get(r, r) for r in refs)
    return Part(name, ref, resolved, parameters, figure, reported)


def count(module: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def largest_layer(model: nn.Module) -> int:
    """Parameters of the largest unit ZeRO-3 has gathered while computing: a transformer block (a
    checkpointable layer) or a module's own parameters (an embedding, a ConvNeXt block's linear)."""
    sizes = [count(m) for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    sizes += [sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()]
    return max(sizes, default=0)


def deepspeed_largest_layer(model: nn.Module) -> int:
    """DeepSpeed's own reading of the largest layer (`model_to_params`): a module's direct parameters."""
    return max((sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()), default=0)


def token_counts(model: VLMForConditionalGeneration, sizes: list[int | tuple[int, int]] | None) -> list[tuple[str, int]]:
    """Placeholder tokens per image at each size (an int: a square image, (h, w): anyres canvases);
    default: the model's image size, and for anyres each grid canvas."""
    config = model.config
    layout = image_layout(config)
    if sizes is None:
        sizes = [config.image_size, *(tuple(p) for p in layout.grid_pinpoints)]
    out = []
    for size in sizes:
        if isinstance(size, tuple) or layout.strategy.sized:
            h, w = size if isinstance(size, tuple) else (size, size)
            out.append((f"{h}x{w}", layout.num_tokens((h, w))))
        else:
            out.append((f"{size} px", tokens_per_image(config, size)))
    return out


# --- memory --------------------------------------------------------------------------------------------


def model_states(engine: str, total: int, trainable: int, hw: Hardware, mixed: bool, largest: int,
                 hidden: int) -> tuple[float, float, float, float, float]:
    """(weights, gradients, optimizer, live, cpu_ram per node) bytes per GPU; see the module docstring."""
    w = 2 if mixed else 4
    opt = 12 if mixed else 8
    n = hw.world
    live = 2 * largest * w
    if engine == "DDP":
        return w * total, w * trainable, opt * trainable, 0.0, 0.0
    if engine == "ZeRO-2":
        return w * total, w * trainable / n, opt * trainable / n, 0.0, 0.0
    if engine == "ZeRO-3":
        return w * total / n, w * trainable / n, opt * trainable / n, live, 0.0
    host = (w * total + (w + opt) * trainable) * hw.gpus / n
    return 0.0, w * hidden * hidden, 0.0, live, host  # offload: a reduce bucket of hidden^2 stays on the GPU


def deepspeed_estimates(total: int, largest: int, hw: Hardware) -> dict[str, float]:
    """DeepSpeed's own per-GPU model-state estimates (every parameter trained), by our engine names."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    common = dict(num_gpus_per_node=hw.gpus, num_nodes=hw.nodes)
    return {
        "ZeRO-2": estimate_zero2_model_states_mem_needs(total, cpu_offload=False, **common)[1],
        "ZeRO-3": estimate_zero3_model_states_mem_needs(total, largest, cpu_offload=False, cpu_offload_params=False,
                                                        **common)[1],
        "ZeRO-3 + CPU offload": estimate_zero3_model_states_mem_needs(total, largest, cpu_offload=True,
                                                                      cpu_offload_params=True, **common)[1],
    }


def deepspeed_printout(total: int, largest: int, hw: Hardware) -> str:
    """What DeepSpeed's ``estimate_zero{2,3}_model_states_mem_needs_all_cold`` print for this model."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print("ZeRO-2 (estimate_zero2_model_states_mem_needs_all_cold):")
        estimate_zero2_model_states_mem_needs_all_cold(total, num_gpus_per_node=hw.gpus, num_nodes=hw.nodes)
        print("ZeRO-3 (estimate_zero3_model_states_mem_needs_all_cold):")
        estimate_zero3_model_states_mem_needs_all_cold(total, largest, num_gpus_per_node=hw.gpus, num_nodes=hw.nodes)
    return out.getvalue().rstrip()


def fits(row: Memory, hw: Hardware) -> bool:
    return row.total <= USABLE * hw.gpu_memory * GiB


# --- the plan ------------------------------------------------------------------------------------------


def _stage_plan(spec: BuildSpec, stage: StageConfig, hw: Hardware, mixed: bool, eager: bool) -> StagePlan:
    kind = STAGES.get(stage.kind)
    plan = StagePlan(stage.name, stage.kind, {p: stage.train.get(p, "frozen") for p in VLM_PARTS},
                     stage.batch_size, stage.data.max_length)
    if kind.parts != VLM_PARTS:
        plan.note = f"not planned: a {stage.kind} stage trains {', '.join(kind.parts)}, not the VLM"
        return plan
    model = build_on_meta(spec)
    options = stage_options(kind, stage.options)
    with torch.device("meta"):  # LoRA adapters too: no memory, no initialisation
        apply_train_modes(model, stage.train, getattr(options, "lora", None) or LoraConfig())
    plan.trainable = {part: count(getattr(model, attr), trainable=True) for part, attr in VLM_PARTS.items()}
    total, trained = count(model), sum(plan.trainable.values())
    measured = measure_activations(model, stage.batch_size, stage.data.max_length, eager)
    largest = largest_layer(model)
    hidden = model.config.text_config.hidden_size
    for engine in ENGINES:
        states = model_states(engine, total, trained, hw, mixed, largest, hidden)
        for checkpointing in (False, True):
            activations = measured.checkpointed() if checkpointing else measured.total
            plan.rows.append(Memory(engine, checkpointing, *states[:4], activations, cpu_ram=states[4]))
    if getattr(options, "reference", None) == "copy":
        plan.note = "a DPO reference copy of the model (frozen, not sharded) adds its weights to every GPU"
    return plan


def plan_recipe(recipe: Recipe, hw: Hardware, image_sizes: list[int | tuple[int, int]] | None = None) -> Plan:
    if recipe.model is None:
        raise ValueError(f"recipe {recipe.name!r} starts from {recipe.run.start_from!r}, not from parts: nothing to plan")
    spec, swaps = shaped(recipe.model)
    mixed = recipe.run.mixed_precision in ("bf16", "fp16")
    compute = {"bf16": "bfloat16", "fp16": "float16"}.get(recipe.run.mixed_precision, "float32")
    spec = replace(spec, dtype=compute)
    model = build_on_meta(spec)
    parts = [_part(name, ref, swaps, count(getattr(model, attr)))
             for name, ref, attr in (("vision", recipe.model.vision, "vision_tower"),
                                     ("projector", recipe.model.projector, "projector"),
                                     ("llm", recipe.model.llm, "language_model"))]
    config = model.config
    width = encoder_class(config).out_channels(config)
    projector = f"{config.projector_type} {width} -> {config.text_config.hidden_size}"
    eager = spec.attn_implementation == "eager"
    stages = [_stage_plan(spec, copy.deepcopy(stage), hw, mixed, eager) for stage in recipe.stages]
    total, largest = count(model), largest_layer(model)
    ds_largest = deepspeed_largest_layer(model)
    theirs = deepspeed_estimates(total, ds_largest, hw)
    hidden = config.text_config.hidden_size
    all_trainable = []
    for engine in ENGINES[1:]:
        weights, grads, opt, live, _ = model_states(engine, total, total, hw, mixed, largest, hidden)
        all_trainable.append((engine, weights + grads + opt + live, float(theirs[engine])))
    return Plan(
        recipe=recipe.name, hardware=hw, precision=recipe.run.mixed_precision, attention=spec.attn_implementation or "sdpa",
        parts=parts, tokens=token_counts(model, image_sizes), projector=projector, stages=stages,
        all_trainable=all_trainable, deepspeed_printout=deepspeed_printout(total, ds_largest, hw), largest_layer=largest,
        vision_overrides=dict(spec.vision_overrides),
    )


# --- text ----------------------------------------------------------------------------------------------


def _gib(n: float) -> str:
    return f"{n / GiB:.1f}"


def _billions(n: float) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def format_plan(plan: Plan) -> str:
    hw = plan.hardware
    lines = [
        f"plan: {plan.recipe} on {hw.nodes} node(s) x {hw.gpus} GPU(s) of {hw.gpu_memory:g} GiB; "
        f"mixed precision {plan.precision}, AdamW, attention {plan.attention}",
        "", "parts (built on the meta device; shape-* are code-written shapes of the named checkpoints)",
        f"  {'part':<10}{'parameters':>16}{'':>10}  {'published':>9}  resolved",
    ]
    for p in plan.parts:
        figure = _billions(p.published) if p.published else "-"
        where = p.ref if p.resolved == p.ref else f"{p.ref} -> {p.resolved}"
        lines.append(f"  {p.name:<10}{p.parameters:>16,}{_billions(p.parameters):>10}  {figure:>9}  {where}")
    lines.append(f"  {'total':<10}{plan.total:>16,}{_billions(plan.total):>10}")
    if plan.vision_overrides:
        lines.append(f"  (the vision tower has vision_overrides {plan.vision_overrides} on top of the published shape)")
    lines += ["", f"projector: {plan.projector}",
              "tokens per image: " + ", ".join(f"{label} -> {n}" for label, n in plan.tokens)]
    usable = USABLE * hw.gpu_memory
    for stage in plan.stages:
        modes = ", ".join(f"{part} {mode}" for part, mode in stage.modes.items())
        lines += ["", f"stage {stage.name} ({stage.kind}): {modes}; micro-batch {stage.batch_size} x {stage.seq_length} tokens per GPU"]
        if not stage.rows:
            lines.append(f"  {stage.note}")
            continue
        trained = sum(stage.trainable.values())
        per = ", ".join(f"{part} {n:,}" for part, n in stage.trainable.items())
        lines.append(f"  trainable {trained:,} ({100 * trained / plan.total:.2f} %): {per}")
        lines.append(f"  {'GiB per GPU':<22}{'ckpt':>5}{'weights':>9}{'grads':>8}{'optim':>8}{'live':>7}"
                     f"{'activ.':>9}{'total':>8}  fits {usable:.0f} GiB")
        for row in stage.rows:
            note = f"  (host RAM {_gib(row.cpu_ram)} GiB per node)" if row.cpu_ram and not row.checkpointing else ""
            lines.append(f"  {row.engine:<22}{'yes' if row.checkpointing else 'no':>5}{_gib(row.weights):>9}"
                         f"{_gib(row.gradients):>8}{_gib(row.optimizer):>8}{_gib(row.live):>7}{_gib(row.activations):>9}"
                         f"{_gib(row.total):>8}  {'yes' if fits(row, hw) else 'NO'}{note}")
        if stage.note:
            lines.append(f"  {stage.note}")
    lines += ["", f"model states per GPU if every parameter trained (DeepSpeed's assumption; largest layer "
                  f"{plan.largest_layer:,}): ours / DeepSpeed's estimator, GiB"]
    lines += [f"  {engine:<22}{_gib(ours):>8} / {_gib(theirs)}" for engine, ours, theirs in plan.all_trainable]
    lines += ["  (DeepSpeed counts an fp32 gradient copy too: 18 bytes of states per parameter to our 16)", "",
              "DeepSpeed's estimators, as they print:", plan.deepspeed_printout]
    return "\n".join(lines)
