"""The lab (solutions/lab_ddim.ipynb): a DDIM model on images, in the style of the Keras example.

- ``diffusion_schedule``: the continuous cosine schedule; its check is worksheet 01's (``ws01_schedules``).
- ``denoise(network, noisy_images, noise_rates, signal_rates) -> (pred_noises, pred_images)``: the network
  predicts the noise from the noise variance; pred_images = (noisy_images - noise_rates pred_noises) / signal_rates.
- ``reverse_diffusion(network, initial_noise, diffusion_steps)``: the deterministic DDIM loop (eta = 0) from
  t = 1 down in equal steps, remixing the predicted images and noises with the next step's rates. It is run once
  more with initial_noise on PyTorch's "meta" device (a GPU's stand-in): new tensors go on initial_noise.device.

``LabToyNet`` stands in for the lab's network: fixed, cheap, and it can record the variances it was given.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .framework import (MISTAKES, Check, close, explain_by, first_few, generator, judge, kernel_text, raised_record,
                        register, rng_moved_hint, shape_hint, todo, visible)
from .ws01_schedules import ref_diffusion_schedule


class LabToyNet(nn.Module):
    """A fixed stand-in for the lab's network: network(noisy_images, noise_variances) -> pred_noises.

    The variances may have shape (B,) or (B, 1, 1, 1). With ``record`` it keeps every variance it was given.
    It holds one weight, a gain of 1, trainable as the lab's UNet's are: the lab trains through denoise, so its
    pred_noises must carry a gradient to that weight (a denoise that froze the network, or computed under
    no_grad, passed when the graph was judged from the input images), and ``next(network.parameters()).device``
    (a common way to ask a network's device) works on it as on the UNet. Like the UNet (float32 convolutions),
    it raises on images of another dtype (a denoise in float64 passed here and raised in the lab's training);
    the references, which compute in float64, call ``any_dtype``.
    """

    def __init__(self, record: bool = False):
        super().__init__()
        self.calls: list = [] if record else None
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, variance: Tensor) -> Tensor:
        if x.dtype != self.gain.dtype:
            raise TypeError(f"network(noisy_images, ...): the lab's UNet takes {self.gain.dtype} images, as its "
                            f"weights are, and got {x.dtype}: it raises 'UNet(xt, t): xt is float64 but the model's "
                            "weights are float32 ... pass xt.float()'")
        return self.any_dtype(x, variance)

    def any_dtype(self, x: Tensor, variance: Tensor) -> Tensor:
        """The forward pass on images of any dtype: what the float64 references call."""
        B = x.shape[0]
        variance = torch.as_tensor(variance, dtype=x.dtype)
        if variance.numel() != B:
            raise ValueError(f"network(noisy_images, noise_rates**2): expected one variance per image, got "
                             f"shape {tuple(variance.shape)} for {B} images")
        v = variance.reshape(B, *([1] * (x.ndim - 1)))
        if self.calls is not None:
            self.calls.append(v.reshape(B).detach().clone())
        return self.gain * (0.5 * torch.tanh(x) * (1 + v) + 0.3 * v)


# ------------------------------------------------------------------ denoise
def ref_denoise(net, x, noise_rates, signal_rates):
    forward = net.any_dtype if isinstance(net, LabToyNet) else net        # in float64 on the check's own network
    pred_noises = forward(x.double(), noise_rates.double() ** 2)
    return pred_noises, (x.double() - noise_rates.double() * pred_noises) / signal_rates.double()


def _denoise_cases(hidden: bool) -> list:
    g = generator(9)
    shapes = [(3, 1, 4, 4)] + ([(2, 3, 2, 2)] if hidden else [])
    out = []
    for shape in shapes:
        t = torch.rand(shape[0], 1, 1, 1, generator=g)
        noise_rates, signal_rates = ref_diffusion_schedule(t)
        out.append(dict(x=torch.randn(shape, generator=g), noise_rates=noise_rates.float(),
                        signal_rates=signal_rates.float()))
    return out


def _denoise_call(f, c) -> dict:
    """denoise on the case, with what it did to the network: the lab's train_step backpropagates the loss of
    pred_noises through denoise to the network's weights, so pred_noises must carry a gradient to them
    (``graph``), and the network keeps them trainable (``frozen``) and float32 (``retyped``: a ``network.double()``
    inside converts the lab's UNet for every later step); ``calls``: how many forward passes."""
    net = LabToyNet(record=True)
    out = f(net, c["x"], c["noise_rates"], c["signal_rates"])
    graph = isinstance(out, (list, tuple)) and len(out) == 2 and isinstance(out[0], Tensor) and out[0].requires_grad
    return dict(out=out, graph=graph, calls=len(net.calls), frozen=not net.gain.requires_grad,
                retyped=net.gain.dtype != torch.float32)


def _denoise_diagnose(outputs, c) -> str | None:
    out = outputs["out"]
    hint = _denoise_values_hint(out, c)
    if hint is not None:
        return hint
    calls = outputs.get("calls")
    if isinstance(calls, int) and calls != 1:
        return (f"the values are right, but denoise called the network {calls} times: call it once and compute "
                "pred_images from that pred_noises (each call is a forward pass of the UNet: training and sampling "
                "take that many times as long; reverse_diffusion's check counts the calls too)")
    if outputs.get("frozen"):
        return ("the values are right, but denoise switched off the network's gradients (requires_grad_(False)): "
                "the lab trains the network through denoise, and its loss.backward() then raises 'element 0 of "
                "tensors does not require grad'; leave the network's weights as they are")
    if outputs.get("retyped"):
        return ("the values are right, but denoise changed the network's dtype (network.double(), .to(float64)): "
                "the lab's UNet then trains and samples in float64 from this call on (slower, twice the memory), "
                "and the saved weights are float64; leave the network and its inputs in float32")
    if outputs.get("graph") is False:
        return ("the values are right, but pred_noises carries no gradient to the network's weights: the lab "
                "trains through denoise (loss.backward() in train_step on the loss of pred_noises), so no "
                "torch.no_grad() or .detach() around the network's call")
    return None


def _denoise_values_hint(out, c) -> str | None:
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        return "return a tuple (pred_noises, pred_images)"
    toy, x = LabToyNet(), c["x"].double()
    net = toy.any_dtype                                 # the mistakes below call it in float64
    noise_rates, signal_rates = c["noise_rates"].double(), c["signal_rates"].double()
    ref_noises, ref_images = ref_denoise(toy, x, noise_rates, signal_rates)
    if isinstance(out[0], Tensor) and isinstance(out[1], Tensor) and close(out[0], ref_images) \
            and close(out[1], ref_noises):
        return "the order is swapped: return (pred_noises, pred_images)"
    hint = judge(out[0], ref_noises, [
        ("the network takes the noise VARIANCE as its time input: network(noisy_images, noise_rates**2)",
         net(x, noise_rates)),
        ("the network takes the noise variance noise_rates**2, not the signal rates", net(x, signal_rates ** 2)),
        ("the network's time input is the noise variance noise_rates**2 (= 1 - signal_rates**2), not "
         "1 - signal_rates", net(x, 1 - signal_rates)),
        ("the network takes the noisy images as they are, network(noisy_images, noise_rates**2): dividing by "
         "signal_rates belongs to pred_images", net(x / signal_rates, noise_rates ** 2)),
    ], "pred_noises")
    if hint:
        return hint
    return judge(out[1], ref_images, [
        ("divide by signal_rates: pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates",
         x - noise_rates * ref_noises),
        ("noise and signal rates are swapped in pred_images: (noisy_images - noise_rates * pred_noises) / signal_rates",
         (x - signal_rates * ref_noises) / noise_rates),
        ("wrong sign: pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates",
         (x + noise_rates * ref_noises) / signal_rates),
        ("divide by signal_rates itself, not its square: the rates are already the square roots (signal_rates = "
         "cos(angle)), so pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates",
         (x - noise_rates * ref_noises) / signal_rates ** 2),
        ("noise_rates multiplies pred_noises as it is, not squared: pred_images = (noisy_images - noise_rates * "
         "pred_noises) / signal_rates", (x - noise_rates ** 2 * ref_noises) / signal_rates),
        ("divide the whole difference: pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates; "
         "noisy_images / signal_rates - noise_rates * pred_noises divides only its first term",
         x / signal_rates - noise_rates * ref_noises),
        ("divide by signal_rates, don't multiply: the forward equation noisy = signal * images + noise * noises, "
         "solved for the images, gives (noisy_images - noise_rates * pred_noises) / signal_rates",
         (x - noise_rates * ref_noises) * signal_rates),
        ("the rates are already square roots (signal_rates = cos(angle) = sqrt(alpha_bar)): divide by "
         "signal_rates, not by its square root", (x - noise_rates * ref_noises) / signal_rates.sqrt()),
        ("pred_images is clamped: the images are normalised to mean 0 and variance 1 (not [-1, 1]), so denoise "
         "returns the prediction as it is; the notebook clips only after mapping back (denormalize)",
         ref_images.clamp(-1, 1)),
    ], "pred_images")


def answer_denoise():
    """A right denoise (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return denoise_variant()


# the Keras example's calls of its network, copied (a student's pass of the lab, 2026-12-08): the errors named
# the check's stand-in network ("LabToyNet.forward() missing 1 required positional argument")
NETWORK_CALL = ("the network takes two arguments, network(noisy_images, noise_rates ** 2): the images and the "
                "noise variances")
register(Check("denoise", "denoise", _denoise_cases, _denoise_call, _denoise_diagnose, explain_by(
    ("forward() missing 1 required positional argument",
     f"{NETWORK_CALL}, not one list of both as in the Keras example"),
    ("forward() got an unexpected keyword argument 'training'",
     f"{NETWORK_CALL}, and no training= (a PyTorch network is put in training or eval mode by .train() and "
     ".eval(), outside denoise)")),
    draws_nothing=True, answer=answer_denoise))
check_denoise = visible("denoise")


def denoise_variant(kind: str = "right"):
    """denoise(network, noisy_images, noise_rates, signal_rates) with one mistake ("rates", "signal",
    "one_minus_signal", "scaled_input", "no_div", "swapped", "signal_squared", "noise_squared", "precedence",
    "multiplied", "signal_root", "order", "clamp"); "right": the right one."""
    def denoise(network, noisy_images, noise_rates, signal_rates):
        time_input = {"rates": noise_rates, "signal": signal_rates ** 2, "one_minus_signal": 1 - signal_rates,
                      }.get(kind, noise_rates ** 2)
        pred_noises = network(noisy_images / signal_rates if kind == "scaled_input" else noisy_images, time_input)
        pred_images = {"no_div": noisy_images - noise_rates * pred_noises,
                       "swapped": (noisy_images - signal_rates * pred_noises) / noise_rates,
                       "signal_squared": (noisy_images - noise_rates * pred_noises) / signal_rates ** 2,
                       "noise_squared": (noisy_images - noise_rates ** 2 * pred_noises) / signal_rates,
                       "precedence": noisy_images / signal_rates - noise_rates * pred_noises,
                       "multiplied": (noisy_images - noise_rates * pred_noises) * signal_rates,
                       "signal_root": (noisy_images - noise_rates * pred_noises) / signal_rates.sqrt(),
                       "scaled_input": (noisy_images - noise_rates * pred_noises) / signal_rates,
                       }.get(kind, (noisy_images - noise_rates * pred_noises) / signal_rates)
        pred_images = pred_images.clamp(-1, 1) if kind == "clamp" else pred_images
        return (pred_images, pred_noises) if kind == "order" else (pred_noises, pred_images)
    return denoise


def _denoise_twice(network, noisy_images, noise_rates, signal_rates):
    """pred_images from a second forward pass: right values, twice the time."""
    pred_noises = network(noisy_images, noise_rates ** 2)
    return pred_noises, (noisy_images - noise_rates * network(noisy_images, noise_rates ** 2)) / signal_rates


def _denoise_frozen(network, noisy_images, noise_rates, signal_rates):
    """network.requires_grad_(False) first: right values; the lab's loss.backward() raises."""
    network.requires_grad_(False)
    return denoise_variant()(network, noisy_images, noise_rates, signal_rates)


def _denoise_retyped(network, noisy_images, noise_rates, signal_rates):
    """network.double() and the inputs with it, cast back: right values; the network stays float64."""
    network.double()
    return _denoise_float64(network, noisy_images, noise_rates, signal_rates)


def _denoise_float64(network, noisy_images, noise_rates, signal_rates):
    """Computed in float64, cast back: right values here; the lab's UNet raises on float64 images."""
    x, n, s = noisy_images.double(), noise_rates.double(), signal_rates.double()
    pred_noises = network(x, n ** 2)
    return pred_noises.float(), ((x - n * pred_noises) / s).float()


MISTAKES["denoise"] = [
    ("torch.manual_seed inside", lambda network, noisy_images, noise_rates, signal_rates: (
        torch.manual_seed(0), denoise_variant()(network, noisy_images, noise_rates, signal_rates))[1],
     "moved torch's global random generator"),
    ("noise rate as time input", denoise_variant("rates"), "VARIANCE"),
    ("no division", denoise_variant("no_div"), "divide by signal_rates"),
    ("swapped rates", denoise_variant("swapped"), "swapped"),
    ("divided by signal_rates squared", denoise_variant("signal_squared"),
     "divide by signal_rates itself, not its square"),
    ("noise_rates squared on pred_noises", denoise_variant("noise_squared"), "noise_rates multiplies pred_noises"),
    ("outputs swapped", denoise_variant("order"), "order is swapped"),
    ("pred_images clamped", denoise_variant("clamp"), "pred_images is clamped"),
    ("1 - signal_rates as time input", denoise_variant("one_minus_signal"), "not 1 - signal_rates"),
    ("the network given the images divided by signal_rates", denoise_variant("scaled_input"),
     "the network takes the noisy images as they are"),
    ("only the first term divided", denoise_variant("precedence"), "divide the whole difference"),
    ("multiplied by signal_rates", denoise_variant("multiplied"), "divide by signal_rates, don't multiply"),
    ("divided by the root of signal_rates", denoise_variant("signal_root"),
     "divide by signal_rates, not by its square root"),
    ("under torch.no_grad()", torch.no_grad()(denoise_variant()), "carries no gradient"),
    ("the network called twice", _denoise_twice, "called the network 2 times"),
    ("the network frozen", _denoise_frozen, "switched off the network's gradients"),
    ("float64 inside", _denoise_float64, "takes torch.float32 images"),
    ("the network made float64", _denoise_retyped, "changed the network's dtype"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ reverse_diffusion
def ref_reverse_diffusion(net, initial_noise, steps, *, times="keras", return_noisy=False, swap_remix=False,
                          clamp=False, next_same=False, next_up=False, flat_times=False, step_minus_one=False,
                          stuck=False, next_by_index=False, return_noises=False, unpack_swapped=False):
    """The Keras example's deterministic DDIM loop; the variants reproduce catalogued mistakes (``clamp``:
    pred_images clamped to [-1, 1] at each step; ``next_same``: the remix at the step's own time, not the next;
    ``next_up``: the remix at t + step_size, a step back towards the noise; ``flat_times``: times of shape (B,),
    which raise where the rates meet the images; ``step_minus_one``: step_size = 1 / (steps - 1); ``stuck``:
    every step denoises initial_noise; ``next_by_index``: the remix at t - step, the loop index;
    ``unpack_swapped``: denoise's (pred_noises, pred_images) unpacked the other way round)."""
    B = initial_noise.shape[0]
    step_size = 1.0 / (steps - 1 if step_minus_one else steps)
    next_noisy = initial_noise.double()
    pred_images = None
    for step in range(steps):
        noisy = initial_noise.double() if stuck else next_noisy
        if times == "keras":
            t = 1.0 - step * step_size
        elif times == "linspace":
            t = 1.0 - step / max(steps - 1, 1)
        else:  # "upwards"
            t = step * step_size
        diffusion_times = torch.full((B,) if flat_times else (B, 1, 1, 1), t, dtype=torch.float64,
                                     device=initial_noise.device)
        noise_rates, signal_rates = ref_diffusion_schedule(diffusion_times)
        pred_noises, pred_images = ref_denoise(net, noisy, noise_rates, signal_rates)
        if unpack_swapped:
            pred_noises, pred_images = pred_images, pred_noises
        if clamp:
            pred_images = pred_images.clamp(-1, 1)
        next_t = t - step_size if times != "upwards" else t + step_size
        next_t = t if next_same else t + step_size if next_up else t - step if next_by_index else next_t
        next_noise_rates, next_signal_rates = ref_diffusion_schedule(
            torch.full((B, 1, 1, 1), next_t, dtype=torch.float64, device=initial_noise.device))
        if swap_remix:
            next_noisy = next_noise_rates * pred_images + next_signal_rates * pred_noises
        else:
            next_noisy = next_signal_rates * pred_images + next_noise_rates * pred_noises
    return next_noisy if return_noisy else pred_noises if return_noises else pred_images


def _reverse_cases(hidden: bool) -> list:
    g = generator(10)
    cases = [dict(initial_noise=torch.randn(3, 1, 4, 4, generator=g), diffusion_steps=5)]
    if hidden:
        cases += [dict(initial_noise=torch.randn(2, 3, 3, 3, generator=g), diffusion_steps=10),
                  dict(initial_noise=torch.randn(2, 1, 2, 2, generator=g), diffusion_steps=1)]
    return cases


def _reverse_call(f, c):
    outs, calls, drew = [], None, False
    for seed in (0, 1):  # twice, from two global seeds: a deterministic sampler ignores them
        net = LabToyNet(record=True)
        torch.manual_seed(seed)
        state = torch.random.get_rng_state()
        # the first run gets the case's own tensor, which the harvest compares afterwards (a loop that writes
        # into initial_noise in place overwrites the caller's noise); the second run a copy of it
        outs.append(f(net, c["initial_noise"] if seed == 0 else c["initial_noise"].clone(), c["diffusion_steps"]))
        # it draws nothing: a reseed inside it (the same samples from both seeds) moves the state of seed 1
        drew = drew or not torch.equal(state, torch.random.get_rng_state())
        calls = calls if calls is not None else net.calls
    # once more with initial_noise on the "meta" device (shapes only, no data): a tensor made without device=
    # lands on the CPU and mixing it in raises, as it would on a GPU, where the lab runs when there is one
    # (or, from the few operations that mix the two devices silently, such as einsum, a result on the CPU)
    try:
        moved = f(LabToyNet().to("meta"), c["initial_noise"].to("meta"), c["diffusion_steps"])
        elsewhere = {"device": str(moved.device)} if isinstance(moved, torch.Tensor) else None
    except Exception as err:  # noqa: BLE001 - judged by _reverse_diagnose: a device mix-up or nothing
        elsewhere = raised_record(err)
    return dict(out=outs[0], out2=outs[1], elsewhere=elsewhere, rng_moved=drew,
                variances=torch.stack(calls) if calls else torch.zeros(0, c["initial_noise"].shape[0]))


DEVICE_HINT = ("right on the CPU, but a tensor made here without device= stays on the CPU when initial_noise is on "
               "a GPU (the lab samples there when there is one), and mixing the two raises: make new tensors with "
               "device=initial_noise.device (torch.ones(..., device=initial_noise.device))")


def _asked_times(variances: Tensor, steps: int) -> tuple[Tensor, Tensor] | None:
    """(the times the network was asked at, read back from the noise variances it was given: variance =
    sin^2(angle(t)) of the lab's schedule; the grid's times t = 1, 1 - 1/steps, ..., 1/steps), or None when they
    cannot be read back."""
    if not (isinstance(variances, Tensor) and variances.ndim == 2 and variances.shape[0] == steps):
        return None
    v = variances.double().mean(1).clamp(0, 1)
    # the schedule's angles at t = 0 and t = 1, from its noise rates sin(angle)
    start, end = (math.asin(float(ref_diffusion_schedule(torch.tensor(t))[0])) for t in (0.0, 1.0))
    asked = (torch.asin(v.sqrt()) - start) / (end - start)                   # the diffusion time of each call
    grid = 1.0 - torch.arange(steps, dtype=torch.float64) / steps
    return (asked, grid) if torch.isfinite(asked).all() else None


def _time_grid_hint(variances: Tensor, steps: int) -> str | None:
    """The hint for a loop that asked the network at other times than t = 1, 1 - 1/steps, ..., 1/steps: the times,
    read back from the noise variances it was given (variance = sin^2(angle(t)) of the lab's schedule), first ones
    of each named; None when they are the grid's, or cannot be read back."""
    times = _asked_times(variances, steps)
    if times is None or torch.allclose(*times, atol=1e-3):
        return None
    asked, grid = times
    return (f"the network was asked at t = {first_few(asked.tolist(), '{:.3f}')} (read from the noise variances it "
            f"was given), but the times for diffusion_steps = {steps} are t = {first_few(grid.tolist(), '{:.3f}')}: "
            "step_size = 1 / diffusion_steps, "
            "t = 1 - step * step_size, and each step remixes at t - step_size")


SAME_IMAGES = "every step denoised initial_noise again"     # (stuck, or a remix that gives back what it denoised)


def _reverse_diagnose(out, c) -> str | None:
    net, x, steps = LabToyNet(), c["initial_noise"], c["diffusion_steps"]
    ref = ref_reverse_diffusion(net, x, steps)
    hint = shape_hint(out["out"], ref, "pred_images")
    if hint:
        return hint
    if not close(out["out"], out["out2"], 1e-6):
        return "not deterministic: the DDIM reverse process (eta = 0) adds no fresh noise; don't call torch.randn"
    if out.get("rng_moved"):
        return rng_moved_hint("reverse_diffusion", "the DDIM reverse process (eta = 0) is deterministic: no "
                              "torch.manual_seed and no torch.randn inside it (the lab's judge samples during "
                              "training, and a reseed there makes the training draw the same noise again)",
                              lead="the samples are deterministic")
    variances = out["variances"]
    if variances.shape[0] != steps:
        return (f"the network was called {variances.shape[0]} times for diffusion_steps = {steps}: "
                "call denoise once per step")
    start_noise, start_signal = (r ** 2 for r in ref_diffusion_schedule(torch.ones(1)))
    if close(variances[0], start_signal.expand_as(variances[0]).float(), 1e-3):
        return (f"the network's first noise variance was signal_rates**2 = {float(start_signal):.4g} (at t = 1): "
                "diffusion_schedule returns (noise_rates, signal_rates), the noise rates first (noise_rates, "
                "signal_rates = diffusion_schedule(...)), and denoise takes (network, noisy_images, noise_rates, "
                "signal_rates) in that order")
    start = start_noise
    if not close(variances[0], start.expand_as(variances[0]).float(), 1e-3):
        asked, grid = _asked_times(variances, steps) or (None, None)
        if asked is not None and steps > 1 and bool((asked.diff() < 0).all()) and float(asked[0]) < 1:
            # it goes down, from too low (a loop one step low was told "and go down", a student's pass)
            return (f"start at t = 1 (pure noise): the first network call was at t = {float(asked[0]):.3f}, and "
                    f"the times for diffusion_steps = {steps} are t = {first_few(grid.tolist(), '{:.3f}')}")
        return ("start at t = 1 (pure noise) and go down: the first network call must get the noise variance of "
                "diffusion_times = 1")
    hint = judge(out["out"], ref, [
        ("return the last prediction of the clean images (pred_images), not the next noisy images",
         ref_reverse_diffusion(net, x, steps, return_noisy=True)),
        ("denoise returns (pred_noises, pred_images), the noise first: unpack them in that order",
         ref_reverse_diffusion(net, x, steps, unpack_swapped=True)),
        ("equal steps of 1/diffusion_steps: t = 1, 1 - 1/steps, ..., 1/steps (never t = 0 itself)",
         ref_reverse_diffusion(net, x, steps, times="linspace")),
        ("noise and signal rates are swapped when remixing: next_noisy = next_signal * pred_images "
         "+ next_noise * pred_noises", ref_reverse_diffusion(net, x, steps, swap_remix=True)),
        # a remix at the step's own time gives back the images it denoised: the same output as a loop that never
        # hands next_noisy_images on, so one hint names both
        (f"{SAME_IMAGES}: remix at the NEXT time, t - 1/diffusion_steps (a remix at the step's own time t gives back "
         "the very images it denoised), next_noisy = next_signal_rates * pred_images + next_noise_rates * "
         "pred_noises with the rates of diffusion_schedule(t - step_size), and denoise next_noisy_images in the "
         "next step", ref_reverse_diffusion(net, x, steps, next_same=True)),
        ("the next time is t - 1/diffusion_steps, one step towards the data: you remixed at t + 1/diffusion_steps, "
         "back towards the noise", ref_reverse_diffusion(net, x, steps, next_up=True)),
        ("pred_images is clamped: the images are normalised to mean 0 and variance 1 (not [-1, 1]), and DDIM uses "
         "the prediction as it is; the notebook clips only after mapping back (denormalize)",
         ref_reverse_diffusion(net, x, steps, clamp=True)),
        ("the next time is t - step_size (1/diffusion_steps), not t - step, the loop index",
         ref_reverse_diffusion(net, x, steps, next_by_index=True)),
        ("those are the last pred_noises: return pred_images, the denoised images of the last step",
         ref_reverse_diffusion(net, x, steps, return_noises=True)),
        ("the result is clamped to [-1, 1]: the images are normalised to mean 0 and variance 1 (not [-1, 1]), so "
         "reverse_diffusion returns the prediction as it is; the notebook clips only after mapping back "
         "(denormalize)", ref.clamp(-1, 1)),
    ], "pred_images", _time_grid_hint(variances, steps) or (
        "pred_images differs from the deterministic DDIM loop, though the network was asked at the right times; do "
        "your diffusion_schedule and denoise pass their checks, and does each step remix at the next time?"))
    elsewhere = out.get("elsewhere")
    raised = kernel_text(elsewhere.get("raised")) if isinstance(elsewhere, dict) else ""
    # torch's words for two devices in one operation (meta: "... is not on the expected device meta!"; CUDA:
    # "Expected all tensors to be on the same device"); other errors on meta (.item(), .numpy()) say nothing here
    if hint is None and ("expected device" in raised or "same device" in raised):
        return f"{DEVICE_HINT} (with initial_noise on another device it raised {raised})"
    if hint is None and "Cannot copy out of meta tensor" in raised:     # .to("cpu") / .cpu() of the network or x
        return ("right on the CPU, but it moves the network or the images to the CPU (.to('cpu'), .cpu()): where "
                "the lab runs on a GPU, the network it is given is the EMA copy that training goes on updating "
                "there, so the next update mixes two devices; keep everything on initial_noise.device (on another "
                f"device it raised {raised})")
    device = elsewhere.get("device") if isinstance(elsewhere, dict) else None
    if hint is None and isinstance(device, str) and device != "meta":
        return f"{DEVICE_HINT} (with initial_noise on another device it returned a tensor on {kernel_text(device)})"
    return hint


# a (B,) time broadcast against (B, C, H, W) images fails inside the student's denoise, which passed its check: the
# shape to fix is reverse_diffusion's
register(Check("reverse_diffusion", "reverse_diffusion", _reverse_cases, _reverse_call, _reverse_diagnose,
               explain_by(("must match the size of tensor b",
                           "the rates must broadcast against the images: make diffusion_times of shape (B, 1, 1, 1), "
                           "torch.full((B, 1, 1, 1), t, device=initial_noise.device), not (B,)"),
                          ("must be Tensor, not float",
                           "diffusion_times is a tensor, one time per image: torch.full((B, 1, 1, 1), t, "
                           "device=initial_noise.device), not the number t")),
               calls=("denoise", "diffusion_schedule")))
check_reverse_diffusion = visible("reverse_diffusion")


def reverse_variant(**switches):
    """reverse_diffusion(network, initial_noise, diffusion_steps) with mistakes switched on; none: the right one."""
    return lambda network, initial_noise, steps: ref_reverse_diffusion(network, initial_noise, steps,
                                                                       **switches).float()


def _reverse_on_cpu(network, initial_noise, steps):
    """Right values, but a tensor made without device= meets the input (on the CPU whatever its device)."""
    (initial_noise * torch.ones(initial_noise.shape[0], 1, 1, 1)).sum()
    return ref_reverse_diffusion(network, initial_noise, steps).float()


def _reverse_einsum_on_cpu(network, initial_noise, steps):
    """Right values, but a last einsum with a CPU tensor: silent on meta (and the result lands on the CPU)."""
    pred_images = ref_reverse_diffusion(network, initial_noise, steps).float()
    return torch.einsum("bchw,wv->bchv", pred_images, torch.eye(pred_images.shape[-1]))


def _reverse_into_initial_noise(network, initial_noise, steps):
    """Right values, written into the caller's tensor: next_noisy_images.copy_(...) with next_noisy_images =
    initial_noise at the first step."""
    return initial_noise.copy_(ref_reverse_diffusion(network, initial_noise, steps).float())


def _reverse_random(network, initial_noise, steps):
    return ref_reverse_diffusion(network, initial_noise, steps).float() + 0.1 * torch.randn(initial_noise.shape)


def _reverse_rates_swapped(network, initial_noise, steps):
    """denoise(network, noisy_images, signal_rates, noise_rates): the rates in the wrong order."""
    B, step_size, noisy = initial_noise.shape[0], 1.0 / steps, initial_noise
    for step in range(steps):
        times = torch.full((B, 1, 1, 1), 1.0 - step * step_size, device=initial_noise.device)
        noise_rates, signal_rates = (r.float() for r in ref_diffusion_schedule(times))
        pred_noises = network(noisy, signal_rates ** 2)
        pred_images = (noisy - signal_rates * pred_noises) / noise_rates
        next_noise_rates, next_signal_rates = (r.float() for r in ref_diffusion_schedule(times - step_size))
        noisy = next_signal_rates * pred_images + next_noise_rates * pred_noises
    return pred_images


MISTAKES["reverse_diffusion"] = [
    ("returns the noisy images", reverse_variant(return_noisy=True), "last prediction of the clean images"),
    ("denoise's outputs unpacked the other way round", reverse_variant(unpack_swapped=True),
     "unpack them in that order"),
    ("time runs upwards", reverse_variant(times="upwards"), "start at t = 1"),
    ("reaches t = 0", reverse_variant(times="linspace"), "equal steps"),
    ("swapped remix", reverse_variant(swap_remix=True), "swapped"),
    ("remix a step back towards the noise", reverse_variant(next_up=True), "you remixed at t + 1/diffusion_steps"),
    ("adds fresh noise", _reverse_random, "not deterministic"),
    ("the last pred_noises returned", reverse_variant(return_noises=True), "those are the last pred_noises"),
    ("the result clamped", lambda network, initial_noise, steps: reverse_variant()(
        network, initial_noise, steps).clamp(-1, 1), "the result is clamped to [-1, 1]"),
    ("torch.manual_seed inside", lambda network, initial_noise, steps: (
        torch.manual_seed(0), reverse_variant()(network, initial_noise, steps))[1],
     "moved torch's global random generator"),
    ("everything moved to the CPU", lambda network, initial_noise, steps: reverse_variant()(
        network.to("cpu"), initial_noise.to("cpu"), steps), "moves the network or the images to the CPU"),
    ("one call too many", lambda network, x, steps: (network(x, torch.ones(x.shape[0])),
                                                     ref_reverse_diffusion(network, x, steps).float())[1],
     "called"),
    ("new tensors on the CPU", _reverse_on_cpu, "device=initial_noise.device"),
    ("writes into initial_noise", _reverse_into_initial_noise, "changed its input initial_noise in place"),
    ("times of shape (B,)", reverse_variant(flat_times=True), "make diffusion_times of shape (B, 1, 1, 1)"),
    ("a result on the CPU", _reverse_einsum_on_cpu, "device=initial_noise.device"),
    ("step size 1/(steps - 1)", reverse_variant(step_minus_one=True), "read from the noise variances"),
    ("every step from initial_noise", reverse_variant(stuck=True), SAME_IMAGES),
    ("remix at the step's own time", reverse_variant(next_same=True), SAME_IMAGES),
    ("next time from the loop index", reverse_variant(next_by_index=True), "not t - step, the loop index"),
    ("denoise given the rates swapped", _reverse_rates_swapped, "the noise rates first"),
    ("not implemented", todo, "not implemented yet"),
]
