"""Data: sources, the synthetic world, tokenization through chat templates, batching."""
