"""Chat templates (jinja, rendered by ``apply_chat_template``), one registry entry each.

Every template renders message content given either as a string or as a list of
``{"type": "image"}`` / ``{"type": "text", "text": ...}`` items; an image item becomes the
``<image>`` marker that the processor later expands into the encoder's token count.
Assistant replies are wrapped in ``{% generation %}`` so transformers can return the
assistant-token mask (``return_assistant_tokens_mask=True``) used for the loss.
"""

from __future__ import annotations

from vlm.registry import Registry

IMAGE_TOKEN = "<image>"

CHAT_TEMPLATES: Registry[str] = Registry("chat template")

_CONTENT = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for item in content -%}"
    "{%- if item['type'] == 'image' -%}{{ '<image>\\n' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)

CHAT_TEMPLATES.register(
    "llama3",
    _CONTENT + "{{- '<|begin_of_text|>' -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- render(message['content']) + '<|eot_id|>' -}}{%- endgeneration -%}"
    "{%- else -%}{{- render(message['content']) + '<|eot_id|>' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}",
)

CHAT_TEMPLATES.register(
    "chatml",
    _CONTENT + "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- render(message['content']) + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}{{- render(message['content']) + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
)

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

CHAT_TEMPLATES.register(
    "vicuna_v1",
    _CONTENT + "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{- render(messages[0]['content']) + ' ' -}}{%- set turns = messages[1:] -%}"
    "{%- else -%}{{- '"
    + VICUNA_SYSTEM.replace("'", "\\'")
    + " ' -}}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}{{- 'USER: ' + render(message['content']) + ' ' -}}"
    "{%- else -%}{{- 'ASSISTANT: ' -}}"
    "{%- generation -%}{{- render(message['content']) + '</s>' -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}",
)

# LLaVA's "plain" format for the align stage: the image, then the caption, nothing else.
CHAT_TEMPLATES.register(
    "plain",
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] if item['type'] == 'text' -%}{{- item['text'] -}}{%- endfor -%}"
    "{%- endif -%}{{- '\\n' -}}"
    "{%- endgeneration -%}"
    "{%- elif message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{{- '<image>' -}}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}",
)
