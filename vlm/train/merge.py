"""`vlm merge`: turn any training checkpoint (LoRA or full; plain, DeepSpeed or FSDP) into a plain
`from_pretrained` folder, using the run's own config to rebuild the stage's starting point."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from vlm.train.checkpoint import SHARDED, STATE_FILE
from vlm.train.config import StageConfig
from vlm.train.engine import write_stage_result
from vlm.train.overrides import from_dict
from vlm.train.stages.base import STAGES


def stage_of(checkpoint: Path) -> tuple[Path, StageConfig, Path]:
    """(run folder, the stage's config, the stage's starting model) for ``RUN/stages/NAME/checkpoints/checkpoint-N``."""
    if not (checkpoint / STATE_FILE).is_file():
        raise FileNotFoundError(f"{checkpoint} is not a complete training checkpoint (no {STATE_FILE})")
    run_dir, name = checkpoint.parents[3], checkpoint.parents[1].name
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    names = [s["name"] for s in config["stages"]]
    if name not in names:
        raise ValueError(f"{run_dir}/config.yaml has no stage {name!r} (stages: {names})")
    stage = from_dict(StageConfig, config["stages"][names.index(name)])
    i = names.index(name)
    source = run_dir / "init" if i == 0 else run_dir / "stages" / names[i - 1] / "model"
    return run_dir, stage, source


def trained_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    if (checkpoint / "model.safetensors").is_file():
        return load_file(checkpoint / "model.safetensors")
    if (checkpoint / "pytorch_model").is_dir():  # a DeepSpeed checkpoint: consolidate the ZeRO shards
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint), tag="pytorch_model")
    if (checkpoint / SHARDED).is_dir():  # an FSDP checkpoint: read the whole sharded model in this process
        from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

        state = _load_state_dict_from_keys(checkpoint_id=str(checkpoint / SHARDED))["model"]
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    raise FileNotFoundError(f"{checkpoint} holds none of model.safetensors, a DeepSpeed pytorch_model/ folder or an "
                            f"FSDP {SHARDED}/ folder")


def merge_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    checkpoint, out = Path(checkpoint), Path(out)
    _, config, source = stage_of(checkpoint)
    stage = STAGES.get(config.kind)(config)
    weights = {k.removeprefix("module."): v for k, v in trained_weights(checkpoint).items()}
    return write_stage_result(stage, source, weights, stage.load_processor(source), out)
