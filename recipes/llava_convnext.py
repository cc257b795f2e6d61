"""ConvLLaVA: a hierarchical ConvNeXt encoder with an added fifth stage (stride 64), three stages.

The recipe itself is vlm/recipes/llava_convnext.py; this file runs it from a checkout, alone or under
`accelerate launch` (the same as `vlm train llava_convnext`): accelerate launch recipes/llava_convnext.py [--preset NAME] [--a.b value]
"""

from vlm.recipes.launch import run_file

if __name__ == "__main__":
    run_file("llava_convnext")
