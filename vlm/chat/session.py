"""A conversation with a loaded model: turns + images -> chat messages -> streamed answer text.

The prompt is rendered by the processor's chat template (`processor.apply_chat_template`, as in
`vlm.eval.generate`); tokens stream through a `TextIteratorStreamer` fed by `generate` in one of the
engine's long-lived worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, StoppingCriteria, TextIteratorStreamer

from vlm.chat.uploads import ChatInputError
from vlm.config import VLMConfig
from vlm.layout import image_layout

ROOM_FOR_TEXT = 256  # context positions kept free for text when deciding how many images fit


@dataclass
class Settings:
    temperature: float = 0.2  # 0: greedy
    top_p: float = 0.9
    max_new_tokens: int = 128


@dataclass
class Turn:
    text: str
    images: list[Image.Image] = field(default_factory=list)
    answer: str | None = None  # None while it is being generated


@dataclass
class Conversation:
    """One user's chat: its turns (with their images) and a flag that stops the current answer."""

    turns: list[Turn] = field(default_factory=list)
    stop_requested: bool = False

    def images(self) -> list[Image.Image]:
        return [image for turn in self.turns for image in turn.images]

    def messages(self) -> list[dict[str, Any]]:
        """Chat messages: each turn's images before its text, answered turns with their answer."""
        out: list[dict[str, Any]] = []
        for turn in self.turns:
            content = [{"type": "image"} for _ in turn.images] + [{"type": "text", "text": turn.text}]
            out.append({"role": "user", "content": content})
            if turn.answer is not None:
                out.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
        return out


class _TokenStreamer(TextIteratorStreamer):
    """Hands out text after every token (the base class waits for a space), holding back only a
    partly generated UTF-8 character."""

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if len(text) > self.print_len and not text.endswith("\ufffd"):
            self.on_finalized_text(text[self.print_len :])
            self.print_len = len(text)


class _StopWhen(StoppingCriteria):
    def __init__(self, flag: Any):
        self.flag = flag

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), bool(self.flag()), dtype=torch.bool, device=input_ids.device)


class ChatEngine:
    """The model and processor, loaded once and shared by every conversation."""

    def __init__(self, model: Any, processor: Any, max_images: int = 4, workers: int = 1):
        self.model, self.processor = model.eval(), processor
        # long-lived generation threads: a thread per answer would leave the allocator's per-thread caches
        # and the thread pools of the math libraries to grow with every new thread
        self.workers = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vlm-chat-generate")
        self._running: set[int] = set()  # ids of the generations under way

        config = model.config
        self.context = int(getattr(config.text_config, "max_position_embeddings", 0) or 2048)
        # the most one image can take (anyres/tiles counts depend on its size)
        self.tokens_per_image = (
            image_layout(config).most_tokens() if isinstance(config, VLMConfig) else int(config.image_seq_length)
        )
        fits = (self.context - ROOM_FOR_TEXT) // max(self.tokens_per_image, 1)
        self.max_images = max(0, min(max_images, fits))

    @property
    def generating(self) -> int:
        """How many answers are being generated right now."""
        return len(self._running)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, max_images: int = 4, workers: int = 1) -> ChatEngine:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModelForImageTextToText.from_pretrained(path).to(device)
        return cls(model, AutoProcessor.from_pretrained(path), max_images=max_images, workers=workers)

    def check_image_count(self, conversation: Conversation, new_images: int) -> None:
        total = len(conversation.images()) + new_images
        if total > self.max_images:
            had = len(conversation.images())
            raise ChatInputError(
                f"Too many images: this conversation would hold {total} ({had} before this message), "
                f"and this model takes at most {self.max_images} ({self.tokens_per_image} tokens each, "
                f"{self.context}-token context). Send fewer, or press Clear to start a new conversation."
            )

    def _inputs(self, conversation: Conversation) -> dict[str, torch.Tensor]:
        images = conversation.images()
        kwargs = {"images": [images]} if images else {}
        inputs = self.processor.apply_chat_template(
            [conversation.messages()],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs=kwargs,
        )
        return {k: v.to(self.model.device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}

    def stream(self, conversation: Conversation, settings: Settings) -> Iterator[str]:
        """The answer to the last turn so far, after every generated token; it is also stored in
        ``conversation.turns[-1].answer``, so a stopped answer keeps what was generated.

        Setting ``conversation.stop_requested`` (any time before the answer is done, even before it
        starts) ends the answer after the current token; it is cleared when the answer ends."""
        turn = conversation.turns[-1]
        inputs = self._inputs(conversation)
        length = inputs["input_ids"].shape[1]
        max_new = min(int(settings.max_new_tokens), self.context - length)
        if max_new < 1:
            raise ChatInputError(
                f"The conversation is {length} tokens, the whole of this model's {self.context}-token "
                "context. Press Clear to start a new conversation."
            )
        abandoned = threading.Event()
        tokenizer = self.processor.tokenizer
        streamer = _TokenStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        options: dict[str, Any] = {"max_new_tokens": max_new, "streamer": streamer, "do_sample": False}
        if settings.temperature > 0:
            options.update(do_sample=True, temperature=float(settings.temperature), top_p=float(settings.top_p))
        if self.model.generation_config.pad_token_id is None:
            options["pad_token_id"] = tokenizer.pad_token_id
        options["stopping_criteria"] = [_StopWhen(lambda: conversation.stop_requested or abandoned.is_set())]
        failure: list[BaseException] = []

        def work() -> None:
            self._running.add(id(streamer))
            try:
                with torch.inference_mode():
                    self.model.generate(**inputs, **options)
            except BaseException as err:  # noqa: BLE001 - handed to the reading thread below
                failure.append(err)
                streamer.end()
            finally:
                self._running.discard(id(streamer))

        done = self.workers.submit(work)
        turn.answer = ""
        try:
            for piece in streamer:
                if piece:  # the closing flush is often empty
                    turn.answer += piece
                    yield turn.answer
        finally:
            abandoned.set()  # a reader that went away (a cancelled request) stops the generation too
            done.result()
            conversation.stop_requested = False  # a stop asked for before the start ends this answer only
        if failure:
            raise failure[0]
