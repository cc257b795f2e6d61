"""POVID (Zhou et al. 2024): DPO after instruction tuning, with AI-made dispreferred answers.

The recipe itself is vlm/recipes/povid.py; this file runs it from a checkout, alone or under
`accelerate launch` (the same as `vlm train povid`): accelerate launch recipes/povid.py [--preset NAME] [--a.b value]
"""

from vlm.recipes.launch import run_file

if __name__ == "__main__":
    run_file("povid")
