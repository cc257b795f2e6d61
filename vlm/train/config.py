"""Training configuration: small dataclasses, every field overridable from the command line.

A `Recipe` is the model to assemble (`BuildSpec`), an ordered list of `StageConfig`s and a
`RunConfig`; `vlm.train.overrides` maps ``--stages.align.optim.lr 1e-3`` onto these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
class PreferenceConfig:
    """DPO (and POVID) settings; used by the ``dpo`` stage kind."""

    beta: float = 0.1
    reference: str = "copy"  # copy: frozen copy of the start model | adapter: the policy with LoRA disabled
    sft_weight: float = 0.0  # + weight x mean token NLL of the chosen answers
    text_weight: float = 1.0  # weight of DPO(chosen vs rejected text)
    noise_weight: float = 0.0  # POVID: weight of DPO(chosen vs own greedy tokens under a noisy image)
    noise_step: int = 500  # diffusion step of the image noise (sigmoid betas 1e-5..5e-3, 1000 steps)


@dataclass
class MaskEmbedConfig:
    """Locality alignment (MaskEmbed) settings; used by the ``maskembed`` stage kind."""

    decoder_layers: int = 2
    decoder_heads: int = 4
    min_keep: float = 0.0  # keep-probability of a mask is drawn uniformly from [min_keep, max_keep]
    max_keep: float = 1.0


@dataclass
class StageConfig:
    """One stage: which `STAGES` kind, what trains, on which data, with which optimisation."""

    name: str
    kind: str = "sft"
    # per part: frozen | full | lora | qlora | from:K (train the encoder's blocks K.. on, 1-based)
    train: dict[str, str] = field(
        default_factory=lambda: {"vision": "frozen", "projector": "full", "llm": "frozen"}
    )
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    dpo: PreferenceConfig = field(default_factory=PreferenceConfig)
    maskembed: MaskEmbedConfig = field(default_factory=MaskEmbedConfig)
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
    start_from: str | None = None  # a finished model folder to start from instead of building `model`


@dataclass
class Recipe:
    name: str
    model: BuildSpec
    stages: list[StageConfig]
    run: RunConfig = field(default_factory=RunConfig)

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"recipe {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}")
