import os
from pathlib import Path

# Offline before anything imports huggingface_hub; tiny backbones cached next to the checkout.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("VLM_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "vlm"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import vlm  # noqa: E402,F401
from vlm.build import BuildSpec, build  # noqa: E402


@pytest.fixture(scope="session")
def built_models(tmp_path_factory):
    """Assembled tiny models saved as folders, keyed by (vision, projector, llm); built once per session."""
    cache: dict[tuple[str, ...], Path] = {}

    def get(vision: str = "tiny-clip", projector: str = "mlp2x_gelu", llm: str = "tiny-llama", **kw) -> Path:
        key = (vision, projector, llm, repr(sorted(kw.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{vision}-{projector}-{llm}")
            model, processor = build(BuildSpec(vision=vision, projector=projector, llm=llm, **kw))
            model.save_pretrained(out)
            processor.save_pretrained(out)
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture
def images():
    """Deterministic RGB test images of different sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (80, 48), (40, 96)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
