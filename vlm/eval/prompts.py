"""Prompt styles: how a benchmark question becomes the user turn. The style is recorded with results,
because wording moves scores by points (see ../shared/EVAL.md).

A task has a ``kind``; a style maps each kind to a template. ``llava15`` is LLaVA-1.5's evaluation
wording (the default); ``plain`` is the bare question (options still listed, no instruction).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

from vlm.registry import Registry

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."
UNANSWERABLE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
GROUND = "Please provide the bounding box coordinate of the region this sentence describes: {question}"


@dataclass(frozen=True)
class PromptStyle:
    """``templates`` maps a task kind to a format string with ``{question}`` and ``{options}``; a kind
    missing from the map gets the question as it is (``as_is`` kinds: MME, synthetic questions), and a
    ``short...`` kind the bare question in styles that do not know it."""

    name: str
    templates: dict[str, str] = field(default_factory=dict)

    def format(self, kind: str, question: str, options: Sequence[str] | None = None) -> str:
        if kind == "choice" and not options:
            raise ValueError("a multiple-choice question needs its options")
        listed = "\n".join(f"{string.ascii_uppercase[i]}. {o}" for i, o in enumerate(options or ()))
        template = self.templates.get(kind, "{question}\n{options}" if kind == "choice" else "{question}")
        return template.format(question=question, options=listed)


PROMPT_STYLES: Registry[PromptStyle] = Registry("prompt style")
PROMPT_STYLES.register(
    "llava15",
    PromptStyle(
        "llava15",
        {
            "short": "{question}" + SHORT,
            "short_unanswerable": "{question}" + UNANSWERABLE + SHORT,  # VizWiz
            "choice": "{question}\n{options}" + LETTER,
            "ground": GROUND,
        },
    ),
)
PROMPT_STYLES.register("plain", PromptStyle("plain"))
