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
    assert info["parameters"]["projector"] == 64 * 64 + 64
    assert set(info["parameters"]) == {"vision_tower", "projector", "language_model"}
    assert main(["info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "siglip_vision_model" in table and "64 tokens per image" in table
    assert main(["export", str(out), "--to", "llava-hf", "--out", str(tmp_path / "llava")]) == 0
    assert (tmp_path / "llava" / "config.json").exists()


def test_errors_are_one_clear_line(tmp_path, capsys):
    args = ["build", "--vision", "tiny-clip", "--llm", "tiny-llama", "--out", str(tmp_path)]
    assert main([*args, "--projector", "mlp2x_relu"]) == 2
    err = capsys.readouterr().err
    assert "unknown projector 'mlp2x_relu'; known: " in err and ", mlp2x_gelu, " in err
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
    assert main(["export", str(tmp_path / "m3"), "--to", "llava-hf", "--out", str(tmp_path / "x")]) == 2
    assert "projector 'mlp3x_gelu' has no Llava equivalent" in capsys.readouterr().err
