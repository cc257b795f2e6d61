"""Text pre-training of the tiny LM on the shapes world: what a real VLM inherits from its LLM.

A real LLM arrives knowing how to answer "is X there?" about what it has read. The random tiny LM
does not, and learning it through image tokens alone did not happen in any budget tried (see the
README). So ``tiny-llama-shapes`` first reads scenes as text ("Objects: a small red circle, a large
blue star.") and answers questions about them: object existence (the ``objects`` task's questions)
half of the time, else a colour, shape, count or tiny-object question. Loss on the answer tokens
only. ``RUN/pretrain.json`` records the losses and the held-out text-existence AUC.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from vlm.eval.metrics.auc import roc_auc
from vlm.shapes.language import article, phrase
from vlm.shapes.questions import object_probes, vqa_questions
from vlm.shapes.world import Scene, SyntheticWorld


@dataclass
class TextPretrainConfig:
    steps: int = 12000
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0
    eval_scenes: int = 300


def scene_text(scene: Scene, rng: random.Random) -> str:
    objects = list(scene.objects)
    rng.shuffle(objects)
    return "Objects: " + ", ".join(article(phrase(o)) for o in objects) + "."


def text_example(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """``(prompt, answer)``: the scene as text, then one question about it."""
    if rng.random() < 0.5:
        q = rng.choice(object_probes(scene, rng))
    else:
        q = rng.choice([q for q in vqa_questions(scene, rng) if q["type"] != "spatial"])
    return f"{scene_text(scene, rng)}\n{q['question']}\n", q["answer"]


def _batch(tokenizer, examples: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    rows, labels = [], []
    for prompt, answer in examples:
        p = [tokenizer.bos_token_id] + tokenizer.encode(prompt, add_special_tokens=False)
        a = tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
        rows.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([x + [-100] * (width - len(x)) for x in labels]),
    }


def existence_auc(model, tokenizer, n: int, seed: int = 0) -> float:
    """Held-out (test scenes) AUC of logit(yes) - logit(no) on the text existence questions."""
    world, rng = SyntheticWorld("test", 64), random.Random(seed)
    yes, no = (tokenizer.encode(w, add_special_tokens=False)[0] for w in ("yes", "no"))
    pos, neg = [], []
    model.eval()
    for i in range(n):
        scene = world.scene(i)
        q = rng.choice(object_probes(scene, rng))
        ids = [tokenizer.bos_token_id] + tokenizer.encode(f"{scene_text(scene, rng)}\n{q['question']}\n",
                                                          add_special_tokens=False)
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, -1]
        (pos if q["answer"] == "yes" else neg).append(float(logits[yes] - logits[no]))
    model.train()
    return roc_auc(pos, neg)


def pretrain_text(start: Path, out: Path, config: TextPretrainConfig | None = None) -> dict:
    """Train the LM in ``start`` on shapes-world text; save it (with tokenizer) to ``out``."""
    config = config or TextPretrainConfig()
    tokenizer = AutoTokenizer.from_pretrained(start)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AutoModelForCausalLM.from_pretrained(start)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        world, rng = SyntheticWorld("train", 64), random.Random(config.seed)
        losses = []
        for step in tqdm(range(config.steps), desc=f"self-training {start.name} on text (once per cache)"):
            examples = [text_example(world.scene(rng.randrange(100_000)), rng) for _ in range(config.batch_size)]
            loss = model(**_batch(tokenizer, examples)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 500 == 0 or step == config.steps - 1:
                losses.append(round(loss.item(), 4))
        auc = existence_auc(model, tokenizer, config.eval_scenes)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    GenerationConfig.from_pretrained(start).save_pretrained(out)
    report = {"config": asdict(config), "losses": losses, "text_existence_auc": round(auc, 4)}
    (out / "pretrain.json").write_text(json.dumps(report, indent=1))
    return report
