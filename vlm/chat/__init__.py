"""Chatting with a model: the Gradio demo (`app.py`), the terminal chat (`terminal.py`) and the
logic they share (`uploads.py` checks images, `session.py` turns a conversation into streamed text).

Importing this package imports neither gradio nor torch; the submodules do.
"""
