"""The Gradio chat page, served once for this module: its API through gradio_client (streaming,
bad input, regenerate, clear, two sessions at once) and the page itself in headless Chromium.

Screenshots go to tests/artifacts/ (git-ignored). Chromium is required: `scripts/setup.sh`
installs it; without it these tests fail rather than skip.
"""

from __future__ import annotations

import inspect
import os
import socket
import tempfile
import threading
from itertools import pairwise
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="vlm-chat-gradio-"))  # before gradio loads

import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from test_chat_session import bad_files  # noqa: E402

from vlm.chat.app import KEPT, task_examples  # noqa: E402
from vlm.chat.session import ChatEngine, Conversation, Settings, Turn  # noqa: E402
from vlm.chat.uploads import read_image  # noqa: E402
from vlm.info import describe  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTINGS = Settings(temperature=0.0, top_p=1.0, max_new_tokens=10)  # greedy: answers are reproducible
SHORT = 4  # max new tokens where the answer need not stream visibly (each streamed update costs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(built_models):
    from vlm.chat.app import build_demo

    path = built_models()
    engine = ChatEngine.load(path, device="cpu", max_images=2, workers=2)
    demo = build_demo(engine, describe(path), SETTINGS, update_every=0)  # every token
    demo.queue(default_concurrency_limit=2, max_size=16)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", engine
    demo.close()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("chat-pictures")
    out = bad_files(folder)
    for colour in ("red", "blue", "green"):
        out[colour] = folder / f"{colour}.png"
        Image.new("RGB", (48, 40), colour).save(out[colour])
    return out


def client(url: str):
    from gradio_client import Client

    return Client(url, analytics_enabled=False, verbose=False)


def message(text: str, *files: Path) -> dict:
    from gradio_client import handle_file

    return {"text": text, "files": [handle_file(str(f)) for f in files]}


def texts(history: list[dict], role: str) -> list[str]:
    return ["".join(c.get("text", "") for c in m["content"]) for m in history if m["role"] == role]


def expected_answer(engine: ChatEngine, turns: list[tuple[str, list[Path]]], max_new: int = SHORT) -> str:
    """What a fresh conversation with exactly these turns answers (greedy), computed directly, as
    the Chatbot shows it (it passes text through `inspect.cleandoc`: tabs become spaces)."""
    conversation, settings = Conversation(), Settings(0.0, 1.0, max_new)
    for text, files in turns:
        if conversation.turns:
            conversation.turns[-1].answer = list(engine.stream(conversation, settings))[-1]
        conversation.turns.append(Turn(text, [read_image(f).image for f in files]))
    return inspect.cleandoc(list(engine.stream(conversation, settings))[-1])


def test_api_streams_multi_turn_answers(server, pictures):
    url, engine = server
    api = client(url)
    outputs = list(api.submit(message("What is shown?", pictures["red"]), 0.0, 1.0, 10, api_name="/chat"))
    answers = [texts(history, "assistant")[-1] for history, _ in outputs]
    grown = [a for a in answers if a]
    assert len(set(grown)) >= 3 and all(b.startswith(a) for a, b in pairwise(grown))  # streamed
    history = outputs[-1][0]
    assert texts(history, "user") == ["What is shown?"]
    assert history[0]["content"][0]["type"] == "file"
    busy = {"__type__": "update", "value": {"text": "", "files": []}, "submit_btn": False, "stop_btn": True}
    assert outputs[0][1] == busy and outputs[-1][1] == {"__type__": "update", "submit_btn": True, "stop_btn": False}
    assert answers[-1] == expected_answer(engine, [("What is shown?", [pictures["red"]])], 10)
    history, _ = api.predict(message("And this one?", pictures["blue"]), 0.0, 1.0, 10, api_name="/chat")
    assert texts(history, "user") == ["What is shown?", "And this one?"]
    second = texts(history, "assistant")[-1]
    assert second == expected_answer(engine, [("What is shown?", [pictures["red"]]),
                                              ("And this one?", [pictures["blue"]])], 10)
    history, _ = api.predict(0.0, 1.0, 10, api_name="/regenerate")  # greedy: the same answer again
    assert len(texts(history, "assistant")) == 2 and texts(history, "assistant")[-1] == second
    history, box = api.predict(api_name="/clear")
    assert history == [] and box["value"] == {"text": "", "files": []}
    history, _ = api.predict(message("Fresh start?"), 0.0, 1.0, SHORT, api_name="/chat")
    assert texts(history, "user") == ["Fresh start?"]
    assert texts(history, "assistant")[-1] == expected_answer(engine, [("Fresh start?", [])])


