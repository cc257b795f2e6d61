"""The README's own-data walkthrough, run exactly as written: a small LLaVA corpus with a few bad records,
`vlm data check`, `vlm train llava15` on it, `vlm eval run`, `vlm export` and a plain transformers load."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from train_helpers import ROOT, env, synthetic_corpus


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- own-data:start -->")[1].split("<!-- own-data:end -->")[0]
    body = re.search(r"```bash\n(.*?)```", block, re.S).group(1)
    return [line for line in body.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_walkthrough_runs_as_written(tmp_path):
    data = tmp_path / "mydata"
    paths = synthetic_corpus(data / "staging", n=24, size=64, tasks=("vqa",))
    records = json.loads(paths["vqa"].read_text())
    (data / "images").mkdir(parents=True)
    for record in records:  # the images next to the JSON, as a user's corpus has them
        target = data / "images" / Path(record["image"]).name
        if not target.exists():
            (data / "staging" / record["image"]).rename(target)
        record["image"] = target.name
    records[1]["image"] = "missing.png"
    records[2]["conversations"] = [{"from": "human", "value": "<image>\nno answer"}]
    (data / "images" / "broken.png").write_bytes(b"not an image")
    records[3]["image"] = "broken.png"
    (data / "train.json").write_text(json.dumps(records))

    environment = env() | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for command in readme_commands():
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=environment, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    check, _, evaluation, export, load = outputs
    assert f"records: {len(records)}, usable: {len(records) - 3}" in check
    assert "bad missing_image: 1" in check and "bad corrupt_image: 1" in check and "bad bad_conversation: 1" in check
    log = (tmp_path / "runs/mine/train.log").read_text()
    assert "bad samples skipped" in log and (tmp_path / "runs/mine/model/config.json").is_file()
    assert "| synthetic_vqa | accuracy |" in evaluation
    assert "LlavaForConditionalGeneration" in export and load.strip() == "LlavaForConditionalGeneration"


def test_the_readme_load_snippet_runs_as_written(built_models, tmp_path, monkeypatch):
    import shutil

    from PIL import Image

    text = (ROOT / "README.md").read_text()
    section = text.split("## Load and generate with plain transformers")[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shutil.copytree(built_models(template="llama3"), tmp_path / "runs/llava_convnext/model")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "scene.png")
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(compile(snippet, "README.md", "exec"), {"print": printed.append})
    assert len(printed) == 1 and isinstance(printed[0], str)
