"""Do the image tokens say which objects are present? A probe on the tokens the LLM receives.

Hallucination can come from the image tokens (the encoder/projector never encoded an object) or
from the LLM (it has them and does not use them). This probe separates the two on the synthetic
world: a small per-token MLP, max-pooled over the image's tokens, is trained on train scenes to tell
for each of the 56 (colour, shape) objects whether it is in the scene; reported is its ROC AUC on
held-out test scenes (0.5: the tokens do not carry it). Compare with `vlm.shapes.hallucination.yes_no_auc`,
which asks the LLM the same thing.

    python -m vlm.shapes.token_probe MODEL_DIR [--train 3000] [--test 500] [--size 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from vlm.eval.metrics.auc import roc_auc
from vlm.shapes.world import PAIRS, SyntheticWorld


def presence_labels(world: SyntheticWorld, n: int) -> torch.Tensor:
    """(n, 56): 1 where the scene holds that (colour, shape)."""
    labels = torch.zeros(n, len(PAIRS))
    for i in range(n):
        for o in world.scene(i).objects:
            labels[i, PAIRS.index((o.colour, o.shape))] = 1
    return labels


def image_tokens(model, processor, world: SyntheticWorld, n: int, batch_size: int = 64) -> torch.Tensor:
    """(n, tokens, hidden): the projected image tokens of the first ``n`` scenes."""
    out = []
    for start in range(0, n, batch_size):
        images = [world.image(i) for i in range(start, min(n, start + batch_size))]
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out.append(model.get_image_features(pixels))
    return torch.cat(out)


def fit_presence_probe(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
    steps: int = 800, hidden: int = 128, seed: int = 0,
) -> float:
    """Train ``max over tokens of MLP(token)`` -> presence logits; the test ROC AUC over all (scene, object)."""
    mean, std = train.mean((0, 1)), train.std((0, 1)) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = nn.Sequential(nn.Linear(train.shape[-1], hidden), nn.GELU(), nn.Linear(hidden, train_labels.shape[1]))
    optimizer = torch.optim.Adam(probe.parameters(), lr=3e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(probe(train).amax(1), train_labels)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        scores = probe(test).amax(1).flatten()
    labels = test_labels.flatten()
    return roc_auc(scores[labels == 1].tolist(), scores[labels == 0].tolist())


def presence_probe(
    model_dir: Path, n_train: int = 3000, n_test: int = 500, image_size: int = 256, steps: int = 800
) -> float:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    train, test = SyntheticWorld("train", image_size), SyntheticWorld("test", image_size)
    return fit_presence_probe(image_tokens(model, processor, train, n_train), presence_labels(train, n_train),
                              image_tokens(model, processor, test, n_test), presence_labels(test, n_test), steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vlm.shapes.token_probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    auc = presence_probe(args.model, args.train, args.test, args.size)
    print(f"object presence from the image tokens: ROC AUC {auc:.3f} (0.5 = not encoded)")


if __name__ == "__main__":
    main()
