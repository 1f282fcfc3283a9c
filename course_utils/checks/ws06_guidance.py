"""Worksheet 06 (solutions/06_guidance.ipynb): classifier-free guidance (Ho and Salimans 2022) and classifier
guidance (Dhariwal and Nichol 2021).

- ``cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale)``: eps_pred_uncond + w (eps_pred_cond -
  eps_pred_uncond) (Eq. 6, with w = 1 the plain conditional model), the signature of
  ``course_utils.guidance.cfg_combine``.
- ``cfg_loss(model, x0, y, t, eps, drop, schedule)``: worksheet 4's loss for a conditional model, with the
  labels replaced by the null class -1 where ``drop`` is True (label dropout). Its cases, reference and
  diagnosis are worksheet 4's (``ws04_training``), with labels.
- ``classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale)``: Dhariwal and Nichol
  2021, Algorithm 2 / Eq. 14, eps_hat = eps_pred - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y | x_t, t).
  Judged with ``LinearNoisyClassifier`` (logits = W [x_t, t/T] + b), whose gradient is known in closed form:
  grad log softmax(Wx + b)_y = W_y - sum_k p_k W_k (the x-columns of W).
- ``guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps)``: deterministic DDIM (eta = 0) whose
  eps is the student's ``cfg_combine`` of the model's unconditional (y = -1) and conditional predictions; judged
  with the exact conditional noise predictor of eight Gaussians against the float64 reference loop.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from torch import Tensor, nn

from .framework import (MISTAKES, Check, alpha_bar64, close, gather, generator, judge, last_target, model_changed,
                        raised_record, register, repeat_hint, sampler_nan_hint, seeded_state, shape_hint,
                        small_schedule, state_changed, todo, visible)
from .ws04_training import choose_labels, diagnose_loss, loss_cases, loss_outputs, noisy_input, tiny_model
from .ws05_samplers import mixture_model, ref_ddim_step


# ------------------------------------------------------------------ cfg_combine
def _cfg_cases(hidden: bool) -> list:
    g = generator(8)
    scales = [3.0, 1.0, 0.0] + ([7.5, -1.0] if hidden else [])
    return [dict(eps_uncond=torch.randn(2, 1, 3, 3, generator=g), eps_cond=torch.randn(2, 1, 3, 3, generator=g),
                 guidance_scale=w) for w in scales]


def _cfg_diagnose(out, c) -> str | None:
    u, k, w = c["eps_uncond"].double(), c["eps_cond"].double(), c["guidance_scale"]
    return judge(out, u + w * (k - u), [
        ("eps_cond and eps_uncond are swapped: eps = eps_uncond + w * (eps_cond - eps_uncond)", k + w * (u - k)),
        ("w = 1 must give eps_cond and w = 0 eps_uncond: eps = eps_uncond + w * (eps_cond - eps_uncond)",
         k + w * (k - u)),
        ("eps = eps_uncond + w * (eps_cond - eps_uncond): the eps_uncond term is missing", w * (k - u)),
        ("the guidance term's sign: eps = eps_uncond + w * (eps_cond - eps_uncond) moves towards eps_cond, "
         "not away from it", u - w * (k - u)),
    ], "guided eps")


register(Check("cfg_combine", "cfg_combine", _cfg_cases,
               lambda f, c: f(c["eps_uncond"], c["eps_cond"], c["guidance_scale"]), _cfg_diagnose))
check_cfg_combine = visible("cfg_combine")
MISTAKES["cfg_combine"] = [
    ("swapped", lambda u, k, w: k + w * (u - k), "swapped"),
    ("w + 1 convention", lambda u, k, w: k + w * (k - u), "w = 1 must give eps_cond"),
    ("no eps_uncond term", lambda u, k, w: w * (k - u), "missing"),
    ("the guidance term's sign flipped", lambda u, k, w: u - w * (k - u), "towards eps_cond"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ cfg_loss
def _cfg_loss_call(f, c):
    model = tiny_model(c)
    return loss_outputs(model, f(model, c["x0"], c["y"], c["t"], c["eps"], c["drop"], c["schedule"]))


register(Check("cfg_loss", "cfg_loss", lambda hidden: loss_cases(hidden, num_classes=3), _cfg_loss_call,
               diagnose_loss))
check_cfg_loss = visible("cfg_loss")


def cfg_loss_variant(labels="dropped", target="eps"):
    """cfg_loss(model, x0, y, t, eps, drop, schedule) with a catalogued mistake; defaults: the right one."""
    def cfg_loss(model, x0, y, t, eps, drop, schedule):
        xt = noisy_input(x0, t, eps, schedule)
        return F.mse_loss(model(xt, t, choose_labels(y, drop, labels)), x0 if target == "x0" else eps)
    return cfg_loss


MISTAKES["cfg_loss"] = [
    ("mask inverted", cfg_loss_variant("inverted"), "inverted"),
    ("never drops", cfg_loss_variant("kept"), "never dropped"),
    ("null class 0", cfg_loss_variant("zero"), "null class is -1"),
    ("target x0", cfg_loss_variant(target="x0"), "target is the noise"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ classifier_guided_eps
class LinearNoisyClassifier(nn.Module):
    """A noisy classifier p_phi(y | x_t, t) for the checks: logits = W [x_t (flattened), t / T] + b, (B, K)."""

    def __init__(self, dim: int, num_classes: int, T: int):
        super().__init__()
        self.T = T
        self.linear = nn.Linear(dim + 1, num_classes)

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        B = xt.shape[0]
        if not isinstance(t, Tensor) or tuple(t.shape) != (B,):
            raise ValueError(f"classifier(xt, t): t must be a tensor of shape ({B},), one timestep per example")
        return self.linear(torch.cat([xt.reshape(B, -1), t.to(xt.dtype)[:, None] / self.T], dim=1))


def _guided_cases(hidden: bool) -> list:
    g = generator(12)
    specs = [((4, 1, 2, 2), 3, 2.0), ((5, 3), 4, 0.5)] + ([((3, 2, 2, 1), 2, 10.0)] if hidden else [])
    cases = []
    for i, (shape, K, scale) in enumerate(specs):
        B = shape[0]
        cases.append(dict(seed=20 + i, num_classes=K, xt=torch.randn(shape, generator=g),
                          eps_pred=torch.randn(shape, generator=g), t=torch.randint(0, 50, (B,), generator=g),
                          y=torch.randint(0, K, (B,), generator=g), schedule=small_schedule(), classifier_scale=scale))
    return cases


def _classifier(c, state=None) -> LinearNoisyClassifier:
    dim = c["xt"][0].numel()
    if state is None:
        torch.manual_seed(c["seed"])
        return LinearNoisyClassifier(dim, c["num_classes"], c["schedule"].T)
    model = LinearNoisyClassifier(dim, c["num_classes"], c["schedule"].T)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def ref_classifier_guided_eps(c, state, *, grad="log_softmax", sign=-1.0, coef_of="noise", reduce="sum", scale=True,
                              step_alpha=False):
    """eps_hat in float64 from the classifier's weights, with the closed-form gradient; switches: the mistakes
    (``step_alpha``: one step's alpha_t = 1 - beta_t in place of alpha_bar_t; ``coef_of``: the gradient scaled
    by the noise rate sqrt(1 - alpha_bar_t) (right), by 1 - alpha_bar_t ("no_sqrt"), by the signal rate
    sqrt(alpha_bar_t) ("signal"), or by nothing ("none"))."""
    W, b = state["linear.weight"].double(), state["linear.bias"].double()               # (K, D + 1), (K,)
    xt, t, y = c["xt"].double(), c["t"], c["y"]
    B = xt.shape[0]
    x = torch.cat([xt.reshape(B, -1), (t.double() / c["schedule"].T)[:, None]], dim=1)  # (B, D + 1)
    p = torch.softmax(x @ W.T + b, dim=-1)                                              # (B, K)
    Wx = W[:, :-1]                                                                      # (K, D)
    g = Wx[y] - p @ Wx                                                                  # grad log p(y | x_t)
    if grad == "logit":
        g = Wx[y]
    elif grad == "prob":
        g = p[torch.arange(B), y][:, None] * g
    elif grad == "all_labels":                          # log_probs[:, y].sum(): every label for every image
        g = Wx[y].sum(0, keepdim=True) - B * (p @ Wx)
    if reduce == "mean":
        g = g / B
    a = gather(1 - c["schedule"].betas.double() if step_alpha else alpha_bar64(c["schedule"]), t, xt.ndim)
    coef = {"noise": (1 - a).sqrt(), "no_sqrt": 1 - a, "signal": a.sqrt(), "none": torch.ones_like(a)}[coef_of]
    classifier_scale = c["classifier_scale"] if scale else 1.0
    return c["eps_pred"].double() + sign * classifier_scale * coef * g.reshape(xt.shape)


def _guided_call(f, c):
    classifier = _classifier(c)
    args = (c["eps_pred"], c["xt"], c["t"], c["y"], classifier, c["schedule"], c["classifier_scale"])
    out = dict(out=f(*args), state=classifier.state_dict())
    try:                    # the worksheet's sampler calls it under torch.no_grad()
        with torch.no_grad():
            out["under_no_grad"] = f(*args)
    except Exception as err:  # noqa: BLE001 - reported as a hint, not as the check's error
        out["under_no_grad"] = raised_record(err)
    return out


def _guided_diagnose(out, c) -> str | None:
    state = seeded_state(lambda: LinearNoisyClassifier(c["xt"][0].numel(), c["num_classes"], c["schedule"].T),
                         c["seed"])
    if state_changed(out["state"], state):
        return model_changed("classifier")
    ref = ref_classifier_guided_eps(c, state)
    hint = judge(out["out"], ref, [
        ("wrong sign: guidance moves eps AGAINST the gradient, eps_hat = eps_pred - s sqrt(1 - alpha_bar_t) "
         "grad log p(y | x_t) (eps points away from the data, the gradient towards class y)",
         ref_classifier_guided_eps(c, state, sign=1.0)),
        ("the square root is forgotten on (1 - alpha_bar_t): the score is -eps / sqrt(1 - alpha_bar_t)",
         ref_classifier_guided_eps(c, state, coef_of="no_sqrt")),
        ("the gradient must be scaled by sqrt(1 - alpha_bar_t), the noise rate (the score is -eps / sqrt(1 - "
         "alpha_bar_t)), not by sqrt(alpha_bar_t)", ref_classifier_guided_eps(c, state, coef_of="signal")),
        ("the factor sqrt(1 - alpha_bar_t) is missing: eps and the score differ by it (score = -eps / sqrt(1 - "
         "alpha_bar_t)), so eps_hat = eps_pred - s sqrt(1 - alpha_bar_t) grad log p(y | x_t)",
         ref_classifier_guided_eps(c, state, coef_of="none")),
        ("take the gradient of log p(y | x_t) (log_softmax of the logits, picked at y), not of the raw logit",
         ref_classifier_guided_eps(c, state, grad="logit")),
        ("take the gradient of the LOG-probability, not of the probability p(y | x_t)",
         ref_classifier_guided_eps(c, state, grad="prob")),
        ("log_probs[:, y] is a B x B matrix (every label for every image): pick one label per image, "
         "log_probs[torch.arange(B), y], or log_probs.gather(1, y[:, None])",
         ref_classifier_guided_eps(c, state, grad="all_labels")),
        ("the gradient is B times too small: sum the selected log-probabilities over the batch before "
         "torch.autograd.grad (each x_t only appears in its own term), don't average them",
         ref_classifier_guided_eps(c, state, reduce="mean")),
        ("classifier_scale is ignored: multiply the gradient term by it",
         ref_classifier_guided_eps(c, state, scale=False)),
        ("you used alpha_t (one step's 1 - beta_t) where the formula has alpha_bar_t: the noise in x_t has std "
         "sqrt(1 - alpha_bar_t), alpha_bar_t the cumulative product (schedule.alpha_bar)",
         ref_classifier_guided_eps(c, state, step_alpha=True)),
    ], "guided eps")
    return hint or repeat_hint(out.get("under_no_grad"), ref, "under torch.no_grad() (as a sampler calls it)",
                               "compute the gradient inside `with torch.enable_grad():`")


register(Check("classifier_guided_eps", "classifier_guided_eps", _guided_cases, _guided_call, _guided_diagnose))
check_classifier_guided_eps = visible("classifier_guided_eps")


def guided_eps_variant(*, autograd=True, enable_grad=True, on_xt=False, **switches):
    """classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale) with mistakes switched
    on; none: the right one (through autograd, as a student writes it, unless ``autograd=False``;
    ``enable_grad=False``: without torch.enable_grad(), so it fails under torch.no_grad(); ``on_xt``: the
    gradient taken on the caller's xt, which it leaves requiring grad)."""
    def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
        if autograd and not switches:
            with torch.enable_grad() if enable_grad else contextlib.nullcontext():
                x = xt.requires_grad_(True) if on_xt else xt.detach().requires_grad_(True)
                log_probs = F.log_softmax(classifier(x, t), dim=-1)
                (grad,) = torch.autograd.grad(log_probs[torch.arange(len(x)), y].sum(), x)
            a = schedule.gather(schedule.alpha_bar, t, xt.ndim)
            return eps_pred - classifier_scale * (1 - a).sqrt() * grad
        c = dict(xt=xt, t=t, y=y, eps_pred=eps_pred, schedule=schedule, classifier_scale=classifier_scale)
        return ref_classifier_guided_eps(c, classifier.state_dict(), **switches).float()
    return classifier_guided_eps


MISTAKES["classifier_guided_eps"] = [
    ("gradient with the wrong sign", guided_eps_variant(sign=1.0), "wrong sign"),
    ("no sqrt on 1 - alpha_bar", guided_eps_variant(coef_of="no_sqrt"), "square root"),
    ("gradient of the logit", guided_eps_variant(grad="logit"), "not of the raw logit"),
    ("gradient of the probability", guided_eps_variant(grad="prob"), "LOG-probability"),
    ("every label for every image", guided_eps_variant(grad="all_labels"), "B x B matrix"),
    ("mean over the batch", guided_eps_variant(reduce="mean"), "B times too small"),
    ("scale ignored", guided_eps_variant(scale=False), "classifier_scale is ignored"),
    ("alpha for alpha_bar", guided_eps_variant(step_alpha=True), "alpha_bar_t the cumulative product"),
    ("no enable_grad", guided_eps_variant(enable_grad=False), "torch.enable_grad()"),
    ("requires_grad on the caller's xt", guided_eps_variant(on_xt=True), "set requires_grad on its input xt"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ guided_ddim_sample
def _sampler_cases(hidden: bool) -> list:
    from ..schedules import NoiseSchedule

    g = generator(13)
    specs = [(NoiseSchedule.linear(T=1000), 20, 3.0, 64), (NoiseSchedule.linear(T=1000), 20, 0.0, 32)]
    if hidden:
        specs += [(NoiseSchedule.cosine(T=200), 10, 1.5, 48)]
    return [dict(schedule=schedule, num_steps=num_steps, guidance_scale=w, x_T=torch.randn(n, 2, generator=g),
                 y=torch.randint(0, 8, (n,), generator=g)) for schedule, num_steps, w, n in specs]


def ref_guided_ddim(c, *, null=-1, swap=False, last="one", ignore_w=False) -> Tensor:
    """Deterministic DDIM with classifier-free guidance in float64; the switches reproduce the mistakes."""
    schedule, model = c["schedule"], mixture_model(c["schedule"])
    num_steps, w, y = c["num_steps"], (1.0 if ignore_w else c["guidance_scale"]), c["y"]
    timesteps = (torch.arange(num_steps) * (schedule.T // num_steps)).flip(0).tolist()
    alpha_bar = alpha_bar64(schedule)
    x = c["x_T"].double()
    for k, t in enumerate(timesteps):
        tt = torch.full((len(x),), t, dtype=torch.long)
        eps_uncond, eps_cond = model(x, tt, torch.full_like(y, null)), model(x, tt, y)
        if swap:
            eps_uncond, eps_cond = eps_cond, eps_uncond
        eps = eps_uncond + w * (eps_cond - eps_uncond)
        if k + 1 < len(timesteps):
            a_prev = alpha_bar[timesteps[k + 1]]
        else:
            a_prev = last_target(alpha_bar, last)
        x, _ = ref_ddim_step(x, eps, alpha_bar[t], a_prev, 0.0, torch.zeros(x.shape))
    return x


def _sampler_call(f, c):
    return f(mixture_model(c["schedule"]), c["schedule"], c["x_T"], c["y"], c["guidance_scale"], c["num_steps"])


def _sampler_diagnose(out, c) -> str | None:
    ref = ref_guided_ddim(c)
    hint = sampler_nan_hint(out, ref, "samples") or shape_hint(out, ref, "samples")
    if hint:
        return hint
    if close(out, ref, 1e-3):
        return None
    variants = [
        ("eps_cond and eps_uncond are swapped: the conditional prediction uses y, the unconditional one y = -1",
         dict(swap=True)),
        ("the unconditional prediction uses the null class -1 (torch.full_like(y, -1)), not class 0", dict(null=0)),
        ("guidance_scale is ignored: combine the two predictions with cfg_combine(eps_uncond, eps_cond, w)",
         dict(ignore_w=True)),
        ("the last step goes to clean data, alpha_bar_prev = 1: in Python alpha_bar[-1] is the LAST entry",
         dict(last="python_last")),
        ("the last step must go to alpha_bar_prev = 1 (clean data): stopping at t = 0, or stepping to alpha_bar[0], "
         "leaves its noise in the samples", dict(last="first")),
    ]
    for mistake_hint, switches in variants:
        if close(out, ref_guided_ddim(c, **switches), 1e-3):
            return mistake_hint
    return (f"the samples differ from deterministic DDIM with guidance (max abs difference "
            f"{float((out.double() - ref).abs().max()):.3g}): one unconditional (y = -1) and one conditional "
            "prediction per step, combined by your cfg_combine, then ddim_step with eta = 0")


register(Check("guided_ddim_sample", "guided_ddim_sample", _sampler_cases, _sampler_call, _sampler_diagnose))
check_guided_ddim_sample = visible("guided_ddim_sample")


def guided_sampler_variant(**switches):
    """guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps) with mistakes; none: the right one."""
    def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
        c = dict(schedule=schedule, num_steps=num_steps, guidance_scale=guidance_scale, x_T=x_T, y=y)
        return ref_guided_ddim(c, **switches).float()
    return guided_ddim_sample


MISTAKES["guided_ddim_sample"] = [
    ("cond and uncond swapped", guided_sampler_variant(swap=True), "swapped"),
    ("null class 0", guided_sampler_variant(null=0), "null class -1"),
    ("scale ignored", guided_sampler_variant(ignore_w=True), "guidance_scale is ignored"),
    ("alpha_bar[-1] at the last step", guided_sampler_variant(last="python_last"), "LAST entry"),
    ("not implemented", todo, "not implemented yet"),
]
