"""Training configuration: small dataclasses, every field overridable from the command line.

A `Recipe` is the model to assemble (`BuildSpec`), an ordered list of `StageConfig`s and a
`RunConfig`; `vlm.train.overrides` maps ``--stages.align.optim.lr 1e-3`` onto these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from vlm.build import BuildSpec


@dataclass
class DataConfig:
    """Where a stage's samples come from: a `DATA_SOURCES` key and its arguments."""

    source: str = "synthetic"  # synthetic | llava_json | hf_local | mixture
    path: str | None = None  # JSON/JSONL file, datasets folder/files, or mixture YAML
    image_root: str | None = None
    tasks: list[str] = field(default_factory=lambda: ["caption"])  # synthetic world tasks
    n_images: int = 2000  # synthetic world scenes
    first_image: int = 0  # synthetic world: scenes first_image .. first_image + n_images - 1
    image_size: int = 96  # synthetic world render size (the processor resizes to the model's)
    max_length: int = 512
    truncation: str = "text"  # text | drop


@dataclass
class OptimConfig:
    lr: float = 2e-5
    lr_projector: float | None = None  # None: `lr`
    lr_llm: float | None = None
    lr_vision: float | None = None
    weight_decay: float = 0.0  # applied to matrices only; biases and norms never decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: str = "cosine"  # any transformers scheduler name: cosine | linear | constant_with_warmup ...
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0  # 0 disables clipping


@dataclass
class LoraConfig:
    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    modules: str = "all-linear"  # all-linear | comma-separated module-name suffixes (q_proj,v_proj)


@dataclass
class StageConfig:
    """One stage: which `STAGES` kind, what trains, on which data, with which optimisation. ``options``
    are the kind's own (its ``Options`` dataclass, e.g. LoRA settings, DPO's beta); the command line
    reaches their fields directly: ``--stages.instruct.lora.r 16``."""

    name: str
    kind: str = "sft"
    # per part of the kind: frozen | full | lora | qlora | from:K (train the encoder's blocks K.. on, 1-based)
    train: dict[str, str] = field(
        default_factory=lambda: {"vision": "frozen", "projector": "full", "llm": "frozen"}
    )
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    options: Any = None  # the kind's options (None: its defaults)
    delegates: ClassVar[tuple[str, ...]] = ("options",)  # overrides reach the options' fields directly
    batch_size: int = 8  # per process
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int = 0  # optimizer steps; >0 overrides epochs
    group_by_length: bool = True
    save_every: int = 200  # optimizer steps between checkpoints; 0: only at the end
    keep_last: int = 2
    log_every: int = 10


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    seed: int = 42
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_checkpointing: bool = False
    tracker: str = "tensorboard"  # tensorboard | wandb | none
    resume: bool = False  # continue from the run folder's last checkpoint / finished stages
    strict: bool = False  # fail at the first bad sample instead of skipping and counting it
    num_workers: int = 0
    cpu_threads: int = 0  # torch threads per process on CPU; 0: the machine's cores shared by the local processes
    eval_tasks: list[str] = field(default_factory=lambda: ["synthetic_vqa", "synthetic_pope"])  # `vlm eval` tasks
    eval_limit: int | None = None  # first N questions of each eval task (None: all); 0 skips the evaluation
    eval_batch_size: int = 32
    start_from: str | None = None  # a model/encoder folder, named part or recipe:NAME to start from instead of building `model`
    compare_with: str | None = None  # a stage: the model it starts from is evaluated too (before / after)


@dataclass
class Recipe:
    """The model to assemble (None when the run starts from a folder: ``run.start_from``), its stages in
    order, and the run's settings."""

    name: str
    model: BuildSpec | None
    stages: list[StageConfig]
    run: RunConfig = field(default_factory=RunConfig)

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"recipe {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}")
