"""Worksheet 06 (solutions/06_guidance.ipynb): classifier-free guidance (Ho and Salimans 2022) and classifier
guidance (Dhariwal and Nichol 2021).

- ``cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale)``: eps_pred_uncond + w (eps_pred_cond -
  eps_pred_uncond) (Eq. 6, with w = 1 the plain conditional model), the signature of
  ``course_utils.guidance.cfg_combine``.
- ``cfg_loss(model, x0, y, t, eps, drop, schedule)``: worksheet 4's loss for a conditional model, with the
  labels replaced by the null class -1 where ``drop`` is True (label dropout). Its cases, reference and
  diagnosis are worksheet 4's (``ws04_training``), with labels; its model (``LabelTinyEps``) keeps the labels it is
  given, so that a null label other than -1 (num_classes, y.max() + 1, -100) is named.
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
import re

import torch
import torch.nn.functional as F

from torch import Tensor, nn

from .framework import (MISTAKES, Check, alpha_bar64, alpha_bar_prev64, close, explain_by, gather, generator, judge,
                        last_target, model_changed, model_timestep, raised_record, register, repeat_hint,
                        sampler_nan_hint, seeded_state, shape_hint, small_schedule, state_changed, todo, visible)
from .ws02_forward import BROADCAST_HINT
from .ws04_training import (TinyEps, choose_labels, diagnose_loss, loss_cases, loss_outputs, noisy_input, tiny_model,
                            tiny_state)
from .ws05_samplers import ddim_grid, mixture_model, ref_ddim_step


# ------------------------------------------------------------------ cfg_combine
def _cfg_cases(hidden: bool) -> list:
    g = generator(8)
    # 0.5 and 1.5: fractional scales among the visible ones (a scale read as int(w) is right at 3, 1 and 0, and
    # int(w) taken only above 1 is right at 0.5); -1: a negative one (max(w, 0), abs(w) or an assert on the sign
    # are right at every scale above 0: a wrong-answer pass of 2026-12-07 got a notebook's ✅ for each and lost the
    # point to the hidden cases)
    scales = [3.0, 1.0, 0.0, 0.5, -1.0, 1.5] + ([7.5, -2.5] if hidden else [])
    return [dict(eps_uncond=torch.randn(2, 1, 3, 3, generator=g), eps_cond=torch.randn(2, 1, 3, 3, generator=g),
                 guidance_scale=w) for w in scales]


CFG_FORMULA = ("eps = eps_uncond + w * (eps_cond - eps_uncond), which gives eps_uncond at w = 0 and eps_cond at "
               "w = 1, linear in w")


def _cfg_diagnose(out, c) -> str | None:
    u, k, w = c["eps_uncond"].double(), c["eps_cond"].double(), c["guidance_scale"]
    negative = ("a w below 0 is valid (it guides away from y, beyond eps_uncond): use guidance_scale as it is, "
                "without max(w, 0), abs(w) or a clamp: eps = eps_uncond + w * (eps_cond - eps_uncond)")
    hint = judge(out, u + w * (k - u), [
        # (no number with a decimal point in these words: a hidden case's message drops them, "w = … lies")
        ("guidance_scale is truncated to an integer (int(w), or a scale typed int): a fractional w is valid (w = "
         "1/2 lies halfway between eps_uncond and eps_cond), keep w a float: eps = eps_uncond + w * (eps_cond - "
         "eps_uncond)", u + int(w) * (k - u) if w != int(w) else None),
        (negative, u + max(w, 0.0) * (k - u) if w < 0 else None),
        (negative, u + abs(w) * (k - u) if w < 0 else None),
        ("eps_cond and eps_uncond are swapped: eps = eps_uncond + w * (eps_cond - eps_uncond)", k + w * (u - k)),
        ("w = 1 must give eps_cond and w = 0 eps_uncond: eps = eps_uncond + w * (eps_cond - eps_uncond)",
         k + w * (k - u)),
        ("eps = eps_uncond + w * (eps_cond - eps_uncond): the eps_uncond term is missing", w * (k - u)),
        ("the guidance term's sign: eps = eps_uncond + w * (eps_cond - eps_uncond) moves towards eps_cond, "
         "not away from it", u - w * (k - u)),
        ("w multiplies the difference eps_cond - eps_uncond, not eps_cond alone: eps = eps_uncond + w * (eps_cond "
         "- eps_uncond) (at w = 1 yours gives eps_uncond + eps_cond)", u + w * k),
        ("centred on eps_cond with (w + 1), the scale is shifted twice: at w = 0 yours gives eps_cond + (eps_cond "
         "- eps_uncond), not eps_uncond. The course's w: eps = eps_uncond + w * (eps_cond - eps_uncond)",
         k + (w + 1) * (k - u)),
        ("the course's w needs no w - 1: w = 1 is already the plain conditional model, and at w = 1 yours gives "
         "eps_uncond, not eps_cond; eps = eps_uncond + w * (eps_cond - eps_uncond)",
         u + (w - 1) * (k - u)),
        ("a weighted average (eps_uncond + w * eps_cond) / (1 + w) stays between the two predictions (and gives "
         "their mean at w = 1): guidance extrapolates, eps = eps_uncond + w * (eps_cond - eps_uncond) goes beyond "
         "eps_cond for w > 1", (u + w * k) / (1 + w) if w != -1 else None),
    ], "guided eps")
    return f"{hint}: {CFG_FORMULA}" if hint and hint.startswith("the guided eps and the reference differ") else hint


def answer_cfg_combine():
    """A right cfg_combine (``Check.answer``): lent to a caller's instant check beside a failing one."""
    def cfg_combine(eps_pred_uncond, eps_pred_cond, guidance_scale):
        return eps_pred_uncond + guidance_scale * (eps_pred_cond - eps_pred_uncond)
    return cfg_combine


