"""LLaVA-1.5: CLIP ViT + mlp2x_gelu; align (projector only) then instruct (projector + LLM).

The recipe itself is vlm/recipes/llava15.py; this file runs it from a checkout, alone or under
`accelerate launch` (the same as `vlm train llava15`): accelerate launch recipes/llava15.py [--preset NAME] [--a.b value]
"""

from vlm.recipes.launch import run_file

if __name__ == "__main__":
    run_file("llava15")
