"""The core works without the optional libraries: with open_clip, timm and gradio unimportable, `import vlm`,
building a model from transformers parts and loading it back work, and what needs a missing library
says which extra installs it."""

import subprocess
import sys
import textwrap

from train_helpers import env

SCRIPT = textwrap.dedent('''
    import sys

    BLOCKED = ("open_clip", "timm", "gradio")


    class Block:  # as if the libraries were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, Block())
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import vlm  # noqa: F401
    from vlm.build import BuildSpec, build
    from vlm.cli import main

    out = sys.argv[1]
    model, processor = build(BuildSpec(vision="tiny-siglip", projector="mlp2x_gelu", llm="tiny-llama", template="llama3"))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    loaded = AutoModelForImageTextToText.from_pretrained(out)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert type(AutoProcessor.from_pretrained(out)).__name__ == "VLMProcessor"
    try:
        build(BuildSpec(vision="tiny-open_clip-vit", llm="tiny-llama"))
    except ImportError as err:
        print("open_clip:", err)
    print("chat:", main(["chat", "--model", out]))
    print("loaded:", sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED)))
''')


def test_core_without_open_clip_timm_and_gradio(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "model")], env=env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert "open_clip: open_clip is not installed (needed here); install it with: pip install 'vlm[vision-libs]'" in lines
    assert "chat: 2" in lines and "install it with: pip install 'vlm[chat]'" in proc.stderr
    assert "loaded: []" in lines