register(Check("cfg_combine", "cfg_combine", _cfg_cases,
               lambda f, c: f(c["eps_uncond"], c["eps_cond"], c["guidance_scale"]), _cfg_diagnose, explain_by(
                   ("AssertionError", "guidance_scale may be any real number: w = 0 is the unconditional prediction, "
                    "w = 1 the conditional one, and a w below 0 guides away from y; no assert on it")),
               answer=answer_cfg_combine))
check_cfg_combine = visible("cfg_combine")
MISTAKES["cfg_combine"] = [
    ("swapped", lambda u, k, w: k + w * (u - k), "swapped"),
    ("w + 1 convention", lambda u, k, w: k + w * (k - u), "w = 1 must give eps_cond"),
    ("no eps_uncond term", lambda u, k, w: w * (k - u), "missing"),
    ("the guidance term's sign flipped", lambda u, k, w: u - w * (k - u), "towards eps_cond"),
    ("scale truncated to int", lambda u, k, w: u + int(w) * (k - u), "truncated to an integer"),
    ("scale clamped at 0", lambda u, k, w: u + max(w, 0.0) * (k - u), "a w below 0 is valid"),
    ("absolute value of the scale", lambda u, k, w: u + abs(w) * (k - u), "a w below 0 is valid"),
    ("w times eps_cond", lambda u, k, w: w * k + u, "not eps_cond alone"),
    ("centred on eps_cond with w + 1", lambda u, k, w: k + (w + 1) * (k - u), "centred on eps_cond with (w + 1)"),
    ("w - 1", lambda u, k, w: u + (w - 1) * (k - u), "needs no w - 1"),
    ("weighted average", lambda u, k, w: (u + w * k) / (1 + w), "weighted average"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ cfg_loss
class LabelTinyEps(TinyEps):
    """Worksheet 4's TinyEps that keeps the labels of its first calls (``seen``): the null class is -1 alone, and
    TinyEps would also read any other negative label, or num_classes, as no class. Any label that is neither a class
    nor -1 is kept for the diagnosis and read as -1 here, so that the loss is computed all the same."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[Tensor] = []

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        # the course's conditional networks look the labels up in an nn.Embedding: float labels (torch.where(drop,
        # -1.0, y)) or one-hot rows raise there, in the worksheet's training cell; TinyEps would take them
        if isinstance(y, Tensor) and tuple(y.shape) != (xt.shape[0],):
            raise ValueError(f"the model was given labels of shape {tuple(y.shape)}: one class index per example, "
                             f"shape ({xt.shape[0]},), int64 (-1 for no class), not one-hot rows")
        if isinstance(y, Tensor) and (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
            raise TypeError(f"the model was given labels of dtype {str(y.dtype).removeprefix('torch.')}: labels are "
                            "class indices, int64, -1 for no class (the course's networks look them up in an "
                            "nn.Embedding, which raises on other dtypes): y = torch.where(drop, -1, y), not -1.0")
        if isinstance(y, Tensor):
            if len(self.seen) < 4:
                self.seen.append(y.detach().clone())
            y = torch.where((y >= -1) & (y < self.num_classes), y, torch.full_like(y, -1))
        return super().forward(xt, t, y)


def _cfg_loss_call(f, c):
    torch.manual_seed(c["seed"])                      # tiny_model(c)'s weights, in a model that keeps the labels
    model = LabelTinyEps(c["x0"][0].numel(), c["schedule"].T, c["num_classes"])
    out = loss_outputs(model, lambda: f(model, c["x0"], c["y"], c["t"], c["eps"], c["drop"], c["schedule"]))
    out["labels"] = model.seen
    return out


NULL_LABEL = "the null label (no class) is -1"


def _null_label_hint(seen, c) -> str | None:
    """The hint for labels given to the model that are neither a class 0..K-1 nor the null label -1, or for dropped
    labels all replaced by one real class other than 0 (which the loss variants name); else None."""
    K, y, drop = c["num_classes"], c["y"], c["drop"]
    for labels in seen if isinstance(seen, list) else []:
        if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
            continue
        labels = labels.long()
        bad = labels[(labels < -1) | (labels >= K)]
        if bad.numel() and int(bad.flatten()[0]) < -1:
            return (f"the model is given the label {int(bad.flatten()[0])}: {NULL_LABEL} exactly, not another "
                    "negative number (-100 is cross-entropy's ignore_index, not a class): y = torch.where(drop, -1, "
                    "y)")
        dropped = labels[drop] if tuple(labels.shape) == tuple(y.shape) else labels[:0]
        kept_right = tuple(labels.shape) == tuple(y.shape) and torch.equal(labels[~drop], y[~drop])
        as_class = (dropped.numel() and kept_right and bool((dropped == dropped[0]).all())
                    and bool((dropped != y[drop]).all()) and int(dropped[0]) not in (-1, 0))
        if bad.numel() or as_class:
            v, where = (int(bad.flatten()[0]), "") if bad.numel() else (int(dropped[0]), " where drop is True")
            return (f"the model is given the label {v}{where}, and the classes are 0 to {K - 1}: "
                    f"{NULL_LABEL}, not num_classes or y.max() + 1 (y = torch.where(drop, -1, y)); the course's "
                    "networks and samplers ask for the unconditional prediction with y = -1")
    return None


_IMAGES_REMARK = re.compile(r" \(this case is a batch of images, x0 of shape .*?schedule\.gather does it\)")


def _broadcast_matches(out, c) -> bool:
    """Whether the loss is the one of an alpha_bar[t] of shape (B,) or (B, 1) broadcast against the images' last
    dimensions (possible where they happen to have B entries): the mistake diagnose_loss's remark on images is for."""
    loss = out.get("loss") if isinstance(out, dict) else None
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        return False
    x0, eps, t = c["x0"].double(), c["eps"].double(), c["t"]
    model = tiny_model(c, tiny_state(c))
    for view in ((-1,), (-1, 1)):
        a = alpha_bar64(c["schedule"])[t].reshape(view)
        try:
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        except RuntimeError:
            continue
        if tuple(xt.shape) == tuple(x0.shape):
            with torch.no_grad():
                wrong = F.mse_loss(model(xt, t, torch.where(c["drop"], -1, c["y"])), eps)
            if close(loss.reshape(()), wrong):
                return True
    return False


def _cfg_loss_diagnose(out, c) -> str | None:
    hint = _null_label_hint(out.get("labels"), c) if isinstance(out, dict) else None
    hint = hint or diagnose_loss(out, c)
    # diagnose_loss's remark on images ("alpha_bar[t] must be reshaped to (B, 1, 1, 1)") only where it applies: a
    # wrong label, a wrong target, ... on an image case would be sent to the reshape
    if hint and _IMAGES_REMARK.search(hint) and not _broadcast_matches(out, c):
        hint = _IMAGES_REMARK.sub("", hint)
    return hint


register(Check("cfg_loss", "cfg_loss", lambda hidden: loss_cases(hidden, num_classes=3), _cfg_loss_call,
               _cfg_loss_diagnose, explain_by(("must match the size of tensor b", BROADCAST_HINT))))
check_cfg_loss = visible("cfg_loss")


def cfg_loss_variant(labels="dropped", target="eps", *, null=None, alpha_view=None):
    """cfg_loss(model, x0, y, t, eps, drop, schedule) with a catalogued mistake; defaults: the right one
    (``null(y)``: the null label used; ``alpha_view``: alpha_bar[t] reshaped to it, (-1,) or (-1, 1), not to
    (B, 1, ..., 1))."""
    def cfg_loss(model, x0, y, t, eps, drop, schedule):
        if alpha_view is None:
            xt = noisy_input(x0, t, eps, schedule)
        else:
            a = schedule.alpha_bar[t].reshape(alpha_view)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        y = torch.where(drop, null(y), y) if null else choose_labels(y, drop, labels)
        return F.mse_loss(model(xt, t, y), {"eps": eps, "x0": x0, "minus_eps": -eps}[target])
    return cfg_loss


def _cfg_loss_one_hot(model, x0, y, t, eps, drop, schedule):
    """The labels given to the model as one-hot rows (B, K), the dropped ones all zero."""
    labels = F.one_hot(y.clamp(min=0), int(y.max()) + 1).float() * (~drop).float()[:, None]
    return F.mse_loss(model(noisy_input(x0, t, eps, schedule), t, labels), eps)


def _cfg_loss_kept_only(model, x0, y, t, eps, drop, schedule):
    """The loss over the examples whose label is kept: the dropped ones left out, not given the label -1."""
    keep = ~drop
    return F.mse_loss(model(noisy_input(x0[keep], t[keep], eps[keep], schedule), t[keep], y[keep]), eps[keep])


MISTAKES["cfg_loss"] = [
    ("float labels", cfg_loss_variant(null=lambda y: torch.full(y.shape, -1.0)), "labels of dtype float32"),
    ("one-hot labels", _cfg_loss_one_hot, "not one-hot rows"),
    ("mask inverted", cfg_loss_variant("inverted"), "inverted"),
    ("never drops", cfg_loss_variant("kept"), "never dropped"),
    ("null class 0", cfg_loss_variant("zero"), "null class is -1"),
    ("null label y.max() + 1", cfg_loss_variant(null=lambda y: y.max() + 1), "not num_classes or y.max() + 1"),
    ("null label -100", cfg_loss_variant(null=lambda y: torch.full_like(y, -100)), "not another negative number"),
    ("target x0", cfg_loss_variant(target="x0"), "target is the noise"),
    ("target -eps", cfg_loss_variant(target="minus_eps"), "predict +eps, not -eps"),
    ("every label the null class", cfg_loss_variant("all_null"), "every label is the null class -1"),
    ("alpha_bar not reshaped", cfg_loss_variant(alpha_view=(-1,)),
     "one 1 for each dimension of the images after the batch"),
    ("alpha_bar reshaped to (B, 1)", cfg_loss_variant(alpha_view=(-1, 1)), "alpha_bar[t] must be reshaped to"),
    ("dropped examples left out", _cfg_loss_kept_only, "where drop is True are left out of the loss"),
    ("feeds x0", lambda model, x0, y, t, eps, drop, schedule: F.mse_loss(model(x0, t, torch.where(drop, -1, y)), eps),
     "feed the noisy x_t to the model"),
    ("sum", lambda model, x0, y, t, eps, drop, schedule: F.mse_loss(
        model(noisy_input(x0, t, eps, schedule), t, torch.where(drop, -1, y)), eps, reduction="sum"),
     "average over the batch"),
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
                          # the first case's labels are 0 and 1 of 3 classes: F.one_hot(y) without num_classes is
                          # then two columns wide, narrower than the logits (in the worksheet's demo y is all zeros)
                          y=torch.arange(B) % (K - 1) if i == 0 else torch.randint(0, K, (B,), generator=g),
                          schedule=small_schedule(), classifier_scale=scale))
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
                              step_alpha=False, prev_alpha=False, with_eps=True):
    """eps_hat in float64 from the classifier's weights, with the closed-form gradient; switches: the mistakes
    (``step_alpha``: one step's alpha_t = 1 - beta_t in place of alpha_bar_t; ``coef_of``: the gradient scaled
    by the noise rate sqrt(1 - alpha_bar_t) (right), by 1 - alpha_bar_t ("no_sqrt"), by the signal rate
    sqrt(alpha_bar_t) ("signal"), divided by the noise rate ("divide"), or by nothing ("none"); ``grad="dim0"``:
    log_softmax over the batch, dim=0; ``prev_alpha``: alpha_bar_{t-1}; ``with_eps=False``: eps_pred left out)."""
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
    elif grad == "dim0":                                # log_softmax(logits, dim=0): normalised over the batch
        q = torch.softmax(x @ W.T + b, dim=0)[:, y]     # (B, B): q[m, i] = softmax over images m of logit y_i
        g = Wx[y] - q @ Wx[y]
    if reduce == "mean":
        g = g / B
    table = (1 - c["schedule"].betas.double() if step_alpha else alpha_bar_prev64(c["schedule"]) if prev_alpha
             else alpha_bar64(c["schedule"]))
    a = gather(table, t, xt.ndim)
    coef = {"noise": (1 - a).sqrt(), "no_sqrt": 1 - a, "signal": a.sqrt(), "none": torch.ones_like(a),
            "divide": 1 / (1 - a).sqrt()}[coef_of]
    classifier_scale = c["classifier_scale"] if scale else 1.0
    return c["eps_pred"].double() * with_eps + sign * classifier_scale * coef * g.reshape(xt.shape)


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
    B, shape = c["xt"].shape[0], tuple(c["xt"].shape)
    if isinstance(out["out"], Tensor) and tuple(out["out"].shape) != shape and (
            tuple(out["out"].shape) == tuple(torch.broadcast_shapes((B,), shape))):
        return f"wrong shape {tuple(out['out'].shape)}, expected {shape}: {FLAT_ALPHA_HINT}"
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
        ("multiply the gradient by sqrt(1 - alpha_bar_t), don't divide by it: eps = -sqrt(1 - alpha_bar_t) score, "
         "so eps_hat = eps_pred - s sqrt(1 - alpha_bar_t) grad log p(y | x_t)",
         ref_classifier_guided_eps(c, state, coef_of="divide")),
        ("log_softmax over dim=0 normalises over the BATCH: the classes are the last dimension, "
         "F.log_softmax(logits, dim=-1) (or dim=1)", ref_classifier_guided_eps(c, state, grad="dim0")),
        ("eps_pred is left out: the guided prediction is eps_pred moved by the gradient term, eps_hat = eps_pred "
         "- s sqrt(1 - alpha_bar_t) grad log p(y | x_t)", ref_classifier_guided_eps(c, state, with_eps=False)),
        ("eps_pred + s grad log p(y | x_t) is the score's form (score + s grad): in eps form the gradient enters "
         "with a minus sign and the factor sqrt(1 - alpha_bar_t) (eps = -sqrt(1 - alpha_bar_t) score), eps_hat = "
         "eps_pred - s sqrt(1 - alpha_bar_t) grad log p(y | x_t)",
         ref_classifier_guided_eps(c, state, sign=1.0, coef_of="none")),
        ("you used alpha_bar_{t-1} (alpha_bar_prev): x_t's noise has std sqrt(1 - alpha_bar_t), at the t given, "
         "schedule.alpha_bar[t]", ref_classifier_guided_eps(c, state, prev_alpha=True)),
        ("F.cross_entropy(logits, y) is MINUS log p(y | x_t), averaged over the batch: its gradient points the other "
         "way and is B times smaller. Differentiate log p itself, summed: F.log_softmax(logits, dim=-1)["
         "torch.arange(B), y].sum() (or -F.cross_entropy(logits, y, reduction='sum'))",
         ref_classifier_guided_eps(c, state, sign=1.0, reduce="mean")),
    ], "guided eps")
    if hint and hint.startswith("the guided eps and the reference differ"):
        hint += (": eps_hat = eps_pred - s * sqrt(1 - alpha_bar_t) * grad_{x_t} log p(y | x_t, t), the gradient of "
                 "F.log_softmax(classifier(x_t, t), dim=-1) picked at each image's own y, summed over the batch")
    return hint or repeat_hint(out.get("under_no_grad"), ref, "under torch.no_grad() (as a sampler calls it)",
                               "compute the gradient inside `with torch.enable_grad():`")


