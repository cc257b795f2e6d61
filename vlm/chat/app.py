"""The Gradio chat page: images + multi-turn chat with streamed answers, for one loaded model."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from vlm.chat.session import ChatEngine, Conversation, Settings, Turn
from vlm.chat.uploads import ChatInputError, read_images
from vlm.eval.task import Sample, get_task

EMPTY = {"text": "", "files": []}
BUSY, IDLE = {"submit_btn": False, "stop_btn": True}, {"submit_btn": True, "stop_btn": False}
KEPT = "Your text and usable images are still in the box."
EXAMPLES_TASK = "synthetic_vqa"  # example prompts: held-out questions of the embedded default's world


@dataclass
class ChatState:
    """Everything one browser session owns: the conversation for the model, the messages on screen."""

    conversation: Conversation = field(default_factory=Conversation)
    display: list[dict[str, Any]] = field(default_factory=list)


def _warning(problems: list[str], kept: str) -> dict[str, Any]:
    lines = "\n".join(f"- {p}" for p in problems)
    return {"role": "assistant", "content": f"⚠️ **Not sent.**\n{lines}\n\n{kept}".strip()}


def model_panel(info: dict[str, Any], engine: ChatEngine) -> str:
    """Markdown for the side panel: `vlm.info.describe` as a table, plus the chat's limits."""
    rows = [f"| {name} | {info['parameters'][name]:,} | {desc} |" for name, desc in info["parts"].items()]
    return "\n".join(
        [
            f"**Model** `{info['path']}`",
            "",
            "| part | parameters | what |",
            "|---|---|---|",
            *rows,
            "",
            f"Image size {info['image_size']} px → **{info['tokens_per_image']} tokens per image**; "
            f"up to {engine.max_images} images per conversation; {engine.context}-token context.",
        ]
    )


def task_examples(task: str = EXAMPLES_TASK, count: int = 3) -> list[dict[str, Any]]:
    """Example messages from an eval task's own samples: the first question of each type (as many as
    ``count``) with its image, written to a temporary folder. None when the task has no local data."""
    try:
        benchmark = get_task(task)
    except KeyError:
        return []
    data = benchmark.default_data()
    if data is None:
        return []
    picked: dict[str, Sample] = {}
    for sample in benchmark.read(data):
        picked.setdefault(str(sample.meta.get("question_type", sample.id)), sample)
        if len(picked) == count:
            break
    folder = Path(tempfile.mkdtemp(prefix="vlm-chat-examples-"))
    examples = []
    for n, sample in enumerate(picked.values()):
        path = folder / f"example_{n}.png"
        sample.images[0].load(sample.id).save(path)
        examples.append({"text": sample.question, "files": [str(path)]})
    return examples


