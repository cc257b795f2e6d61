"""Run an exported folder with plain transformers only (no `import vlm`); write logits and greedy tokens.

Usage: python llava_reference.py EXPORTED_DIR IMAGE.png QUESTION OUT.safetensors
"""

import sys

import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoProcessor, LlavaForConditionalGeneration

path, image_path, question, out = sys.argv[1:5]
model = LlavaForConditionalGeneration.from_pretrained(path).eval()
processor = AutoProcessor.from_pretrained(path)
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
text = processor.apply_chat_template(messages, add_generation_prompt=True)
batch = processor(images=[Image.open(image_path)], text=[text], return_tensors="pt")
with torch.no_grad():
    logits = model(**batch).logits
generated = model.generate(**batch, max_new_tokens=12, do_sample=False)
assert "vlm" not in sys.modules, "the reference run must not import vlm"
save_file(
    {
        "logits": logits.contiguous(),
        "generated": generated.contiguous(),
        "input_ids": batch["input_ids"].contiguous(),
    },
    out,
)
