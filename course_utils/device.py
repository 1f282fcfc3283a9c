"""Device selection, in one place: CUDA, then Apple's MPS, then the CPU.

Every other function of the course takes ``device`` as an argument; nothing calls ``.cuda()``.
``sampling_device`` decides where a sampler runs when the model may be a plain function without weights.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def get_device(prefer: str | None = None) -> torch.device:
    """The device to run on: ``prefer`` if given, else ``cuda``, then ``mps``, then ``cpu``.

    >>> get_device("cpu")
    device(type='cpu')
    """
    if prefer is not None:
        try:
            device = torch.device(prefer)
        except RuntimeError as err:     # torch's message lists some 30 device types
            raise RuntimeError(f"unknown device {prefer!r}: use 'cuda' (an NVIDIA GPU), 'mps' (Apple), 'cpu', or "
                               "get_device() to pick what this machine has") from err
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


def model_device(model: Callable) -> torch.device | None:
    """The device of a model's first parameter, else of its first buffer; None when it has neither.

    ``model`` is any callable: an ``nn.Module``, or a plain function (which has no parameters).
    """
    for tensors in ("parameters", "buffers"):
        method = getattr(model, tensors, None)
        if callable(method):
            for p in method():
                return p.device
    return None


def sampling_device(model: Callable, x_T: Tensor | None = None,
                    device: torch.device | str | None = None) -> torch.device:
    """Where a sampler runs: ``device`` if given, else the model's (``model_device``), else x_T's, else the CPU.

    Raises ValueError when ``device`` disagrees with the device of the model's parameters or buffers (a model
    cannot run on another device than its tensors; the sampler does not move the model), and ``get_device``'s
    RuntimeError for a device this machine does not have (``"cuda"`` without a GPU) or a name torch does not know.
    """
    own = model_device(model)
    if device is not None:
        device = get_device(device)
        if own is not None and not _same_device(own, device):
            raise ValueError(f"device={str(device)!r} was asked for but the model's tensors (parameters, buffers) "
                             f"are on {own}; move the model with model.to({str(device)!r}), or leave device out")
        return device
    if own is not None:
        return own
    if x_T is not None:
        return x_T.device
    return torch.device("cpu")


def _same_device(a: torch.device, b: torch.device) -> bool:
    """cuda and cuda:0 are the same device (an index None means the current one)."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)
