"""vlm: assemble vision-language models from existing parts, train them in stages, export to transformers.

Importing the package registers our config, model and processor with the transformers Auto classes.
"""

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from vlm.config import VLMConfig
from vlm.modeling import ImageTokenMismatchError, VLMForConditionalGeneration
from vlm.processing import VLMProcessor

__version__ = "0.1.0"

AutoConfig.register(VLMConfig.model_type, VLMConfig, exist_ok=True)
AutoModelForImageTextToText.register(VLMConfig, VLMForConditionalGeneration, exist_ok=True)
AutoModelForCausalLM.register(VLMConfig, VLMForConditionalGeneration, exist_ok=True)
AutoProcessor.register(VLMConfig, VLMProcessor, exist_ok=True)

__all__ = [
    "VLMConfig",
    "VLMForConditionalGeneration",
    "VLMProcessor",
    "ImageTokenMismatchError",
    "__version__",
]