def test_api_bad_input_is_a_chat_message(server, pictures):
    url, _ = server
    api = client(url)
    expected = {
        "text": "notes.txt is not an image I can read (use PNG, JPEG, GIF, WebP, BMP or TIFF).",
        "empty": "empty.png is empty (0 bytes).",
        "huge": "huge.png is too large (over 64,000,000 pixels); please resize it to about 8000x8000 or less.",
    }
    for kind, problem in expected.items():
        history, box = api.predict(message("What is it?", pictures[kind]), 0.0, 1.0, SHORT, api_name="/chat")
        assert texts(history, "assistant")[-1] == (
            f"⚠️ **Not sent.**\n- {problem}\n\nYour text and usable images are still in the box."
        )
        assert box["text"] == "What is it?" and box["files"] == []
    history, box = api.predict(message("  ", pictures["red"]), 0.0, 1.0, SHORT, api_name="/chat")
    assert "- Empty message: type a question about the image(s)." in texts(history, "assistant")[-1]
    assert [Path(f).name for f in box["files"]] == ["red.png"]  # kept for the next try
    history, _ = api.predict(message(""), 0.0, 1.0, SHORT, api_name="/chat")
    assert texts(history, "assistant")[-1] == "⚠️ **Not sent.**\n- Empty message: type a question."
    history, _ = api.predict(message("Three?", pictures["red"], pictures["blue"], pictures["green"]),
                             0.0, 1.0, SHORT, api_name="/chat")
    assert "- Too many images: this conversation would hold 3 (0 before this message), and this model " \
           "takes at most 2" in texts(history, "assistant")[-1]
    assert texts(history, "user") == []  # nothing reached the model so far
    history, _ = api.predict(message("Odd formats?", pictures["gif"], pictures["deep"]), 0.0, 1.0, SHORT, api_name="/chat")
    assert texts(history, "user") == ["Odd formats?"]
    assert ("ℹ️ spin.gif: it is animated (3 frames): only the first frame is used; "
            "deep.png: 16-bit image scaled to 8-bit RGB.") in texts(history, "assistant")
    history, _ = api.predict(message("And print?", pictures["cmyk"]), 0.0, 1.0, SHORT, api_name="/chat")
    assert "- Too many images" in texts(history, "assistant")[-1]  # 2 already in this conversation
    history, _ = api.predict(api_name="/clear")
    history, _ = api.predict(message("And print?", pictures["cmyk"]), 0.0, 1.0, SHORT, api_name="/chat")
    assert texts(history, "assistant")[0] == "ℹ️ print.jpg: converted from CMYK to RGB."
    assert texts(history, "assistant")[-1]  # and answered: the server keeps serving