def build_demo(
    engine: ChatEngine, info: dict[str, Any], settings: Settings | None = None, update_every: float = 0.05,
    examples: list[dict[str, Any]] | None = None,
) -> gr.Blocks:
    """The page. Every handler works on its own session's `ChatState`; the engine is shared.

    The answer on screen is refreshed after each token, at most every ``update_every`` seconds
    (each refresh re-sends the conversation; 0: after every token). ``examples``: messages offered
    under the chat (default: `task_examples()`).
    """
    settings = settings or Settings()
    examples = task_examples() if examples is None else examples

    def submit(message: dict | None, state: ChatState, temperature: float, top_p: float, max_new: int) -> Iterator:
        message = message or {}
        text, files = (message.get("text") or "").strip(), list(message.get("files") or [])
        uploads, problems = read_images(files)
        kept = {"text": text, "files": [str(u.path) for u in uploads]}
        if not text:
            problems.append("Empty message: type a question" + (" about the image(s)." if files else "."))
        if not problems:
            try:
                engine.check_image_count(state.conversation, len(uploads))
            except ChatInputError as err:
                problems.append(str(err))
        if problems:
            state.display.append(_warning(problems, KEPT if text or uploads else ""))
            yield state.display, kept
            return
        turns = state.conversation.turns
        if turns and turns[-1].answer is None:  # an answer cancelled before it started
            turns[-1].answer = ""
        turns.append(Turn(text, [u.image for u in uploads]))
        start = len(state.display)
        state.display.append({"role": "user", "content": [*({"path": f} for f in kept["files"]), text]})
        notes = [f"{u.name}: {n}" for u in uploads for n in u.notes]
        if notes:
            state.display.append({"role": "assistant", "content": "ℹ️ " + "; ".join(notes) + "."})
        try:
            yield from _answer(state, Settings(temperature, top_p, int(max_new)), gr.update(value=EMPTY, **BUSY))
        except ChatInputError as err:  # the conversation no longer fits: this turn is taken back
            turns.pop()
            del state.display[start:]
            state.display.append(_warning([str(err)], KEPT))
            yield state.display, gr.update(value=kept, **IDLE)

    def _answer(state: ChatState, chosen: Settings, first_box: Any) -> Iterator:
        reply: dict[str, Any] = {"role": "assistant", "content": ""}
        state.display.append(reply)
        yield state.display, first_box
        shown = time.monotonic()
        for answer in engine.stream(state.conversation, chosen):
            reply["content"] = answer
            if time.monotonic() - shown >= update_every:
                shown = time.monotonic()
                yield state.display, gr.skip()
        reply["content"] = reply["content"] or "_(the model gave an empty answer)_"
        yield state.display, gr.update(**IDLE)

    def regenerate(state: ChatState, temperature: float, top_p: float, max_new: int) -> Iterator:
        turns = state.conversation.turns
        if not turns:
            state.display.append(_warning(["Nothing to regenerate yet."], ""))
            yield state.display, gr.skip()
            return
        last_user = max(i for i, m in enumerate(state.display) if m["role"] == "user")
        del state.display[last_user + 1 :]
        previous, turns[-1].answer = turns[-1].answer, None
        try:
            yield from _answer(state, Settings(temperature, top_p, int(max_new)), gr.update(**BUSY))
        except ChatInputError as err:
            turns[-1].answer = previous
            state.display[-1] = _warning([str(err)], "")
            yield state.display, gr.update(**IDLE)

    def stop(state: ChatState) -> None:
        state.conversation.stop_requested = True  # the answer's own last update restores the buttons

    def clear(state: ChatState) -> tuple:
        state.conversation.stop_requested = True
        return ChatState(), [], gr.update(value=EMPTY, **IDLE)

    with gr.Blocks(title="vlm chat") as demo:
        state = gr.State(ChatState())  # deep-copied: a fresh one per browser session
        gr.Markdown("## vlm chat\nAttach one or more images with the paperclip, ask a question, press Enter.")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    height=460,
                    feedback_options=None,
                    buttons=["copy", "copy_all"],
                    placeholder="Upload an image and ask about it, or try an example below.",
                )
                box = gr.MultimodalTextbox(
                    file_count="multiple",
                    sources=["upload"],
                    placeholder="Ask about the image(s)…",
                    show_label=False,
                    stop_btn=False,  # shown while an answer streams
                )
                with gr.Row():
                    regen_btn = gr.Button("Regenerate", elem_id="regenerate")
                    clear_btn = gr.Button("Clear", elem_id="clear")
                if examples:
                    gr.Examples([[e] for e in examples], inputs=[box], label="Example prompts")
            with gr.Column(scale=2):
                with gr.Accordion("Generation", open=True):
                    temperature = gr.Slider(0, 1.5, value=settings.temperature, step=0.05, label="Temperature (0 = greedy)")
                    top_p = gr.Slider(0.05, 1, value=settings.top_p, step=0.05, label="Top-p")
                    max_new = gr.Slider(1, 1024, value=settings.max_new_tokens, step=1, label="Max new tokens", elem_id="max-new-tokens")
                with gr.Accordion("Model", open=True):
                    gr.Markdown(model_panel(info, engine), elem_id="model-panel")
        knobs = [temperature, top_p, max_new]
        sent = box.submit(submit, [box, state, *knobs], [chatbot, box], api_name="chat")
        again = regen_btn.click(regenerate, [state, *knobs], [chatbot, box], api_name="regenerate")
        # not cancelled: the answer ends at the next token and its last state is shown and kept
        box.stop(stop, [state], None, queue=False, api_name="stop")
        clear_btn.click(clear, [state], [state, chatbot, box], cancels=[sent, again], queue=False, api_name="clear")
        chatbot.clear(clear, [state], [state, chatbot, box], cancels=[sent, again], queue=False, api_visibility="private")
    return demo
