"""Tiny offline backbones (a plugin): code-built Hugging Face, open_clip and timm folders of every part
family, some self-trained on the shapes world, cached under ``$VLM_CACHE`` like downloads.

`backbone` holds the registry and the cache, `tokenizer` the shared BPE, `backbones/` one module per
family, `pretrain_*` the self-training. `plugin` registers every backbone as a named part of
`vlm.hub`, which is how the rest of vlm finds them.
"""
