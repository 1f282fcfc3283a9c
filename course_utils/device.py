"""Device selection, in one place: CUDA, then Apple's MPS, then the CPU.

Every other function of the course takes ``device`` as an argument; nothing calls ``.cuda()``.
"""
from __future__ import annotations

import torch


def get_device(prefer: str | None = None) -> torch.device:
    """The device to run on: ``prefer`` if given, else ``cuda``, then ``mps``, then ``cpu``.

    >>> get_device("cpu")
    device(type='cpu')
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} asked for, but torch.cuda.is_available() is False; "
                               "use get_device() to pick what this machine has")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