FLAT_ALPHA_HINT = ("schedule.alpha_bar[t] has shape (B,), which lines up with the LAST dimension of x_t: reshape it "
                   "to (B, 1, ..., 1), one 1 per dimension after the batch (schedule.gather(schedule.alpha_bar, t, "
                   "xt.ndim))")
# two of the function's products can fail to line up, and torch's words name neither: alpha_bar[t] of shape (B,)
# against x_t, and a one-hot of y against the logits (F.one_hot(y) is only as wide as the batch's largest label + 1)
SHAPES_HINT = ("two shapes do not line up. Where it is schedule.alpha_bar[t], of shape (B,), which lines up with the "
               "LAST dimension of x_t: reshape it to (B, 1, ..., 1) (schedule.gather(schedule.alpha_bar, t, "
               "xt.ndim)). Where it is a one-hot of y: make it as wide as the logits, F.one_hot(y, "
               "num_classes=logits.shape[-1]) (F.one_hot(y) is only as wide as the largest label in the batch, and "
               "10 is MNIST's count, not every classifier's), or pick log_probs[torch.arange(B), y]")
_guided_explain = explain_by(
    ("only for scalar outputs",
     "torch.autograd.grad needs a scalar: sum the selected log-probabilities over the batch first, "
     "torch.autograd.grad(log_probs[torch.arange(B), y].sum(), x) (each x_t is only in its own term, so the sum's "
     "gradient is every image's own)"),
    ("Index tensor must have the same number of dimensions",
     "gather(1, index) needs an index with log_probs' two dimensions: log_probs.gather(1, y[:, None]) (shape "
     "(B, 1)), or log_probs[torch.arange(B), y]"),
    ("appears to not have been used in the graph",
     "the classifier never saw the tensor you differentiate by: call it on that very tensor, x = "
     "xt.detach().requires_grad_(True), then classifier(x, t) and torch.autograd.grad(..., x)"),
    ("does not require grad",
     "the gradient needs an x_t that requires grad: x = xt.detach().requires_grad_(True), then classifier(x, t), "
     "all inside `with torch.enable_grad():`"),
    ("must match the size of tensor", SHAPES_HINT))
