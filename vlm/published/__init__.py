"""The published backbones at their true shapes, written by code from their hyperparameters, with no
weights: named parts ``shape-NAME`` (`vlm.hub.PARTS`) whose folders hold a config (and the image
processor of a vision tower), so models of real size can be assembled on the meta device offline
(`vlm.build.build_on_meta`) and planned (`vlm plan`). ``base.py`` holds the catalogue and the helpers,
``vision.py`` and ``llm.py`` the members.
"""
