"""Locality alignment (MaskEmbed): a LLaVA-1.5-style VLM on an image-level encoder, before and after alignment.

``align`` runs the ``locality_alignment`` recipe (MaskEmbed on ``tiny-clip-image-level``); ``unaligned`` and
``aligned`` train the same short llava15 run (last-layer features, VQA + grounding) on the encoder before
and after. Compared: the patch probe of the tokens the projector receives, spatial VQA and grounding.
"""

from vlm.studies.base import STUDIES, Arm, Claim, Study

VLM = ("--model.vision_feature_layer", "-1", "--run.tracker", "none",
       "--run.eval_tasks", "synthetic_vqa,synthetic_ref,synthetic_patch_probe",
       "--stages.align.data.n_images", "1000", "--stages.align.max_steps", "60",
       "--stages.instruct.data.tasks", "vqa,ground", "--stages.instruct.data.n_images", "1500",
       "--stages.instruct.max_steps", "400", "--stages.instruct.optim.lr", "1e-3")

STUDIES.register("locality", Study(
    name="locality",
    arms=(
        Arm("align", "locality_alignment", ("--run.tracker", "none")),
        Arm("unaligned", "llava15", ("--model.vision", "tiny-clip-image-level", *VLM)),
        Arm("aligned", "llava15", ("--model.vision", "{align}", *VLM)),
    ),
    metrics={"patch colour": "synthetic_patch_probe/colour", "patch shape": "synthetic_patch_probe/shape",
             "spatial VQA": "synthetic_vqa/spatial/accuracy", "VQA": "synthetic_vqa/accuracy",
             "grounding Acc@0.5": "synthetic_ref/acc@0.5"},
    claims=(
        Claim("MaskEmbed raises the patch probe (colour per patch)", "aligned", "unaligned", "patch colour"),
        Claim("MaskEmbed raises spatial VQA", "aligned", "unaligned", "spatial VQA"),
        Claim("MaskEmbed raises grounding", "aligned", "unaligned", "grounding Acc@0.5"),
    ),
    doc=__doc__,
))
