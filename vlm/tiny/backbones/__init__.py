"""One module per tiny backbone family; each factory registers itself with `vlm.tiny.backbone.tiny_backbone`."""
