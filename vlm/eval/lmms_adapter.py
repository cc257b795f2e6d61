"""The lmms-eval model ``vlm``: ``lmms-eval --model vlm --model_args pretrained=PATH --tasks ...``.

Registered through the ``lmms_eval.models`` entry point (see `vlm.eval.lmms_manifest`). Generation is
our batched greedy core (`generate_answers`, left padding + KV cache; sampling settings in a task's
``generation_kwargs`` are ignored: evaluation is greedy) and option scoring is `continuation_logprobs`.
Needs the ``eval`` extra.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lmms_eval.api.instance import GenerationResult
from lmms_eval.api.model import lmms
from PIL import Image

from vlm.data.images import check_image
from vlm.eval.generate import generate_answers
from vlm.eval.likelihood import continuation_logprobs
from vlm.eval.runner import load_model

IMAGE_MARKER = "<image>"


class VLMLmms(lmms):
    is_simple = True

    def __init__(
        self,
        pretrained: str,
        batch_size: int | str = 8,
        max_new_tokens: int | str = 64,
        device: str | None = None,
        max_batch_size: int | None = None,
        **kwargs: Any,
    ):
        """``pretrained``: our folder or a native Llava folder; ``batch_size`` comes from lmms-eval's
        ``--batch_size``; ``device`` (``cpu``, ``cuda``, ...) defaults to the GPU when there is one."""
        super().__init__()
        if kwargs:
            known = "pretrained, max_new_tokens, device (batch size: lmms-eval's --batch_size)"
            raise ValueError(f"unknown model_args for vlm: {sorted(kwargs)}; known: {known}")
        self.model, self.processor = load_model(pretrained)
        if device:
            self.model.to(device)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)

    def _visuals(self, doc_to_visual: Any, doc_id: int, task: str, split: str) -> list[Image.Image]:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
        flat = [v for item in visuals for v in (item if isinstance(item, list) else [item])]
        bad = [type(v).__name__ for v in flat if not isinstance(v, Image.Image)]
        if bad:
            raise ValueError(f"vlm evaluates images only; task {task!r} gave {bad}")
        return [check_image(v, f"{task}/{doc_id}") for v in flat]

    def _messages(self, context: str, images: list[Image.Image]) -> list[dict]:
        text = context.replace(IMAGE_MARKER, "").strip()
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
        return [{"role": "user", "content": content}]

    def generate_until(self, requests: list[Any]) -> list[str]:
        groups: dict[int, list[int]] = defaultdict(list)
        prompts, stops = [], []
        for i, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            images = self._visuals(doc_to_visual, doc_id, task, split)
            prompts.append((self._messages(context, images), images))
            until = gen_kwargs.get("until") or []
            stops.append([until] if isinstance(until, str) else list(until))
            groups[int(gen_kwargs.get("max_new_tokens", self.max_new_tokens))].append(i)
        replies = [""] * len(requests)
        for max_new, idx in groups.items():
            answers = generate_answers(
                self.model, self.processor, [prompts[i] for i in idx], self.batch_size, max_new
            )
            for i, answer in zip(idx, answers, strict=True):
                replies[i] = _cut(answer, stops[i])
        return replies

    def loglikelihood(self, requests: list[Any]) -> list[Any]:
        """Per request the negated summed log-probability (a positive loss: lmms-eval takes the argmin
        over a question's options) and whether greedy decoding gives the continuation.

        Each pair is wrapped in a `GenerationResult`: lmms-eval 0.7.3's evaluator turns any other
        non-string output into its ``str()`` (``unwrap_generation_output``), which breaks every
        ``multiple_choice`` task; the wrapper's payload is passed through untouched."""
        out = []
        for request in requests:
            context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            images = self._visuals(doc_to_visual, doc_id, task, split)
            ((logprob, greedy),) = continuation_logprobs(
                self.model,
                self.processor,
                self._messages(context, images),
                images,
                [continuation],
                with_greedy=True,
            )
            out.append(GenerationResult(text=(-logprob, greedy)))
        return out

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError("vlm does not implement lmms-eval's multi-round generation")


def _cut(text: str, stops: list[str]) -> str:
    for stop in stops:
        if stop and stop in text:
            text = text.split(stop)[0]
    return text.strip()
