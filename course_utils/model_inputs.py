"""What a noise predictor's call accepts: the checks every model of ``nets`` runs on ``model(xt, t, y)``.

A wrong call gets a message that names the call and the fix, raised before torch's error from deep inside a layer
(or, worse, before a silently wrong result): one t for the whole batch, a float64 ``xt``, labels out of range or
given to an unconditional model, times in [0, 1] given to a model of integer timesteps, images of another size
than a pretrained model was trained on. Shapes as in ``nets``: xt (B, C, H, W) or (B, D); t (B,); y (B,).

On the CPU values are checked in Python; on a GPU (or compiled) with ``torch._assert_async``, since a Python test
would wait for the GPU at every call.
"""
from __future__ import annotations

import numbers

import torch
from torch import Tensor


def _on_host(x: Tensor) -> bool:
    """Whether a value test on ``x`` may run in Python (CPU, eager) rather than as ``torch._assert_async``."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def check_timesteps(call: str, t, batch: int, *, per: str = "image", exact: bool = False) -> None:
    """``t`` of a model call ``call`` (e.g. ``"UNet(xt, t)"``): one timestep per example, a tensor of shape (B,)
    (``exact``), or of B elements with the batch first (the lab's continuous times, (B, 1, 1, 1)).

    One t for the whole batch, a Python number or a 0-dim tensor, is the usual mistake: the message names the
    ``torch.full`` that makes it (B,). TypeError for a wrong type, ValueError for a wrong shape.
    """
    want = f"{call}: t must be a tensor of shape ({batch},), one timestep per {per}"
    if isinstance(t, Tensor) and t.ndim > 0:
        if t.shape[0] != batch or (tuple(t.shape) != (batch,) if exact else t.numel() != batch):
            raise ValueError(f"{call}: t must have shape ({batch},), one timestep per {per}, got {tuple(t.shape)}")
        return
    if isinstance(t, Tensor):                                       # 0-dim: one t for the whole batch
        value = t.item()
        raise ValueError(f"{want}, got a 0-dim tensor ({value!r}); for one t for the whole batch use "
                         f"torch.full((xt.shape[0],), {value!r}) or t.expand(xt.shape[0])")
    if isinstance(t, numbers.Real) and not isinstance(t, bool):
        raise TypeError(f"{want}, got {type(t).__name__} {t!r}; for one t for the whole batch use "
                        f"torch.full((xt.shape[0],), {t!r})")
    raise TypeError(f"{want}, got {type(t).__name__} (are the arguments in this order?)")


def check_input_dtype(call: str, xt: Tensor, weight: Tensor) -> None:
    """A float64 (or integer) ``xt`` into a float32 model: a TypeError that names ``xt.float()``, raised before
    torch's dtype error deep inside a layer. The input is never cast silently."""
    if not xt.is_floating_point():
        raise TypeError(f"{call}: xt must be a float tensor, got {xt.dtype}")
    if xt.dtype == torch.float64 and weight.dtype != torch.float64:
        raise TypeError(f"{call}: xt is float64 but the model's weights are {str(weight.dtype).replace('torch.', '')} "
                        "(torch.from_numpy gives float64): pass xt.float()")


def class_rows(call: str, y: Tensor | None, num_classes: int | None, batch: int, device: torch.device,
               *, model: str) -> Tensor | None:
    """The class embedding's rows for labels ``y`` (B,) int64, -1 (or None) for the null class, which is row
    ``num_classes``; None for an unconditional model (``num_classes=None``), which refuses labels 0..K-1."""
    if y is not None and not isinstance(y, Tensor):
        fix = ("torch.tensor(y) makes one" if isinstance(y, (list, tuple)) else
               "for one class for the whole batch use torch.full((xt.shape[0],), y)")
        raise TypeError(f"{call}: y must be a tensor of shape ({batch},), one class label per example, got "
                        f"{type(y).__name__}; {fix}")
    if num_classes is None:
        if y is not None and bool((y >= 0).any()):
            raise ValueError(f"{call}: this {model} is unconditional (num_classes=None) but class labels y were "
                             f"given: build it with {model}(..., num_classes=K)")
        return None
    if y is None:
        return torch.full((batch,), num_classes, device=device, dtype=torch.long)
    if y.shape != (batch,):
        raise ValueError(f"{call}: y must have shape ({batch},), got {tuple(y.shape)}")
    message = f"{call}: class labels must lie in 0..{num_classes - 1} (or -1 for none)"
    if _on_host(y):
        if y.numel() and (int(y.max()) >= num_classes or int(y.min()) < -1):
            raise ValueError(f"{message}, got {int(y.min())}..{int(y.max())}")
    else:
        torch._assert_async(((y >= -1) & (y < num_classes)).all(), message)
    return torch.where(y < 0, torch.full_like(y, num_classes), y)


def check_time_units(call: str, t: Tensor, time_scale: float) -> None:
    """Continuous times t in [0, 1] (the lab's) given to a model of integer timesteps 0..T-1 (``time_scale`` 1).

    Its sinusoidal embedding would see every t as about 0, so the model could not tell noise levels apart: no
    error, only a model that never learns or a sampler that returns noise. Float t that are whole numbers (step 500
    as 500.0) pass, and so does any t for a model built with ``time_scale`` (the lab's 1000.0)."""
    if time_scale != 1.0 or not t.is_floating_point() or t.numel() == 0:
        return
    fractions = (t >= 0).all() & (t <= 1).all() & (t != t.round()).any()
    message = (f"{call}: t holds fractions in [0, 1], times t/T, but this model takes integer timesteps 0..T-1 "
               "(time_scale=1.0): pass int64 timesteps, or build the model with time_scale=1000.0 to give it "
               "continuous times in [0, 1] (the lab's)")
    if _on_host(t):
        if bool(fractions):
            shown = ", ".join(f"{v:.3g}" for v in t.flatten()[:4].tolist())
            raise ValueError(f"{message}; got t = {shown}{', ...' if t.numel() > 4 else ''}")
    else:
        torch._assert_async(~fractions, message)


def check_image_shape(call: str, xt: Tensor, image_shape: tuple[int, ...] | None) -> None:
    """Images of another (C, H, W) than a pretrained model was trained at (``image_shape``, set from its card by
    ``checkpoints.load``; None for a model built here, which takes any size). A convolutional network runs at any
    size, so without this check a 16x16 model given 28x28 noise returns samples of nothing in particular."""
    if image_shape is not None and tuple(xt.shape[1:]) != tuple(image_shape):
        raise ValueError(f"{call}: this pretrained model was trained on images of shape {tuple(image_shape)}, got "
                         f"{tuple(xt.shape[1:])}: sample with shape (B, *card['image_shape']) = (B, "
                         f"{', '.join(map(str, image_shape))}), or set model.image_shape = None to run it at "
                         "another size on purpose")
