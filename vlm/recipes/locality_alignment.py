"""Locality alignment (MaskEmbed, Covert et al. 2024) of a ViT encoder.

    vlm train locality_alignment                       # tiny-clip after image-level self-training
    vlm train locality_alignment --preset open_clip    # the same from an open_clip ViT
    vlm train locality_alignment --run.start_from DIR  # any encoder folder (transformers, open_clip, timm)

The ``maskembed`` stage aligns the encoder it starts from (teacher on masked images, student + 2-block
decoder, masks m / 1-m / ones, MSE) -> RUN/model/, an encoder folder in the input's format. The
default starts from ``tiny-clip-image-level``: a tiny CLIP ViT self-trained with an image-level
objective only (which colours and shapes occur, how many objects), as CLIP is, so its patch tokens
were never asked about their patch. `vlm study locality` trains a LLaVA-1.5-style VLM on the encoder
before and after alignment and compares their patch probes, spatial VQA and grounding.
"""

from vlm.recipes.base import RECIPES, RecipeEntry
from vlm.train.config import DataConfig, OptimConfig, Recipe, RunConfig, StageConfig
from vlm.train.stages.maskembed import MaskEmbedOptions

MASKEMBED = StageConfig(
    name="maskembed", kind="maskembed", train={"vision": "full"},
    data=DataConfig(n_images=4800, image_size=64),
    options=MaskEmbedOptions(decoder_layers=2, decoder_heads=4),
    optim=OptimConfig(lr=3e-4, betas=[0.9, 0.95], weight_decay=0.01, schedule="cosine", max_grad_norm=1.0),
    batch_size=32, group_by_length=False, max_steps=300, save_every=100, log_every=10,
)
DEFAULT = Recipe("locality_alignment", None, [MASKEMBED],
                 RunConfig(output_dir="runs/locality", start_from="tiny-clip-image-level", eval_limit=0))
OPEN_CLIP = Recipe("locality_alignment", None, [MASKEMBED],
                   RunConfig(output_dir="runs/locality-open_clip", start_from="tiny-open_clip-vit-image-level",
                             eval_limit=0))

RECIPES.register("locality_alignment", RecipeEntry(DEFAULT, {"open_clip": OPEN_CLIP}, __doc__))
