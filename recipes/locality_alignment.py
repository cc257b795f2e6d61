"""Locality alignment (MaskEmbed, Covert et al. 2024) of a ViT encoder.

The recipe itself is vlm/recipes/locality_alignment.py; this file runs it from a checkout, alone or under
`accelerate launch` (the same as `vlm train locality_alignment`): accelerate launch recipes/locality_alignment.py [--preset NAME] [--a.b value]
"""

from vlm.recipes.launch import run_file

if __name__ == "__main__":
    run_file("locality_alignment")
