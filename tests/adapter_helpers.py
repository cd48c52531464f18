"""Models with adapters for the predictor tests: what a nightly fine-tune that learnt something else looks like."""
from __future__ import annotations


def scramble_adapters(adapted, seed: int, scale: float = 0.3):
    """Fill ``adapted``'s adapters with random weights (``scale`` x N(0, 1), torch seed ``seed``), in place:
    adapters that learnt something else entirely. Returns the model."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if name.startswith("adapters."):
                p.copy_(torch.randn_like(p) * scale)
    return adapted
