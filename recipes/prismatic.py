"""Prismatic VLMs (Karamcheti et al. 2024): fused DINOv2 + SigLIP, one stage with projector and LLM.

The recipe itself is vlm/recipes/prismatic.py; this file runs it from a checkout, alone or under
`accelerate launch` (the same as `vlm train prismatic`): accelerate launch recipes/prismatic.py [--preset NAME] [--a.b value]
"""

from vlm.recipes.launch import run_file

if __name__ == "__main__":
    run_file("prismatic")
