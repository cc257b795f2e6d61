"""The `vlm` command: build, info, export, and its errors."""

import json

from vlm.cli import main


def test_build_info_export(tmp_path, capsys):
    out = tmp_path / "model"
    assert (
        main(
            [
                "build",
                "--vision",
                "tiny-siglip",
                "--projector",
                "linear",
                "--llm",
                "tiny-qwen2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tokens_per_image"] == 64
    assert info["parts"]["projector"] == "linear"
    assert info["parameters"]["projector"] == 64 * 128 + 128  # vision width 64 -> LM width 128
    assert set(info["parameters"]) == {"vision_tower", "projector", "language_model"}
    assert main(["info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "siglip_vision_model" in table and "64 tokens per image" in table
    assert main(["export", str(out), "--to", "llava", "--out", str(tmp_path / "llava")]) == 0
    assert (tmp_path / "llava" / "config.json").exists()


def test_errors_are_one_clear_line(tmp_path, capsys):
    args = ["build", "--vision", "tiny-clip", "--llm", "tiny-llama", "--out", str(tmp_path)]
    assert main([*args, "--projector", "mlp2x_relu"]) == 2
    err = capsys.readouterr().err
    assert "unknown projector 'mlp2x_relu'; did you mean 'mlp2x_gelu'" in err and ", mlp2x_gelu, " in err
    args = ["build", "--vision", "someone/not-a-model", "--projector", "linear", "--llm", "tiny-llama"]
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "someone/not-a-model" in err and "Hugging Face cache" in err
    assert (
        main(
            [
                "build",
                "--vision",
                "tiny-clip",
                "--projector",
                "mlp3x_gelu",
                "--llm",
                "tiny-llama",
                "--out",
                str(tmp_path / "m3"),
            ]
        )
        == 0
    )
    assert main(["export", str(tmp_path / "m3"), "--to", "auto", "--out", str(tmp_path / "x")]) == 2
    assert "projector 'mlp3x_gelu' has no Llava equivalent" in capsys.readouterr().err


def test_generate_streams_one_answer_and_json_says_the_same(built_models, tmp_path, capsys):
    from PIL import Image

    model = built_models(template="llama3")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "red.png")
    args = ["generate", "--model", str(model), "--image", str(tmp_path / "red.png"), "--prompt", "What colour is it?",
            "--max-new-tokens", "6"]
    assert main(args) == 0
    streamed = capsys.readouterr().out.rstrip("\n")
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answer"] == streamed and result["prompt"] == "What colour is it?" and streamed
    assert main(["generate", "--model", str(model), "--image", str(tmp_path / "nope.png"), "--prompt", "Hi"]) == 2
    assert "nope.png" in capsys.readouterr().err


def test_help_lines_and_subcommands(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("build", "chat", "data", "eval", "export", "generate", "info", "merge", "parts", "study", "train"):
        assert f"    {command} " in text, command
    with pytest.raises(SystemExit):
        main(["eval", "score", "--help"])
    score = capsys.readouterr().out
    assert "--predictions" in score and "--model" not in score and "--batch-size" not in score


def test_build_takes_s2_vision_overrides_and_pinpoints(tmp_path, capsys):
    s2 = tmp_path / "s2"
    assert main(["build", "--vision", "tiny-clip", "--projector", "mlp2x_gelu", "--llm", "tiny-llama", "--out", str(s2),
                 "--s2-scales", "64,128"]) == 0
    capsys.readouterr()
    assert main(["info", str(s2), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tokens_per_image"] == 64 and info["image_size"] == 128  # the base grid's tokens, the largest scale
    conv = tmp_path / "convllava"
    assert main(["build", "--vision", "tiny-convnext", "--projector", "mlp2x_gelu", "--llm", "tiny-llama",
                 "--out", str(conv), "--vision-feature-layer", "-1", "--image-size", "256",
                 "--vision-overrides", "stage5_depth=1", "stage5_hidden_size=96"]) == 0
    capsys.readouterr()
    assert main(["info", str(conv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens_per_image"] == 16  # stride 64 at 256 px
    anyres = tmp_path / "anyres"
    assert main(["build", "--vision", "tiny-clip", "--projector", "mlp2x_gelu", "--llm", "tiny-llama", "--out",
                 str(anyres), "--high-res", "anyres", "--image-grid-pinpoints", "64x128,128x64"]) == 0
    config = json.loads((anyres / "config.json").read_text())
    assert config["image_grid_pinpoints"] == [[64, 128], [128, 64]]
