"""The ``vlm.plugins`` entry point of the tiny backbones: registers each as a named part (`vlm.hub.PARTS`)."""

from vlm.registry import import_package

import_package("vlm.tiny.backbones")