def test_api_two_sessions_at_once_stay_apart(server, pictures):
    url, engine = server
    sessions = {"red": client(url), "blue": client(url)}
    results: dict[str, list] = {}

    def chat(colour: str) -> None:
        api = sessions[colour]
        api.predict(message(f"Is it {colour}?", pictures[colour]), 0.0, 1.0, SHORT, api_name="/chat")
        results[colour] = api.predict(message("Sure?"), 0.0, 1.0, SHORT, api_name="/chat")[0]

    threads = [threading.Thread(target=chat, args=(c,)) for c in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for colour, history in results.items():
        assert texts(history, "user") == [f"Is it {colour}?", "Sure?"]
        turns = [(f"Is it {colour}?", [pictures[colour]]), ("Sure?", [])]
        assert texts(history, "assistant")[-1] == expected_answer(engine, turns)


# --- in the browser -------------------------------------------------------------------------------

WATCH = """() => {
    // every text the last answer showed, and how many answers ended (the stop button came and went)
    window.__answers = [];
    window.__done = 0;
    let busy = false;
    new MutationObserver(() => {
        const bots = document.querySelectorAll('[data-testid=bot]');
        const text = bots.length ? bots[bots.length - 1].innerText.trim() : '';
        if (text && window.__answers[window.__answers.length - 1] !== text) window.__answers.push(text);
        const now = !!document.querySelector('.multimodal-textbox button.stop-button');
        if (busy && !now) window.__done += 1;
        busy = now;
    }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs chromium with apt-get)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(url)
    page.wait_for_selector(".multimodal-textbox textarea[data-testid=textbox]")
    page.evaluate(WATCH)
    return page


def send(page, text: str, *files: Path, images: int = 0) -> None:
    """Attach ``files`` (``images`` of them show a thumbnail once uploaded), type, submit."""
    if files:
        page.set_input_files(".multimodal-textbox input[data-testid=file-upload]", [str(f) for f in files])
        page.wait_for_function(
            "n => document.querySelectorAll('.multimodal-textbox .thumbnail-item').length >= n", arg=len(files)
        )
        page.wait_for_function(
            "n => [...document.querySelectorAll('.multimodal-textbox img')]"
            ".filter(i => i.src.includes('/gradio_api/file=')).length >= n",
            arg=images,
        )
    page.fill(".multimodal-textbox textarea[data-testid=textbox]", text)
    page.click(".multimodal-textbox button[data-testid=submit-button]")


def bubbles(page, role: str) -> list[str]:
    """The text of each message of ``role`` (an image and its text are separate bubbles)."""
    texts = [t.strip() for t in page.locator(f"[data-testid={role}]").all_inner_texts()]
    return [t for t in texts if t]


def wait_idle(page, answers: int) -> None:
    """Until ``answers`` answers have finished streaming on this page (each shows the stop button
    while it streams; it goes away with the answer's last update)."""
    page.wait_for_function("n => window.__done >= n", arg=answers)


def test_browser_upload_ask_and_watch_the_answer_stream(server, pictures, browser):
    url, engine = server
    page = open_page(browser, url)
    assert "64 tokens per image" in page.inner_text("#model-panel")
    assert "clip_vision_model" in page.inner_text("#model-panel") and "mlp2x_gelu" in page.inner_text("#model-panel")
    send(page, "What is shown in this picture?", pictures["red"], images=1)
    wait_idle(page, 1)
    seen = page.evaluate("window.__answers")
    assert len(seen) >= 3 and all(b.startswith(a) for a, b in pairwise(seen)), seen  # streamed
    assert bubbles(page, "user") == ["What is shown in this picture?"]
    assert page.locator("[data-testid=user] img").count() == 1  # the uploaded picture is in the chat
    first = bubbles(page, "bot")[-1]
    send(page, "And what else?")
    wait_idle(page, 2)
    assert bubbles(page, "user")[-1] == "And what else?" and bubbles(page, "bot")[0] == first
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_answer.png"), full_page=True)
    page.click("#clear")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=bot]').length === 0")
    example = task_examples()[0]["text"]
    page.get_by_text(example).first.click()  # an example fills the box with its text and image
    page.wait_for_function("() => document.querySelectorAll('.multimodal-textbox .thumbnail-item').length === 1")
    assert page.input_value(".multimodal-textbox textarea[data-testid=textbox]") == example
    page.context.close()


def test_browser_bad_upload_gets_a_message_and_the_chat_goes_on(server, pictures, browser):
    url, _ = server
    page = open_page(browser, url)
    send(page, "What is this?", pictures["text"], pictures["empty"], pictures["red"], images=1)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=bot]').length === 1")
    warning = bubbles(page, "bot")[-1]
    assert warning.startswith("⚠️ Not sent.") and warning.endswith(KEPT)
    assert "notes.txt is not an image I can read (use PNG, JPEG, GIF, WebP, BMP or TIFF)." in warning
    assert "empty.png is empty (0 bytes)." in warning
    # the text and the good image stay in the box: send again without the bad file
    assert page.input_value(".multimodal-textbox textarea[data-testid=textbox]") == "What is this?"
    assert page.locator(".multimodal-textbox .thumbnail-item").count() == 1
    page.click(".multimodal-textbox button[data-testid=submit-button]")
    wait_idle(page, 1)
    assert bubbles(page, "user") == ["What is this?"] and "Not sent" not in bubbles(page, "bot")[-1]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_bad_upload.png"), full_page=True)
    page.context.close()


def test_browser_stop_keeps_the_partial_answer(server, pictures, browser, monkeypatch):
    url, engine = server
    runs: list[list] = []  # per generation: its max_new_tokens, then each streamed text
    stream = engine.stream

    def recorded(conversation, settings):
        runs.append([settings.max_new_tokens])
        for text in stream(conversation, settings):
            runs[-1].append(text)
            yield text

    monkeypatch.setattr(engine, "stream", recorded)
    page = open_page(browser, url)
    limit = page.locator("#max-new-tokens input[type=number]")
    limit.fill("1024")
    limit.press("Enter")
    send(page, "Tell me a long story.", pictures["green"], images=1)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=bot]')].some(b => b.innerText.trim())")
    page.click(".multimodal-textbox button.stop-button")
    wait_idle(page, 1)  # the buttons come back with the answer's last update, after generation ended
    assert engine.generating == 0, "generation went on"
    partial = bubbles(page, "bot")
    assert runs[0][0] == 1024 and len(runs[0]) - 1 < 1024  # stopped long before its limit
    assert partial == [inspect.cleandoc(runs[0][-1])] and page.locator(".multimodal-textbox button[data-testid=submit-button]").is_visible()
    limit.fill("8")
    limit.press("Enter")
    send(page, "Go on.")
    wait_idle(page, 2)
    assert runs[1][0] == 8 and bubbles(page, "bot")[0] == partial[0]  # the stopped answer stays in the conversation
    page.context.close()


def test_browser_two_sessions_at_once_keep_their_own_chats(server, pictures, browser):
    url, _ = server
    pages = {colour: open_page(browser, url) for colour in ("red", "blue")}
    for colour, page in pages.items():  # both submitted before either answer is done
        send(page, f"Is it {colour}?", pictures[colour], images=1)
    for page in pages.values():
        wait_idle(page, 1)
    send(pages["red"], "Only red asks this")
    wait_idle(pages["red"], 2)
    for colour, page in pages.items():
        users = bubbles(page, "user")
        assert users == [f"Is it {colour}?"] + (["Only red asks this"] if colour == "red" else [])
        assert page.locator("[data-testid=user] img").count() == 1
    for page in pages.values():
        page.context.close()
