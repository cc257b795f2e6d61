"""Chat logic without a browser: checking uploads, turning turns into prompts, streaming, stopping,
limits, the terminal chat and `vlm chat` without a model."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlm.chat.main import NO_MODEL, find_model
from vlm.chat.session import ChatEngine, Conversation, Settings, Turn
from vlm.chat.terminal import chat_in_terminal
from vlm.chat.uploads import ChatInputError, read_image, read_images
from vlm.cli import main

GREEDY = Settings(temperature=0.0, top_p=1.0, max_new_tokens=12)


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit PNG of side x side pixels (~50 KB on disk, 400 megapixels decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    data = zlib.compress(row * side, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def bad_files(folder: Path) -> dict[str, Path]:
    """One file of each awkward kind the chat must handle."""
    files = {"text": folder / "notes.txt", "empty": folder / "empty.png", "huge": huge_png(folder / "huge.png")}
    files["text"].write_text("not an image\n")
    files["empty"].write_bytes(b"")
    frames = [Image.new("RGB", (24, 24), c) for c in ("red", "green", "blue")]
    files["gif"] = folder / "spin.gif"
    frames[0].save(files["gif"], save_all=True, append_images=frames[1:], duration=50, loop=0)
    files["cmyk"] = folder / "print.jpg"
    Image.new("CMYK", (24, 24), (0, 255, 255, 0)).save(files["cmyk"], quality=95)
    files["deep"] = folder / "deep.png"
    Image.fromarray(np.full((24, 24), 65535, dtype=np.uint16)).save(files["deep"])
    assert Image.open(files["deep"]).mode.startswith("I")
    return files


@pytest.fixture(scope="module")
def engine(built_models) -> ChatEngine:
    return ChatEngine.load(built_models(), device="cpu", max_images=2)


def test_uploads_each_get_a_clear_message(tmp_path):
    files = bad_files(tmp_path)
    uploads, problems = read_images([files[k] for k in ("text", "empty", "huge", "gif", "cmyk", "deep")])
    assert problems == [
        "notes.txt is not an image I can read (use PNG, JPEG, GIF, WebP, BMP or TIFF).",
        "empty.png is empty (0 bytes).",
        "huge.png is too large (over 64,000,000 pixels); please resize it to about 8000x8000 or less.",
    ]
    gif, cmyk, deep = uploads
    assert gif.notes == ["it is animated (3 frames): only the first frame is used"]
    assert gif.image.mode == "RGB" and gif.image.getpixel((5, 5)) == (255, 0, 0)  # the first frame
    assert cmyk.notes == ["converted from CMYK to RGB"] and cmyk.image.mode == "RGB"
    r, g, b = cmyk.image.getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red
    assert deep.notes == ["16-bit image scaled to 8-bit RGB"] and deep.image.getpixel((5, 5)) == (255, 255, 255)
    with pytest.raises(ChatInputError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


def test_turns_become_chat_messages_with_images_in_order():
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    conversation = Conversation([Turn("first?", [red], answer="one"), Turn("second?", [blue])])
    assert conversation.images() == [red, blue]
    assert conversation.messages() == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "first?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "one"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "second?"}]},
    ]


def test_stream_grows_token_by_token_to_the_greedy_answer(engine, images):
    conversation = Conversation([Turn("What is shown?", [images[0]])])
    pieces = list(engine.stream(conversation, GREEDY))
    assert len(pieces) >= 3 and all(b.startswith(a) and len(b) > len(a) for a, b in pairwise(pieces))
    assert conversation.turns[-1].answer == pieces[-1]
    # the same prompt through plain generate(): the streamed text is exactly its decoded answer
    inputs = engine._inputs(Conversation([Turn("What is shown?", [images[0]])]))
    with torch.inference_mode():
        out = engine.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    tokens = out[0, inputs["input_ids"].shape[1] :]
    assert pieces[-1] == engine.processor.tokenizer.decode(tokens, skip_special_tokens=True)
    # a second turn sees the first turn's answer and both images
    conversation.turns.append(Turn("And this one?", [images[1]]))
    prompt = engine.processor.apply_chat_template(conversation.messages(), add_generation_prompt=True)
    assert prompt.count("<image>") == 2 and pieces[-1] in prompt and prompt.endswith("assistant<|end_header_id|>\n\n")
    assert list(engine.stream(conversation, GREEDY))[-1] == conversation.turns[-1].answer


def test_stop_keeps_what_was_generated(engine, images):
    full = list(engine.stream(Conversation([Turn("Describe it.", [images[2]])]), Settings(0.0, 1.0, 40)))[-1]
    conversation = Conversation([Turn("Describe it.", [images[2]])])
    pieces = []
    for piece in engine.stream(conversation, Settings(0.0, 1.0, 40)):
        pieces.append(piece)
        conversation.stop_requested = True
    assert len(pieces) <= 3 and full.startswith(pieces[-1]) and len(pieces[-1]) < len(full)
    assert conversation.turns[-1].answer == pieces[-1]


def test_limits_give_messages_not_errors(engine, images):
    conversation = Conversation([Turn("a", [images[0]], answer="x")])
    engine.check_image_count(conversation, 1)
    with pytest.raises(ChatInputError) as err:
        engine.check_image_count(conversation, 2)
    assert str(err.value) == (
        "Too many images: this conversation would hold 3 (1 before this message), and this model takes at "
        "most 2 (64 tokens each, 4096-token context). Send fewer, or press Clear to start a new conversation."
    )
    small = ChatEngine(engine.model, engine.processor)
    small.context = 60  # shorter than one image's prompt
    with pytest.raises(ChatInputError, match="whole of this model's 60-token context. Press Clear"):
        next(small.stream(Conversation([Turn("hi", [images[0]])]), GREEDY))


def test_terminal_chat_streams_and_reports_bad_input(engine, tmp_path, capsys):
    good = tmp_path / "red.png"
    Image.new("RGB", (32, 32), "red").save(good)
    files = bad_files(tmp_path)
    lines = [f"/image {good} {files['text']} {files['huge']}", "", "What colour?", "And now?",
             f"/image {good} {good}", "Too many", "/clear", "/nope", "Hello", "/quit"]
    out = io.StringIO()
    assert chat_in_terminal(engine, GREEDY, stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out) == 0
    text = out.getvalue()
    assert "attached red.png" in text
    assert "error: notes.txt is not an image I can read" in text and "error: huge.png is too large" in text
    assert "error: empty message: type a question about the image(s)" in text
    assert "error: Too many images: this conversation would hold 3" in text
    assert text.count("vlm> ") == 3 and "(new conversation)" in text and "unknown command /nope" in text
    answers = [line.split("vlm> ", 1)[1] for line in text.splitlines() if line.startswith("vlm> ")]
    assert all(answers), answers


def test_vlm_chat_cli_command(built_models, tmp_path, monkeypatch, capsys):
    good = tmp_path / "blue.png"
    Image.new("RGB", (40, 30), "blue").save(good)
    monkeypatch.setattr(sys, "stdin", io.StringIO("What is this?\n"))
    assert main(["chat", "--model", str(built_models()), "--cli", "--image", str(good), "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert "attached blue.png" in out and "vlm> " in out and out.split("vlm> ", 1)[1].strip()


def test_no_model_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        find_model(None, candidates=[tmp_path / "runs/llava_convnext/model"])
    assert str(err.value) == NO_MODEL.format(where=Path("runs/llava_convnext/model"))
    assert "vlm train llava_convnext" in str(err.value)
    monkeypatch.setattr("vlm.chat.main.default_candidates", lambda: [tmp_path / "nothing"])
    assert main(["chat"]) == 2
    err_text = capsys.readouterr().err
    assert "error: No --model given" in err_text and "Traceback" not in err_text
    assert main(["chat", "--model", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a model folder (no config.json there)" in capsys.readouterr().err
    found = tmp_path / "runs/llava_convnext/model"
    found.mkdir(parents=True)
    (found / "config.json").write_text("{}")
    assert find_model(None, candidates=[tmp_path / "elsewhere", found]) == found


def test_serving_binds_localhost_unless_asked(built_models, monkeypatch):
    import gradio as gr

    launches: list[dict] = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: launches.append(kw))
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    model = str(built_models())
    assert main(["chat", "--model", model]) == 0
    assert launches[-1] == {"server_name": "127.0.0.1", "server_port": 7860, "share": False, "max_file_size": "64mb"}
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9000")
    assert main(["chat", "--model", model]) == 0
    assert launches[-1]["server_name"] == "0.0.0.0" and launches[-1]["server_port"] == 9000
    assert main(["chat", "--model", model, "--host", "10.0.0.1", "--port", "9001", "--share"]) == 0
    assert launches[-1]["server_name"] == "10.0.0.1" and launches[-1]["server_port"] == 9001
    assert launches[-1]["share"] is True
