"""What a run leaves behind besides weights: the log file, metrics.jsonl, TensorBoard/W&B events
(through accelerate's trackers) and a loss-curve PNG redrawn from metrics.jsonl."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from accelerate import Accelerator

log = logging.getLogger("vlm.train")


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:  # empty, or torn by a kill mid-write
        return None


def setup_logging(run_dir: Path, is_main: bool) -> None:
    if not is_main:
        logging.getLogger("vlm").setLevel(logging.WARNING)
        return
    logger = logging.getLogger("vlm")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        handler = logging.FileHandler(run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
        logger.propagate = False


class MetricsLog:
    """Appends one JSON line per logged step (main process only) and forwards to the trackers."""

    def __init__(self, accelerator: Accelerator, run_dir: Path):
        self.accelerator, self.path = accelerator, run_dir / "metrics.jsonl"

    def write(self, stage: str, step: int, metrics: dict[str, float]) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"stage": stage, "step": step, **metrics}) + "\n")
        self.accelerator.log({f"{stage}/{k}": v for k, v in metrics.items()}, step=step)

    def truncate_after(self, stage: str, step: int) -> None:
        """On resume, drop lines the killed run logged after its last checkpoint (and a line it was
        killed writing); the file is rewritten aside and renamed into place."""
        if not self.accelerator.is_main_process or not self.path.exists():
            return
        kept = [x for x in map(_parse, self.path.read_text().splitlines()) if x and not (x["stage"] == stage and x["step"] > step)]
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        tmp.write_text("".join(json.dumps(x) + "\n" for x in kept))
        os.replace(tmp, self.path)

    def plot(self, out: Path) -> None:
        if not self.accelerator.is_main_process or not self.path.exists():
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in map(_parse, self.path.read_text().splitlines()) if r]
        stages = list(dict.fromkeys(r["stage"] for r in rows))
        fig, axes = plt.subplots(1, max(len(stages), 1), figsize=(5 * max(len(stages), 1), 3.5), squeeze=False)
        for ax, stage in zip(axes[0], stages, strict=False):
            points = [(r["step"], r["loss"]) for r in rows if r["stage"] == stage and "loss" in r]
            ax.plot([p[0] for p in points], [p[1] for p in points])
            ax.set(title=stage, xlabel="optimizer step", ylabel="loss")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out, dpi=100)
        plt.close(fig)