register(Check("classifier_guided_eps", "classifier_guided_eps", _guided_cases, _guided_call, _guided_diagnose,
               _guided_explain))
check_classifier_guided_eps = visible("classifier_guided_eps")


def guided_eps_variant(*, autograd=True, enable_grad=True, on_xt=False, slip=None, **switches):
    """classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale) with mistakes switched
    on; none: the right one (through autograd, as a student writes it, unless ``autograd=False``;
    ``enable_grad=False``: without torch.enable_grad(), so it fails under torch.no_grad(); ``on_xt``: the
    gradient taken on the caller's xt, which it leaves requiring grad; ``slip``, the raised errors: "one_hot"
    (F.one_hot(y) without num_classes: as wide as the largest label), "no_sum"
    (torch.autograd.grad of the (B,) selection), "gather" (log_probs.gather(1, y)), "unused" (the classifier
    called on xt, the gradient taken for its copy x), "flat" (alpha_bar[t] of shape (B,)); and "cross_entropy"
    (the gradient of F.cross_entropy(logits, y), taken for log p(y | x_t))."""
    def classifier_guided_eps(eps_pred, xt, t, y, classifier, schedule, classifier_scale):
        if autograd and not switches:
            with torch.enable_grad() if enable_grad else contextlib.nullcontext():
                x = xt.requires_grad_(True) if on_xt else xt.detach().requires_grad_(True)
                log_probs = F.log_softmax(classifier(xt if slip == "unused" else x, t), dim=-1)
                selected = (log_probs.gather(1, y) if slip == "gather" else (log_probs * F.one_hot(y)).sum(1)
                            if slip == "one_hot" else log_probs[torch.arange(len(x)), y])
                objective = (F.cross_entropy(classifier(x, t), y) if slip == "cross_entropy" else selected
                             if slip == "no_sum" else selected.sum())
                (grad,) = torch.autograd.grad(objective, x)
            a = schedule.alpha_bar[t] if slip == "flat" else schedule.gather(schedule.alpha_bar, t, xt.ndim)
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
    ("grad of a (B,) tensor", guided_eps_variant(slip="no_sum"), "needs a scalar"),
    ("gather without y[:, None]", guided_eps_variant(slip="gather"), "index with log_probs' two dimensions"),
    ("gradient for a tensor the classifier never saw", guided_eps_variant(slip="unused"),
     "never saw the tensor you differentiate by"),
    ("alpha_bar[t] not reshaped", guided_eps_variant(slip="flat"), "two shapes do not line up"),
    ("one-hot of y without num_classes", guided_eps_variant(slip="one_hot"), "two shapes do not line up"),
    ("divided by sqrt(1 - alpha_bar)", guided_eps_variant(coef_of="divide"), "don't divide by it"),
    ("log_softmax over the batch", guided_eps_variant(grad="dim0"), "normalises over the BATCH"),
    ("eps_pred left out", guided_eps_variant(with_eps=False), "eps_pred is left out"),
    ("score form", guided_eps_variant(sign=1.0, coef_of="none"), "the score's form"),
    ("alpha_bar_prev for alpha_bar", guided_eps_variant(prev_alpha=True), "alpha_bar_{t-1} (alpha_bar_prev)"),
    ("F.cross_entropy for log p", guided_eps_variant(slip="cross_entropy"), "F.cross_entropy(logits, y) is MINUS"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ guided_ddim_sample
def _sampler_cases(hidden: bool) -> list:
    from ..schedules import NoiseSchedule

    g = generator(13)
    # the third: a fractional scale (int(w) is right at 3 and 0) on a schedule of its own, T = 500 (a sampler on a
    # global schedule or on T = 1000 is right on the first two); small, so that the visible check stays quick
    # 1.5: a fractional scale above 1 (int(w) taken only above 1, as for cfg_combine, passed 3, 0 and 0.5)
    specs = [(NoiseSchedule.linear(T=1000), 20, 3.0, 64), (NoiseSchedule.linear(T=1000), 20, 0.0, 32),
             (NoiseSchedule.cosine(T=500), 10, 0.5, 32), (NoiseSchedule.cosine(T=200), 10, 1.5, 16)]
    if hidden:
        specs += [(NoiseSchedule.cosine(T=200), 10, 2.5, 48)]
    return [dict(schedule=schedule, num_steps=num_steps, guidance_scale=w, x_T=torch.randn(n, 2, generator=g),
                 y=torch.randint(0, 8, (n,), generator=g)) for schedule, num_steps, w, n in specs]


def ref_guided_ddim(c, *, null=-1, swap=False, last="one", ignore_w=False, scale=None, steps=None,
                    uncond_once=False, x0_from=None, global_alpha_bar=False, keep_x0=False, prev="grid", t_arg="t",
                    clip=False) -> Tensor:
    """Deterministic DDIM with classifier-free guidance in float64; the switches reproduce the mistakes
    (``scale``: "int" (int(w)) or "plus_one" (1 + w) given to cfg_combine; ``steps``: a grid of that many steps,
    or "T" (every t), whatever num_steps; ``uncond_once``: the unconditional prediction of the first step reused;
    ``x0_from``: "cond" or "uncond", the eps that x0_pred is computed from, the guided one only in the direction
    term; ``global_alpha_bar``: the steps taken with the alpha_bar of the notebook's NoiseSchedule.linear(1000);
    ``keep_x0``: each step's x0_pred carried on in place of x_prev; ``prev="t-1"``: each step to t - 1, not to the
    grid's next entry; ``t_arg``: the timestep the model is given, as in ``model_timestep``; ``clip``: x0_pred
    clamped to [-1, 1])."""
    from ..schedules import NoiseSchedule

    schedule, model = c["schedule"], mixture_model(c["schedule"])
    w, y = c["guidance_scale"], c["y"]
    w = 1.0 if ignore_w else {None: w, "int": int(w), "plus_one": 1 + w}[scale]
    num_steps = {None: c["num_steps"], "T": schedule.T}.get(steps, steps)
    timesteps = ddim_grid(schedule.T, num_steps)
    alpha_bar = alpha_bar64(NoiseSchedule.linear(T=1000) if global_alpha_bar else schedule)
    x, eps_uncond = c["x_T"].double(), None
    for k, t in enumerate(timesteps):
        tt = torch.full((len(x),), model_timestep(t, k, t_arg), dtype=torch.long)
        if eps_uncond is None or not uncond_once:
            eps_uncond = model(x, tt, torch.full_like(y, null))
        eps_cond = model(x, tt, y)
        if swap:
            eps_uncond, eps_cond = eps_cond, eps_uncond
        eps = eps_uncond + w * (eps_cond - eps_uncond)
        t_prev = (t - 1) if prev == "t-1" else timesteps[k + 1] if k + 1 < len(timesteps) else -1
        a_prev = alpha_bar[t_prev] if t_prev >= 0 else last_target(alpha_bar, last)
        if x0_from:
            e = eps_cond if x0_from == "cond" else eps_uncond
            x0_pred = (x - (1 - alpha_bar[t]).sqrt() * e) / alpha_bar[t].sqrt()
            x = a_prev.sqrt() * x0_pred + (1 - a_prev).sqrt() * eps
        else:
            x_prev, x0_pred = ref_ddim_step(x, eps, alpha_bar[t], a_prev, 0.0, torch.zeros(x.shape), clip=clip)
            x = x0_pred if keep_x0 else x_prev
    return x


def _sampler_call(f, c):
    """The samples, twice from the same x_T (deterministic DDIM gives the same ones)."""
    args = (c["schedule"], c["x_T"], c["y"], c["guidance_scale"], c["num_steps"])
    return dict(out=f(mixture_model(c["schedule"]), *args), again=f(mixture_model(c["schedule"]), *args))


OWN_SCHEDULE = ("use the schedule given as argument (its own T and alpha_bar), not a global one or T = 1000: the grid "
                "is ddim_timesteps(schedule.T, num_steps), each step with schedule.alpha_bar")
_INDEX = re.compile(r"index (-?\d+) is out of bounds for dimension (\d+) with size (\d+)")


def _sampler_explain(error: str) -> str | None:
    """PyTorch's IndexError where a timestep runs past the schedule (dimension 0 of alpha_bar, in the student's code
    or in the model's) or a label past the model's classes (dimension 1 of the mixture's components); a Python
    number where ddim_step takes a tensor (the last alpha_bar_prev)."""
    if any(words in error for words in (": t must be a tensor of shape (",      # a course model refuses one t
                                        "'int' object has no attribute 'long'")):  # (older models: their t.long())
        return ("the model takes one timestep per example: t of shape (N,), torch.full((len(x),), t, "
                "dtype=torch.long), not a bare number")
    if re.search(r"'(float|int)' object has no attribute", error):
        return ("after the last step alpha_bar_prev is 1: pass it as a tensor, torch.tensor(1.0) (a Python number "
                "has no .sqrt())")
    found = _INDEX.search(error)
    if not found:
        return None
    index, dim, size = (int(v) for v in found.groups())
    if dim == 1:
        return (f"the model has no class {index} (its classes are 0 to {size - 1}): the unconditional prediction "
                "asks for the null label -1, torch.full_like(y, -1)")
    if index > size:
        return f"timestep {index} is past this schedule's T = {size}: {OWN_SCHEDULE}"
    if index == size:
        return (f"t = {size} = T is past the schedule's end (alpha_bar has T entries, t = 0 ... T - 1): the grid is "
                "ddim_timesteps(schedule.T, num_steps), from T - T // num_steps down to 0")
    return None


def _sampler_diagnose(record, c) -> str | None:
    out, again = record["out"], record["again"]
    ref = ref_guided_ddim(c)
    hint = sampler_nan_hint(out, ref, "samples") or shape_hint(out, ref, "samples")
    if hint:
        return hint
    if isinstance(again, Tensor) and tuple(again.shape) == tuple(out.shape) and not close(out, again, 1e-6):
        return ("two runs from the same x_T gave different samples: guided_ddim_sample is deterministic DDIM, "
                "ddim_step with eta = 0 and no noise of its own")
    if close(out, ref, 1e-3):
        return None
    w = c["guidance_scale"]
    variants = [
        # the first case (w = 3) passed, or this one would be named there: the plain conditional samples at a w
        # below 1 are diffusers' `do_classifier_free_guidance = guidance_scale > 1`, not a swap (at w = 0 the two
        # coincide; a wrong-answer pass of 2026-12-07 was told "swapped")
        ("at a guidance_scale below 1 your samples are the plain conditional ones (w = 1): combine the two "
         "predictions with cfg_combine at every w, w = 0 giving the unconditional model (diffusers guides only "
         "when guidance_scale > 1, and falls back to the conditional prediction below)",
         dict(ignore_w=True) if w < 1 else None),
        ("eps_cond and eps_uncond are swapped: the conditional prediction uses y, the unconditional one y = -1",
         dict(swap=True)),
        ("the unconditional prediction uses the null class -1 (torch.full_like(y, -1)), not class 0", dict(null=0)),
        # (before "ignored": int(w) taken above 1 only gives, at w = 1.5, the conditional samples of w = 1)
        ("guidance_scale is truncated to an integer (int(w)): a fractional scale (w = 1/2, 3/2) is valid, pass it to "
         "cfg_combine as it is", dict(scale="int") if w != int(w) else None),
        # two conditional predictions combine to the conditional one whatever w is: the same samples as w ignored
        ("guidance_scale is ignored (the samples are the plain conditional ones, w = 1): combine the two "
         "predictions with cfg_combine(eps_uncond, eps_cond, w), and make eps_uncond unconditional, the model "
         "asked with y = -1 (torch.full_like(y, -1)), not with y", dict(ignore_w=True)),
        ("the last step goes to clean data, alpha_bar_prev = 1: in Python alpha_bar[-1] is the LAST entry",
         dict(last="python_last")),
        ("the last step must go to alpha_bar_prev = 1 (clean data): stopping at t = 0, or stepping to alpha_bar[0], "
         "leaves its noise in the samples", dict(last="first")),
        ("cfg_combine(eps_uncond, eps_cond, 1 + w): guidance_scale is already the course's w (w = 1 the plain "
         "conditional model), pass it as it is", dict(scale="plus_one")),
        (OWN_SCHEDULE, dict(global_alpha_bar=True) if c["schedule"].T < 1000 else None),
        ("the unconditional prediction is computed once, before the loop: ask the model for both predictions at "
         "every step, at the current x and t", dict(uncond_once=True)),
        ("ddim_step returns (x_prev, x0_pred): carry x_prev into the next step, x, _ = ddim_step(...), not "
         "x0_pred", dict(keep_x0=True)),
        ("the guided eps goes into the whole DDIM step, x0_pred included: ddim_step(x, eps, ...) with eps = "
         "cfg_combine(...), not x0_pred from one prediction and the guided eps in the direction term only",
         dict(x0_from="cond")),
        ("the guided eps goes into the whole DDIM step, x0_pred included: ddim_step(x, eps, ...) with eps = "
         "cfg_combine(...), not x0_pred from one prediction and the guided eps in the direction term only",
         dict(x0_from="uncond")),
        ("num_steps is ignored: the grid is ddim_timesteps(schedule.T, num_steps), num_steps steps (not the "
         "default 50, nor every t)", dict(steps=50) if c["num_steps"] != 50 else None),
        ("num_steps is ignored: the grid is ddim_timesteps(schedule.T, num_steps), num_steps steps (not the "
         "default 50, nor every t)", dict(steps="T")),
        ("off by one in the time grid: each step jumps to the next entry of ddim_timesteps(schedule.T, num_steps), "
         "alpha_bar_prev = schedule.alpha_bar[t_prev], not to t - 1", dict(prev="t-1")),
        ("call the model with the timestep t of the grid (ddim_timesteps(schedule.T, num_steps)), not with the loop "
         "index", dict(t_arg="k")),
        ("x0_pred is clamped to [-1, 1] (diffusers' clip_sample): the worksheet's ddim_step uses it as predicted; "
         "call ddim_step(x, eps, alpha_bar_t, alpha_bar_prev) and carry its x_prev on", dict(clip=True)),
    ]
    for mistake_hint, switches in variants:
        if switches is not None and close(out, ref_guided_ddim(c, **switches), 1e-3):
            return mistake_hint
    return (f"the samples differ from deterministic DDIM with guidance (max abs difference "
            f"{float((out.double() - ref).abs().max()):.3g}): one unconditional (y = -1) and one conditional "
            "prediction per step, combined by your cfg_combine, then ddim_step with eta = 0")


register(Check("guided_ddim_sample", "guided_ddim_sample", _sampler_cases, _sampler_call, _sampler_diagnose,
               _sampler_explain, calls=("cfg_combine",)))
check_guided_ddim_sample = visible("guided_ddim_sample")


def guided_sampler_variant(*, horizon=None, global_schedule=False, both_conditional=False, **switches):
    """guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps) with mistakes; none: the right one
    (``horizon``: the grid of ddim_timesteps(horizon, num_steps) with the schedule's alpha_bar, T = 1000
    hard-coded; ``global_schedule``: the notebook's NoiseSchedule.linear(1000) in place of the argument, for the
    grid and the steps; both index past a shorter schedule, in the student's code or in the model;
    ``both_conditional``: both predictions asked with y, whose cfg_combine is the conditional one). These three run
    a loop as a student writes it with the package's ddim_step (which takes the last alpha_bar_prev as the Python
    number 1.0 as well as torch.tensor(1.0): no mistake, so not in the catalogue)."""
    def guided_ddim_sample(model, schedule, x_T, y, guidance_scale, num_steps=50):
        if horizon or global_schedule or both_conditional:
            from ..schedules import NoiseSchedule
            from ..samplers import ddim_step, ddim_timesteps

            own = NoiseSchedule.linear(T=1000) if global_schedule else schedule
            grid = ddim_timesteps(horizon or own.T, num_steps).tolist()
            x = x_T
            for k, t in enumerate(grid):
                tt = torch.full((len(x),), t, dtype=torch.long)
                eps_uncond = model(x, tt, y if both_conditional else torch.full_like(y, -1))
                eps_cond = model(x, tt, y)
                a_prev = own.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
                x, _ = ddim_step(x, eps_uncond + guidance_scale * (eps_cond - eps_uncond), own.alpha_bar[t], a_prev)
            return x
        c = dict(schedule=schedule, num_steps=num_steps, guidance_scale=guidance_scale, x_T=x_T, y=y)
        return ref_guided_ddim(c, **switches).float()
    return guided_ddim_sample


def _guided_with_own_noise(model, schedule, x_T, y, guidance_scale, num_steps=50):
    """The right samples plus noise drawn at every call (ddim_step with eta = 1 and torch.randn_like, say)."""
    right = guided_sampler_variant()(model, schedule, x_T, y, guidance_scale, num_steps)
    return right + 0.1 * torch.randn_like(right)


def _guided_above_one_only(model, schedule, x_T, y, guidance_scale, num_steps=50):
    """diffusers' habit: guidance only when guidance_scale > 1, the conditional prediction alone below."""
    return guided_sampler_variant(ignore_w=guidance_scale <= 1)(model, schedule, x_T, y, guidance_scale, num_steps)


def _guided_with_int_t(model, schedule, x_T, y, guidance_scale, num_steps=50):
    """The model asked with the grid's t as a Python int, not one timestep per sample: the model refuses it."""
    from ..samplers import ddim_step, ddim_timesteps

    grid, x = ddim_timesteps(schedule.T, num_steps).tolist(), x_T
    for k, t in enumerate(grid):
        eps_uncond, eps_cond = model(x, t, torch.full_like(y, -1)), model(x, t, y)
        a_prev = schedule.alpha_bar[grid[k + 1]] if k + 1 < len(grid) else torch.tensor(1.0)
        x, _ = ddim_step(x, eps_uncond + guidance_scale * (eps_cond - eps_uncond), schedule.alpha_bar[t], a_prev)
    return x


MISTAKES["guided_ddim_sample"] = [
    ("both predictions conditional", guided_sampler_variant(both_conditional=True), "guidance_scale is ignored"),
    ("cond and uncond swapped", guided_sampler_variant(swap=True), "swapped"),
    ("null class 0", guided_sampler_variant(null=0), "null class -1"),
    ("null label num_classes", guided_sampler_variant(null=8), "asks for the null label -1"),
    ("scale ignored", guided_sampler_variant(ignore_w=True), "guidance_scale is ignored"),
    ("guidance only above w = 1 (diffusers)", _guided_above_one_only, "diffusers guides only when"),
    ("scale truncated to int", guided_sampler_variant(scale="int"), "truncated to an integer"),
    ("cfg_combine with 1 + w", guided_sampler_variant(scale="plus_one"), "is already the course's w"),
    ("a global schedule", guided_sampler_variant(global_schedule=True), "use the schedule given as argument"),
    ("T = 1000 hard-coded", guided_sampler_variant(horizon=1000), "use the schedule given as argument"),
    ("the global schedule's alpha_bar", guided_sampler_variant(global_alpha_bar=True),
     "use the schedule given as argument"),
    ("unconditional prediction once", guided_sampler_variant(uncond_once=True), "computed once"),
    ("guided eps in the direction only", guided_sampler_variant(x0_from="cond"), "x0_pred included"),
    ("num_steps ignored", guided_sampler_variant(steps=50), "num_steps is ignored"),
    ("alpha_bar[-1] at the last step", guided_sampler_variant(last="python_last"), "LAST entry"),
    ("x0_pred carried on for x_prev", guided_sampler_variant(keep_x0=True), "carry x_prev into the next step"),
    ("a stochastic step with a noise of its own", _guided_with_own_noise, "two runs from the same x_T"),
    ("steps to t - 1", guided_sampler_variant(prev="t-1"), "off by one in the time grid"),
    ("the model asked at the loop index", guided_sampler_variant(t_arg="k"), "not with the loop index"),
    ("x0_pred clamped", guided_sampler_variant(clip=True), "clip_sample"),
    ("the model given a bare int t", _guided_with_int_t, "the model takes one timestep per example"),
    ("not implemented", todo, "not implemented yet"),
]
