"""Backbones (return pooled features) and heads (features -> logits), kept separate on purpose."""
