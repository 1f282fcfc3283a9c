"""Worksheet 04 (solutions/04_training.ipynb): training a noise predictor (Ho et al. 2020, Algorithm 1).

- ``diffusion_loss(model, schedule, x0, *, t, eps)``: L_simple (Eq. 14) for GIVEN timesteps and noise,
      MSE(eps, model(sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t)),
  the signature of ``course_utils.training.diffusion_loss``, which draws t and eps itself when not given.
- ``training_step(model, optimizer, x0, t, eps, schedule)``: zero_grad, backward, step; returns the loss. Judged
  over two steps of SGD with momentum, an optimizer with state as the worksheet's AdamW (a new optimizer per
  step loses it).
- ``EMA(model, decay)`` with ``update(model, step)`` and the averaged copy in ``.model``: Polyak averaging
  theta_ema <- d theta_ema + (1 - d) theta with the warm-up d = min(decay, (1 + step) / (10 + step)) (as in
  diffusers' EMAModel and ``course_utils.training.EMA``). The check sets the live weights itself before each
  update and compares every averaged state with the float64 reference.

The loss is judged with ``TinyEps``, a tiny fixed network: the reference rebuilds it from the student's
weights in float64 and compares the loss and its gradients. Worksheet 6's ``cfg_loss`` reuses these cases.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..schedules import NoiseSchedule
from .framework import (MISTAKES, Check, TodoModule, alpha_bar64, alpha_bar_prev64, close, explain_by, generator,
                        model_changed, register, rng_moved_hint, seeded_state, small_schedule, state_changed, todo,
                        visible)
from .ws02_forward import ref_q_sample, wrapped_prev


class TinyEps(nn.Module):
    """A tiny noise predictor for the checks: eps = W2 tanh(W1 [x, t/T] (+ class embedding)) + b2, any (B, ...)."""

    def __init__(self, dim: int, T: int, num_classes: int | None = None, hidden: int = 8):
        super().__init__()
        self.T, self.num_classes = T, num_classes
        self.inp = nn.Linear(dim + 1, hidden)
        self.out = nn.Linear(hidden, dim)
        self.emb = nn.Embedding(num_classes + 1, hidden) if num_classes else None

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        B = xt.shape[0]
        if not isinstance(t, Tensor) or tuple(t.shape) != (B,):
            raise ValueError(f"model(xt, t): t must be a tensor of shape ({B},), one timestep per example")
        h = self.inp(torch.cat([xt.reshape(B, -1), t.to(xt.dtype)[:, None] / self.T], dim=1))
        if self.emb is not None:
            y = torch.full((B,), -1, dtype=torch.long) if y is None else y.long()
            h = h + self.emb(torch.where(y < 0, torch.full_like(y, self.num_classes), y))
        return self.out(torch.tanh(h)).reshape(xt.shape)


def tiny_state(c) -> dict:
    """The weights the case's TinyEps starts with (``tiny_model(c)`` in the student's process), rebuilt here."""
    return seeded_state(lambda: TinyEps(c["x0"][0].numel(), c["schedule"].T, c.get("num_classes")), c["seed"])


def tiny_model(c, state=None) -> TinyEps:
    """The case's TinyEps: built from the case's seed (float32, for the student), or from ``state`` (float64)."""
    if state is None:
        torch.manual_seed(c["seed"])
        return TinyEps(c["x0"][0].numel(), c["schedule"].T, c.get("num_classes"))
    model = TinyEps(c["x0"][0].numel(), c["schedule"].T, c.get("num_classes"))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.double()


# ------------------------------------------------------------------ diffusion_loss
def loss_cases(hidden: bool, num_classes: int | None = None) -> list:
    g = generator(5)
    schedule = small_schedule()
    # 2-D points and a batch of images (a schedule value reshaped for (B, D) alone fails the second); every draw of
    # a visible case comes before the hidden case's, so the visible cases are the same either way
    cases = [dict(seed=0, x0=torch.randn(8, 2, generator=g), t=torch.randint(0, 50, (8,), generator=g),
                  eps=torch.randn(8, 2, generator=g), schedule=schedule)]
    _labels(cases[-1], num_classes, g)
    cases.append(dict(seed=1, x0=torch.randn(3, 1, 3, 3, generator=g), t=torch.tensor([0, 25, 49]),
                      eps=torch.randn(3, 1, 3, 3, generator=g), schedule=schedule))
    _labels(cases[-1], num_classes, g)
    if hidden:                              # three channels, another schedule
        cases.append(dict(seed=2, x0=torch.randn(2, 3, 2, 2, generator=g), t=torch.tensor([40, 3]),
                          eps=torch.randn(2, 3, 2, 2, generator=g), schedule=NoiseSchedule.cosine(T=50)))
        _labels(cases[-1], num_classes, g)
    return cases


def _labels(case: dict, num_classes: int | None, g: torch.Generator) -> None:
    """A conditional loss's case also has labels y (B,) and the mask drop (B,) of those replaced by the null label."""
    if num_classes:
        B = case["x0"].shape[0]
        case.update(num_classes=num_classes, y=torch.randint(0, num_classes, (B,), generator=g),
                    drop=torch.arange(B) % 3 == 1)


def loss_outputs(model: nn.Module, compute: Callable[[], Any]) -> dict:
    """What a loss check harvests from ``compute()`` (the student's call): the loss, its gradients with respect to
    the model's weights, the weights, and what the call did beside its result (``side_effects``)."""
    rng = torch.random.get_rng_state()
    loss = compute()
    effects = side_effects(model, rng)
    if not isinstance(loss, Tensor):
        return dict(loss=float(loss), grads=None, state=model.state_dict(), **effects)
    grads = None
    if loss.requires_grad and loss.numel() == 1:
        grads = [g if g is not None else torch.zeros_like(p)
                 for g, p in zip(torch.autograd.grad(loss, list(model.parameters()), allow_unused=True),
                                 model.parameters())]
    return dict(loss=loss, grads=grads, state=model.state_dict(), **effects)


def side_effects(model: nn.Module, rng_before: Tensor) -> dict:
    """Whether a call moved torch's global generator since ``rng_before`` (a loss or a training step is given its
    t and eps and draws nothing) and whether it left ``model`` in training mode."""
    return dict(rng_moved=not torch.equal(rng_before, torch.random.get_rng_state()), training=model.training)


def side_effect_hint(out, what: str) -> str | None:
    """The hint for a right result whose call reseeded torch or left the model in eval mode (``side_effects``)."""
    if out.get("rng_moved"):
        return rng_moved_hint(what, "it is given t and eps, and a manual_seed inside it makes the worksheet's "
                              "training loop draw the same batch, t and noise at every step")
    if out.get("training") is False:
        return (f"the values are right, but {what} left the model in eval mode (model.eval()): training keeps the "
                "model in training mode (dropout and the like on); .eval() belongs to sampling, on the EMA copy")
    return None


def _loss_call(f, c):
    model = tiny_model(c)
    return loss_outputs(model, lambda: f(model, c["schedule"], c["x0"], t=c["t"], eps=c["eps"]))


def choose_labels(y, drop, labels="dropped"):
    """What a conditional model sees: "dropped" (right: the null class -1 where drop is True), or the mistakes
    "inverted" (dropped where drop is False), "kept" (never dropped), "zero" (0 as the null class) and "all_null"
    (every label -1, which is also what the course's models do with no labels at all)."""
    return {"dropped": torch.where(drop, -1, y), "inverted": torch.where(drop, y, -1), "kept": y,
            "zero": torch.where(drop, 0, y), "all_null": torch.full_like(y, -1)}[labels]


def reduced_error(pred: Tensor, goal: Tensor, reduction: str) -> Tensor:
    """The loss between a prediction and its target: F.mse_loss with ``reduction`` ("mean": right; "sum"), or the
    mistakes "l1" (mean absolute error) and "per_example" (squared error summed per example, then averaged)."""
    if reduction == "l1":
        return F.l1_loss(pred, goal)
    if reduction == "per_example":
        return ((pred - goal) ** 2).flatten(1).sum(1).mean()
    return F.mse_loss(pred, goal, reduction=reduction)


def ref_loss(c, state, *, target="eps", feed="xt", reduction="mean", sqrt=True, labels="dropped", noise_at=None,
             model_t="t", only_kept=False, coefs=None, scale=1.0):
    """L_simple on the case's batch with the tiny model rebuilt from ``state``; returns (loss, grads).

    With labels in the case (worksheet 6's cfg_loss), ``labels`` picks what the model sees (``choose_labels``).
    The other switches reproduce catalogued mistakes: ``noise_at`` the alpha_bar that noises x0 ("next":
    alpha_bar[t+1] capped at T-1, "prev": alpha_bar[t-1] with 1 at t = 0, "wrap": alpha_bar[t-1] wrapping at
    t = 0, "alphas": one step's alpha_t), ``model_t`` the time the model is given ("prev": t - 1, "scaled":
    t / T), ``reduction`` also "l1" (mean absolute error) and "per_example" (the squared error summed over each
    example, averaged over the batch); ``only_kept`` (cfg_loss): the examples where drop is True left out;
    ``coefs`` one coefficient of x_t wrong (``XT_COEFS``); ``scale``: the loss times it (0.5: half the MSE).
    """
    model = tiny_model(c, state)
    x0, eps, t, schedule = c["x0"].double(), c["eps"].double(), c["t"], c["schedule"]
    if only_kept:
        keep = ~c["drop"]
        c = dict(c, y=c["y"][keep], drop=c["drop"][keep])
        x0, eps, t = x0[keep], eps[keep], t[keep]
    a = alpha_bar64(schedule)
    alpha_bar = {None: None, "prev": alpha_bar_prev64(schedule), "wrap": wrapped_prev(schedule),
                 "next": torch.cat([a[1:], a[-1:]]), "alphas": 1 - schedule.betas.double()}[noise_at]
    xt = ref_q_sample(x0, t, eps, schedule, sqrt=sqrt, alpha_bar=alpha_bar) if feed == "xt" else x0
    if coefs:
        a = alpha_bar64(schedule)[t].reshape(-1, *([1] * (x0.ndim - 1)))
        xt = XT_COEFS[coefs][0](a) * x0 + XT_COEFS[coefs][1](a) * eps
    args = (choose_labels(c["y"], c["drop"], labels),) if "y" in c else ()
    t_in = {"t": t, "prev": t - 1, "scaled": t.double() / schedule.T}[model_t]
    pred = model(xt, t_in, *args)
    loss = scale * reduced_error(pred, {"eps": eps, "x0": x0, "minus_eps": -eps}[target], reduction)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss.detach(), grads


# x_t with one coefficient wrong: (x0's, eps's) as functions of alpha_bar_t
XT_COEFS = {"eps_no_sqrt": (lambda a: a.sqrt(), lambda a: 1 - a),
            "eps_one_minus_sqrt": (lambda a: a.sqrt(), lambda a: 1 - a.sqrt()),
            "x0_no_sqrt": (lambda a: a, lambda a: (1 - a).sqrt())}


def _loss_variants(c) -> list:
    """(hint, ref_loss switches) of the catalogued mistakes of a diffusion loss (and of cfg_loss, with labels)."""
    off_by_one = ("x_t is noised one step off: use alpha_bar[t] for the t given (schedule.gather(schedule.alpha_bar, "
                  "t, x0.ndim)), the step the model is told")
    variants = [("the target is the noise eps, not x0", dict(target="x0")),
                ("predict +eps, not -eps: the network learns the noise that was added, with its sign",
                 dict(target="minus_eps")),
                ("feed the noisy x_t to the model, not the clean x0", dict(feed="x0")),
                ("average over the batch (F.mse_loss's default reduction='mean'), not a sum", dict(reduction="sum")),
                ("the square root is forgotten on alpha_bar when noising x0", dict(sqrt=False)),
                (off_by_one, dict(noise_at="next")), (off_by_one, dict(noise_at="prev")),
                (off_by_one + " (alpha_bar[t-1] at t = 0 is alpha_bar[-1], the LAST entry)", dict(noise_at="wrap")),
                ("x_t is made with alpha_t = 1 - beta_t, one step's factor: one jump from x0 to x_t takes the "
                 "cumulative product alpha_bar_t", dict(noise_at="alphas")),
                ("give the model the step the noise was made at: model(x_t, t), not t - 1", dict(model_t="prev")),
                ("give the model the integer timesteps t as they are (model(x_t, t)): the network scales them itself",
                 dict(model_t="scaled")),
                ("the loss is the mean SQUARED error (F.mse_loss), not the mean absolute error", dict(reduction="l1")),
                ("average the squared error over every element (F.mse_loss), not a sum over each example's "
                 "dimensions averaged over the batch", dict(reduction="per_example")),
                ("eps's coefficient in x_t lacks its square root: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) "
                 "eps, not (1 - alpha_bar_t) eps", dict(coefs="eps_no_sqrt")),
                ("eps's coefficient in x_t is sqrt(1 - alpha_bar_t), not 1 - sqrt(alpha_bar_t)",
                 dict(coefs="eps_one_minus_sqrt")),
                ("x0's coefficient in x_t lacks its square root: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) "
                 "eps, not alpha_bar_t x0", dict(coefs="x0_no_sqrt")),
                ("the loss is half the MSE: L_simple is the mean squared error itself, F.mse_loss(model(x_t, t), eps), "
                 "with no factor 1/2", dict(scale=0.5))]
    if "y" in c:
        variants = [("the dropout mask is inverted: replace the labels by -1 (null class) where drop is True",
                     dict(labels="inverted")),
                    ("the labels are never dropped: y = torch.where(drop, -1, y)", dict(labels="kept")),
                    ("the null class is -1, not 0: y = torch.where(drop, -1, y)", dict(labels="zero")),
                    ("every label is the null class -1 (or the model got no labels, model(x_t, t)): only the examples "
                     "where drop is True lose theirs, model(x_t, t, torch.where(drop, -1, y))",
                     dict(labels="all_null")),
                    ("the examples where drop is True are left out of the loss: keep them, with the label -1, so that "
                     "the same network learns the unconditional prediction; model(x_t, t, torch.where(drop, -1, y)) "
                     "over the whole batch", dict(only_kept=True))] + variants
    return variants


def _grads_close(grads, ref_grads) -> bool:
    return (isinstance(grads, list) and len(grads) == len(ref_grads)
            and all(close(g, r, 1e-3) for g, r in zip(grads, ref_grads)))


def diagnose_loss(out, c) -> str | None:
    loss, grads, state = out["loss"], out["grads"], out["state"]
    if not isinstance(loss, Tensor):
        return ("return the loss as a tensor connected to the model (don't call .item() or float(); "
                "the training step needs loss.backward())")
    if loss.numel() != 1:
        return f"the loss must be a scalar (a mean over the batch), got shape {tuple(loss.shape)}"
    if grads is None:
        return "the loss does not require grad: don't .detach() it or compute it under torch.no_grad()"
    expected = tiny_state(c)
    if state_changed(state, expected):
        return model_changed("model")
    state = expected
    ref, ref_grads = ref_loss(c, state)
    if close(loss.reshape(()), ref) and _grads_close(grads, ref_grads):
        return side_effect_hint(out, "the loss function")
    # a mistake is named when both its loss and its gradients match (an x_t one step off can give a loss within
    # the tolerance of the right one, and then only its gradients tell it apart)
    for hint, kw in _loss_variants(c):
        v_loss, v_grads = ref_loss(c, state, **kw)
        if close(loss.reshape(()), v_loss) and _grads_close(grads, v_grads):
            return hint
    if out.get("rng_moved"):
        return ("the loss draws random numbers of its own (torch's global generator moved: a torch.randint for t, a "
                "torch.randn_like for eps, ...): use the t and eps you are given" + (
                    ", and the drop mask" if "y" in c else "") + ", which the caller drew")
    if close(loss.reshape(()) ** 2, ref):
        return ("that is the square root of the MSE: the loss is the mean squared error itself (F.mse_loss), "
                "without .sqrt()")
    if not close(loss.reshape(()), ref):
        shape = tuple(c["x0"].shape)
        images = (f" (this case is a batch of images, x0 of shape {shape}: alpha_bar[t] must be reshaped to "
                  f"{(shape[0],) + (1,) * (len(shape) - 1)}, one 1 per dimension after the batch; schedule.gather "
                  "does it)") if len(shape) > 2 else ""
        what = ("model(x_t, t, y') and eps over the whole batch, y' the labels with -1 where drop is True"
                if "y" in c else "model(x_t, t) and eps")
        return (f"the loss is {float(loss):.5f}, expected {float(ref):.5f}: MSE between {what}{images}; use the "
                "t and eps you are given (no new noise)")
    if not isinstance(grads, list) or len(grads) != len(ref_grads):
        return "the loss's gradients could not be collected: is part of it detached?"
    return ("the loss value is right but its gradients are not: is part of it detached, or is x_t or the model's "
            "input a little off (x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, model(x_t, t))?")


def answer_diffusion_loss():
    """A right diffusion_loss (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return loss_variant()


register(Check("diffusion_loss", "diffusion_loss", loss_cases, _loss_call, diagnose_loss, explain_by(
    ("backward through the graph a second time",
     "diffusion_loss returns the loss and stops there: the caller (training_step) calls .backward() once; no "
     "backward() inside the loss"),
    ("must have the same dtype",
     "the model got float64 input (numpy, or math on float64 numbers) while its weights are float32: build x_t "
     "from the float32 tensors you are given (x0, eps, schedule.alpha_bar[t]) with torch operations")),
    answer=answer_diffusion_loss))
check_diffusion_loss = visible("diffusion_loss")


def noisy_input(x0, t, eps, schedule, *, sqrt=True, noise_at=None, coefs=None):
    """x_t from the schedule's float32 alpha_bar, as a student computes it (``sqrt=False``, ``noise_at``:
    "next" (alpha_bar[t+1], capped), "prev" (alpha_bar_prev[t]) or "alphas" (alpha_t), ``coefs``: one of
    ``XT_COEFS``: mistakes)."""
    values = {None: schedule.alpha_bar, "prev": schedule.alpha_bar_prev, "alphas": schedule.alphas,
              "next": torch.cat([schedule.alpha_bar[1:], schedule.alpha_bar[-1:]])}[noise_at]
    a = schedule.gather(values, t, x0.ndim)
    if coefs:
        return XT_COEFS[coefs][0](a) * x0 + XT_COEFS[coefs][1](a) * eps
    return (a.sqrt() * x0 + (1 - a).sqrt() * eps) if sqrt else (a * x0 + (1 - a) * eps)


def loss_variant(*, target="eps", feed="xt", reduction="mean", sqrt=True, item=False, noise_at=None, model_t="t",
                 coefs=None):
    """diffusion_loss(model, schedule, x0, *, t, eps) with catalogued mistakes switched on; none: the right one."""
    def diffusion_loss(model, schedule, x0, *, t, eps):
        xt = noisy_input(x0, t, eps, schedule, sqrt=sqrt, noise_at=noise_at, coefs=coefs)
        pred = model(xt if feed == "xt" else x0, {"t": t, "prev": t - 1, "scaled": t / schedule.T}[model_t])
        loss = reduced_error(pred, {"eps": eps, "x0": x0, "minus_eps": -eps}[target], reduction)
        return loss.item() if item else loss
    return diffusion_loss


def _loss_with_backward(model, schedule, x0, *, t, eps):
    """Calls .backward() itself: the caller's backward then goes through a freed graph."""
    loss = F.mse_loss(model(noisy_input(x0, t, eps, schedule), t), eps)
    loss.backward()
    return loss


MISTAKES["diffusion_loss"] = [
    ("target x0", loss_variant(target="x0"), "target is the noise"),
    ("target -eps", loss_variant(target="minus_eps"), "predict +eps, not -eps"),
    ("feeds x0", loss_variant(feed="x0"), "noisy x_t"),
    ("sum", loss_variant(reduction="sum"), "average over the batch"),
    ("no sqrt", loss_variant(sqrt=False), "square root"),
    (".item()", loss_variant(item=True), ".item()"),
    ("x_t noised at t + 1", loss_variant(noise_at="next"), "noised one step off"),
    ("x_t noised at t - 1", loss_variant(noise_at="prev"), "noised one step off"),
    ("alpha_t for alpha_bar_t", loss_variant(noise_at="alphas"), "cumulative product alpha_bar_t"),
    ("model told t - 1", loss_variant(model_t="prev"), "not t - 1"),
    ("model told t over T", loss_variant(model_t="scaled"), "integer timesteps t as they are"),
    ("mean absolute error", loss_variant(reduction="l1"), "SQUARED error"),
    ("squared error summed per example", loss_variant(reduction="per_example"), "not a sum over each example"),
    ("backward() inside the loss", _loss_with_backward, "no backward() inside the loss"),
    ("eps's coefficient without its root", loss_variant(coefs="eps_no_sqrt"),
     "eps's coefficient in x_t lacks its square root"),
    ("eps's coefficient 1 - sqrt(alpha_bar_t)", loss_variant(coefs="eps_one_minus_sqrt"),
     "not 1 - sqrt(alpha_bar_t)"),
    ("x0's coefficient without its root", loss_variant(coefs="x0_no_sqrt"), "x0's coefficient in x_t lacks its"),
    ("half the MSE", lambda model, schedule, x0, *, t, eps: 0.5 * loss_variant()(model, schedule, x0, t=t, eps=eps),
     "the loss is half the MSE"),
    ("its own t", lambda model, schedule, x0, *, t, eps: loss_variant()(
        model, schedule, x0, t=torch.randint(0, schedule.T, t.shape), eps=eps), "the loss draws random numbers"),
    ("its own eps", lambda model, schedule, x0, *, t, eps: F.mse_loss(
        model(noisy_input(x0, t, e := torch.randn_like(x0), schedule), t), e), "the loss draws random numbers"),
    ("root mean squared error", lambda model, schedule, x0, *, t, eps: loss_variant()(
        model, schedule, x0, t=t, eps=eps).sqrt(), "the square root of the MSE"),
    ("x_t in float64", lambda model, schedule, x0, *, t, eps: F.mse_loss(
        model(noisy_input(x0, t, eps, schedule).double(), t), eps), "the model got float64 input"),
    ("torch.manual_seed inside", lambda model, schedule, x0, *, t, eps: (torch.manual_seed(0), loss_variant()(
        model, schedule, x0, t=t, eps=eps))[1], "moved torch's global random generator"),
    ("model.eval() inside", lambda model, schedule, x0, *, t, eps: loss_variant()(
        model.eval(), schedule, x0, t=t, eps=eps), "left the model in eval mode"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ training_step
def _train_step_cases(hidden: bool) -> list:
    cases = []
    for c in loss_cases(False)[: 2 if hidden else 1]:
        g = generator(6 + c["seed"])
        c.update(x0_2=torch.randn(c["x0"].shape, generator=g), eps_2=torch.randn(c["eps"].shape, generator=g),
                 t_2=c["t"].flip(0), lr=0.1, momentum=0.9)   # momentum: an optimizer with state, as AdamW has
        cases.append(c)
    return cases


def _train_step_call(f, c):
    model = tiny_model(c)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"])
    rng = torch.random.get_rng_state()
    losses = [f(model, optimizer, c["x0"], c["t"], c["eps"], c["schedule"]),
              f(model, optimizer, c["x0_2"], c["t_2"], c["eps_2"], c["schedule"])]
    losses = [float(v.detach() if isinstance(v, Tensor) else v) if isinstance(v, (Tensor, float, int)) else None
              for v in losses]
    return dict(losses=losses, before=before, after=model.state_dict(), **side_effects(model, rng))


def _train_step_diagnose(out, c) -> str | None:
    before, after = tiny_state(c), out["after"]
    if state_changed(out["before"], before):
        return model_changed("model")
    if not isinstance(after, dict) or any(not isinstance(after.get(k), Tensor) or after[k].shape != v.shape
                                          for k, v in before.items()):
        return "the model's weights are missing after the steps, or their shapes changed: update them in place"
    if all(close(before[k], after[k], 1e-9) for k in before):
        return ("the weights did not change: call optimizer.zero_grad(), then loss.backward(), then optimizer.step() "
                "in that order: step uses the gradients backward leaves (a step before backward, or a zero_grad "
                "between them, finds none)")
    names = list(before)
    model = tiny_model(c, before)
    params = list(model.parameters())
    lr, m = c["lr"], c["momentum"]
    refs, grads_seen = [], []
    for x0, t, eps in [(c["x0"], c["t"], c["eps"]), (c["x0_2"], c["t_2"], c["eps_2"])]:
        xt = ref_q_sample(x0, t, eps, c["schedule"])
        loss = F.mse_loss(model(xt, t), eps.double())
        grads = torch.autograd.grad(loss, params)
        refs.append(float(loss.detach()))
        grads_seen.append(grads)
        with torch.no_grad():      # SGD with momentum: buffer b_1 = g_1, b_2 = m b_1 + g_2; p <- p - lr b
            for i, p in enumerate(params):
                p -= lr * (grads[i] if len(grads_seen) == 1 else m * grads_seen[0][i] + grads[i])
    ref_after = dict(zip(names, params))
    # 1e-5: the right step in float32 lands within 2e-8 of this float64 one; an L2 penalty of 1e-4 * sum(p^2)
    # folded into the loss moves the weights by 2e-5 (at 1e-4, penalties up to 3e-4 passed)
    if all(close(after[k], ref_after[k], 1e-5) for k in names):
        losses = out["losses"]
        if not (isinstance(losses, list) and len(losses) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses)):
            return "return the loss (a float, loss.item(), or the loss tensor)"
        if not all(math.isclose(v, r, rel_tol=1e-3, abs_tol=1e-5) for v, r in zip(losses, refs)):
            return (f"the weights are right but the returned losses {losses} differ from {refs}: "
                    "return this batch's loss")
        return side_effect_hint(out, "training_step")
    g1, g2 = grads_seen
    accumulated = {k: before[k].double() - lr * g1[i] - lr * (m * g1[i] + g1[i] + g2[i]) for i, k in enumerate(names)}
    if all(close(after[k], accumulated[k], 1e-4) for k in names):
        return "gradients accumulate across steps: call optimizer.zero_grad() before loss.backward()"
    restarted = {k: before[k].double() - lr * g1[i] - lr * g2[i] for i, k in enumerate(names)}
    if all(close(after[k], restarted[k], 1e-4) for k in names):
        return ("the optimizer's state (momentum here, AdamW's running averages in the worksheet) starts afresh at "
                "every step: use the optimizer you are given, don't build a new one inside training_step nor update "
                "the weights by hand")
    if out.get("rng_moved"):
        return ("training_step draws random numbers of its own (torch's global generator moved: a torch.randint for "
                "t, a torch.randn_like for eps, ...): train on the batch you are given, diffusion_loss(model, "
                "schedule, x0, t=t, eps=eps) with its t and eps")
    return ("the weights after two steps differ from SGD with momentum on diffusion_loss of the batch given (its x0, "
            "t and eps: draw no t or noise of your own): zero_grad, backward, step, in that order")


register(Check("training_step", "training_step", _train_step_cases, _train_step_call, _train_step_diagnose,
               explain_by(("does not require grad",
                           "the loss has no graph to go back through: compute it with gradients on (no "
                           "torch.no_grad() around the loss, no .detach() or .item() before backward)"),
                          ("positional argument",
                           "diffusion_loss(model, schedule, x0, *, t, eps) takes t and eps by name: "
                           "diffusion_loss(model, schedule, x0, t=t, eps=eps)"),
                          ("'float' object has no attribute 'backward'",
                           "backward() needs the loss tensor: keep the tensor diffusion_loss returns, call "
                           "loss.backward() on it, and take .item() only of what you return (return loss.item())")),
               calls=("diffusion_loss",)))
check_training_step = visible("training_step")


def training_step_variant(*, zero_grad=True, step=True, no_grad=False):
    """training_step(model, optimizer, x0, t, eps, schedule) with a step left out (or the loss computed under
    torch.no_grad()); none: the right one."""
    def training_step(model, optimizer, x0, t, eps, schedule):
        if zero_grad:
            optimizer.zero_grad()
        with torch.set_grad_enabled(not no_grad):
            loss = loss_variant()(model, schedule, x0, t=t, eps=eps)
        loss.backward()
        if step:
            optimizer.step()
        return loss.item()
    return training_step


def _training_step_new_optimizer(model, optimizer, x0, t, eps, schedule):
    """Builds an optimizer of the given kind at every call: right for plain SGD, but a stateful optimizer
    (momentum, AdamW's running averages) starts afresh each step."""
    fresh = type(optimizer)(model.parameters(), **optimizer.defaults)
    fresh.zero_grad()
    loss = loss_variant()(model, schedule, x0, t=t, eps=eps)
    loss.backward()
    fresh.step()
    return loss.item()


def _training_step_positional(model, optimizer, x0, t, eps, schedule):
    """Calls a diffusion_loss(model, schedule, x0, *, t, eps) with t and eps by position: a TypeError."""
    def diffusion_loss(model, schedule, x0, *, t, eps):
        return F.mse_loss(model(noisy_input(x0, t, eps, schedule), t), eps)
    optimizer.zero_grad()
    loss = diffusion_loss(model, schedule, x0, t, eps)      # the mistake: t and eps by position
    loss.backward()
    optimizer.step()
    return loss.item()


def _training_step_item_first(model, optimizer, x0, t, eps, schedule):
    """Takes .item() of the loss, then calls backward on the float: an AttributeError."""
    optimizer.zero_grad()
    loss = loss_variant()(model, schedule, x0, t=t, eps=eps).item()
    loss.backward()
    optimizer.step()
    return loss


def _training_step_own_t(model, optimizer, x0, t, eps, schedule):
    """Draws its own timesteps, as the worksheet's training loop does, instead of using the t it is given."""
    return training_step_variant()(model, optimizer, x0, torch.randint(0, schedule.T, t.shape), eps, schedule)


def _training_step_loss_after(model, optimizer, x0, t, eps, schedule):
    """Right steps, but returns the loss recomputed after optimizer.step()."""
    training_step_variant()(model, optimizer, x0, t, eps, schedule)
    with torch.no_grad():
        return loss_variant()(model, schedule, x0, t=t, eps=eps).item()


MISTAKES["training_step"] = [
    ("no zero_grad", training_step_variant(zero_grad=False), "gradients accumulate across steps"),
    ("no optimizer.step", training_step_variant(step=False), "optimizer.step()"),
    ("a new optimizer at every step", _training_step_new_optimizer, "starts afresh"),
    ("loss under torch.no_grad()", training_step_variant(no_grad=True), "the loss has no graph"),
    ("t and eps passed by position", _training_step_positional, "takes t and eps by name"),
    ("loss.item() before backward", _training_step_item_first, "backward() needs the loss tensor"),
    ("its own t", _training_step_own_t, "training_step draws random numbers of its own"),
    ("the loss after the step returned", _training_step_loss_after, "return this batch's loss"),
    ("torch.manual_seed inside", lambda model, optimizer, x0, t, eps, schedule: (
        torch.manual_seed(0), training_step_variant()(model, optimizer, x0, t, eps, schedule))[1],
     "moved torch's global random generator"),
    ("model.eval() inside", lambda model, optimizer, x0, t, eps, schedule: training_step_variant()(
        model.eval(), optimizer, x0, t, eps, schedule), "left the model in eval mode"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ EMA
def _ema_cases(hidden: bool) -> list:
    """A small network, a decay, and the live weights after each of a few steps (the check sets them)."""
    # the third case starts at step 20, where the warm-up (21/30 = 0.7) has passed the decay 0.5: the min matters;
    # the fourth at step 50, where the warm-up (51/60 = 0.85) is still below the decay 0.999: a warm-up for a
    # fixed number of steps ("if step < 10") fails there, not only on the hidden case from step 100
    # the fifth at step 5000, where the warm-up (5001/5010 = 0.9982) is still below the decay 0.999 (it reaches it
    # at step 8990): a warm-up cut at a round number of steps ("if step < 1000") fails there
    specs = [(0, 0.999, 6, 0), (1, 0.9, 4, 0), (3, 0.5, 3, 20), (4, 0.999, 3, 50), (5, 0.999, 3, 5000)] + (
        [(2, 0.99, 5, 100)] if hidden else [])
    cases = []
    for seed, decay, steps, first in specs:
        g = generator(30 + seed)
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        live = [{k: torch.randn(v.shape, generator=g) for k, v in net.state_dict().items()} for _ in range(steps)]
        cases.append(dict(seed=seed, decay=decay, live=live, first_step=first))
    return cases


def _ema_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def ref_ema(c, *, warmup="min", swap=False, own_count=False, offset=0, zeros=False, add_first=False) -> list:
    """The averaged weights (float64) after each update; ``warmup``: "min" (right), "none", "no_plus_one",
    "ramp" (the warm-up without the min), "product" (decay * the warm-up), "sticky" (the first update's d kept,
    as when update() stores d in self.decay), "brackets" ((1 + step) / 10 + step); ``own_count``: the warm-up
    counts its own updates from 0 instead of taking the step it is given; ``offset``: the warm-up's step is that
    many steps off (step + 1: a count from 1); ``add_first``: (1 - d) theta added before the multiplication by d."""
    init = {k: v.double() for k, v in seeded_state(lambda: _ema_net(c["seed"]), c["seed"]).items()}
    avg, out = ({k: torch.zeros_like(v) for k, v in init.items()} if zeros else dict(init)), []
    decay = c["decay"]
    for i, live in enumerate(c["live"]):
        step = (i if own_count else c["first_step"] + i) + offset
        ramp = step / (10 + step) if warmup == "no_plus_one" else (1 + step) / 10 + step if warmup == "brackets" \
            else (1 + step) / (10 + step)
        d = (decay if warmup == "none" else ramp if warmup == "ramp" else decay * ramp if warmup == "product"
             else min(decay, ramp))
        if warmup == "sticky":
            decay = d
        if swap:
            d = 1 - d
        avg = {k: (d * (avg[k] + (1 - d) * live[k].double()) if add_first else d * avg[k] + (1 - d) * live[
            k].double()) for k in avg}
        out.append(avg)
    return out


def _ema_call(cls, c):
    model = _ema_net(c["seed"])
    ema = cls(model, c["decay"])
    averaged = getattr(ema, "model", None)
    if not isinstance(averaged, nn.Module):
        return dict(error="no_model")

    def shared_or_trainable():     # measured after construction and again after every update
        copy = getattr(ema, "model", None)
        same = copy is model or not isinstance(copy, nn.Module) or any(
            a.data_ptr() == b.data_ptr() for a, b in zip(copy.parameters(), model.parameters()))
        return same, isinstance(copy, nn.Module) and any(p.requires_grad for p in copy.parameters())

    rng = torch.random.get_rng_state()         # after the check's own seeded network: EMA draws nothing
    same, requires_grad = shared_or_trainable()
    live_frozen = not all(p.requires_grad for p in model.parameters())   # the live network must stay trainable
    live_mode = model.training                                          # ... and in the mode it was in
    states = []
    for i, live in enumerate(c["live"]):
        with torch.no_grad():
            for k, p in model.state_dict().items():
                p.copy_(live[k])
        ema.update(model, c["first_step"] + i)
        states.append({k: v.clone() for k, v in ema.model.state_dict().items()})
        now = shared_or_trainable()
        same, requires_grad = same or now[0], requires_grad or now[1]
        live_frozen = live_frozen or not all(p.requires_grad for p in model.parameters())
        live_mode = live_mode and model.training
    return dict(same=same, requires_grad=requires_grad, states=states, live_frozen=live_frozen, live_mode=live_mode,
                live_after={k: v.clone() for k, v in model.state_dict().items()},
                rng_moved=not torch.equal(rng, torch.random.get_rng_state()))


def _ema_diagnose(out, c) -> str | None:
    if out.get("error") == "no_model":
        return "keep the averaged copy of the network in self.model (an nn.Module): the sampler uses ema.model"
    if out["same"]:
        return ("self.model shares its weights with the live network: make an independent copy "
                "(copy.deepcopy(model)), or the 'average' is just the live weights")
    if any(not close(out["live_after"][k], c["live"][-1][k], 1e-6) for k in c["live"][-1]):
        return "update() changed the live network's weights: only the averaged copy may change"
    if out.get("live_frozen"):
        return ("the live network no longer requires gradients, so training it raises \"element 0 of tensors does "
                "not require grad\": freeze the copy only, copy.deepcopy(model).requires_grad_(False), not "
                "copy.deepcopy(model.requires_grad_(False))")
    if out.get("live_mode") is False:
        return ("the live network was switched to eval mode: call .eval() on the copy only "
                "(copy.deepcopy(model).eval()), the live one keeps training")
    states = out["states"]
    if len(states) != len(c["live"]):
        return "expected one averaged state per update"
    names = list(c["live"][0])
    if any(not isinstance(s, dict) or any(k not in s for k in names) for s in states):
        other = next((list(s)[:3] for s in states if isinstance(s, dict)), [])
        return (f"self.model's weights are named {other}, not as the network's ({names[:3]}): keep self.model a copy "
                "of the network itself, copy.deepcopy(model) (torch.optim.swa_utils.AveragedModel, for one, wraps "
                "it in .module), because the sampler uses ema.model as the network")
    ref = ref_ema(c)

    def matches(candidate):
        return all(close(s[k], r[k], 1e-5) for s, r in zip(states, candidate) for k in r)

    if matches(ref):
        if out.get("rng_moved"):
            return rng_moved_hint("EMA", "the worksheet's loop draws its batch, t and noise right after "
                                  "ema.update, so a manual_seed there gives the same batch at every step",
                                  lead="the averages are right")
        if out["requires_grad"]:
            return ("the averaged copy still requires gradients: call .requires_grad_(False) on it (the optimizer "
                    "must never train it, and autograd has nothing to track there)")
        return None
    first = c["first_step"]
    no_warmup = ("EMA without warm-up: early on, the average must follow the live weights quickly; use the decay "
                 "d = min(decay, (1 + step) / (10 + step)) at each update")
    if first >= 10:      # from a later step, the same numbers come from a warm-up that stopped after a few steps
        no_warmup = (f"the warm-up stopped too early: at step {first} the decay is still min({c['decay']}, "
                     f"{1 + first}/{10 + first}) = {min(c['decay'], (1 + first) / (10 + first)):.3f}, not "
                     f"{c['decay']}; the warm-up lasts until (1 + step) / (10 + step) reaches the decay, however "
                     "many steps that takes: use d = min(decay, (1 + step) / (10 + step)) at every update")
    variants = [
        (no_warmup, dict(warmup="none")),
        ("warm-up off by one: at step 0 the decay is (1 + 0) / (10 + 0) = 0.1, so use (1 + step) / (10 + step)",
         dict(warmup="no_plus_one")),
        ("the weights are swapped: keep d of the average and add (1 - d) of the live weights", dict(swap=True)),
        (f"the warm-up counts its own updates from 0: use the `step` that update(model, step) is given (a run may "
         f"start or resume at any step; here the first update is step {first})", dict(own_count=True)),
        ("warm-up off by one: put the step that update(model, step) is given into (1 + step) / (10 + step) as it is, "
         "not step + 1 nor a count of updates from 1 (at step 0 the decay is 1/10 = 0.1, not 2/11)", dict(offset=1)),
        ("warm-up off by one: put the step that update(model, step) is given into (1 + step) / (10 + step) as it is, "
         "not step - 1 (at step 0 the decay is 1/10 = 0.1)", dict(offset=-1)),
        ("the decay goes past `decay`: d = min(decay, (1 + step) / (10 + step)); without the min, d climbs towards 1 "
         "as training goes on and the average stops following the live weights", dict(warmup="ramp")),
        ("the order of the in-place update: multiply first, then add, ema_p.mul_(d).add_(p, alpha=1 - d); adding "
         "first and then multiplying gives d theta_ema + d (1 - d) theta", dict(add_first=True)),
        ("the warm-up multiplies the decay: d = min(decay, (1 + step) / (10 + step)), the smaller of the two, not "
         "their product", dict(warmup="product")),
        ("the warm-up's denominator lost its brackets: (1 + step) / 10 + step is (1 + step) / 10, plus step, above "
         "1 from step 1 on; write (1 + step) / (10 + step)", dict(warmup="brackets")),
        ("the decay sticks at its first value: keep self.decay as it was given and compute d anew at each update, "
         "d = min(self.decay, (1 + step) / (10 + step)) (storing d in self.decay keeps the first, smallest d)",
         dict(warmup="sticky")),
    ]
    for hint, switches in variants:
        if matches(ref_ema(c, **switches)):
            return hint
    init = {k: v.double() for k, v in seeded_state(lambda: _ema_net(c["seed"]), c["seed"]).items()}
    averaged = [k for k in ref[0] if all(close(s[k], r[k], 1e-5) for s, r in zip(states, ref))]
    unchanged = [k for k in ref[0] if all(close(s[k], init[k], 1e-6) for s in states)]
    if averaged and unchanged and len(averaged) + len(unchanged) == len(ref[0]):
        return (f"only some weights are averaged ({', '.join(averaged)}; {', '.join(unchanged)} never change): "
                "update every parameter, with no break or return inside the loop over zip(self.model.parameters(), "
                "model.parameters())")
    if matches([init] * len(states)):
        return ("the averaged weights never change: write into the copy's parameters in place "
                "(ema_p.mul_(d).add_(p, alpha=1 - d)); `ema_p = d * ema_p + ...` only rebinds the loop variable; "
                "pair each of the copy's parameters with the live one of the same name, zip(self.model.parameters(), "
                "model.parameters()) in the same order; and skip none of them (the copy is frozen: a filter such as "
                "`if ema_p.requires_grad` skips every one)")
    if matches([{k: v.double() for k, v in live.items()} for live in c["live"]]):
        return ("the average is just the live weights after each update: blend into the copy in place, "
                "theta_ema <- d theta_ema + (1 - d) theta, instead of replacing the copy (a new deepcopy of the "
                "live network, or load_state_dict of its weights); or d came out 0: (1 + step) // (10 + step) is "
                "integer division, write (1 + step) / (10 + step)")
    if matches(ref_ema(c, zeros=True)):
        return ("the average starts from zeros: it starts from the network's own weights (copy.deepcopy(model) in "
                "__init__), which the warm-up then moves towards the live ones")
    return ("the averaged weights differ from theta_ema <- d theta_ema + (1 - d) theta with "
            "d = min(decay, (1 + step) / (10 + step)), applied to every parameter at each update")


register(Check("EMA", "EMA", _ema_cases, _ema_call, _ema_diagnose))
check_EMA = visible("EMA")


class RefEMA:
    """The worksheet's EMA, with switches for the catalogue of mistakes (class attributes of subclasses)."""

    warmup, swap, alias, grad, rebind, add_first, first_only = "min", False, False, False, False, False, False
    warmup_steps = None        # "if step < warmup_steps: the d of `warmup`, else decay": a warm-up of a fixed length
    offset = 0                 # the warm-up's step this many steps off (1: (2 + step) / (11 + step))

    def __init__(self, model: nn.Module, decay: float):
        import copy

        self.decay = decay
        self.model = model if self.alias else copy.deepcopy(model)
        if not self.grad and not self.alias:
            self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        step += self.offset
        ramp = step / (10 + step) if self.warmup == "no_plus_one" else (1 + step) / 10 + step \
            if self.warmup == "brackets" else (1 + step) / (10 + step)
        d = (self.decay if self.warmup == "none" else ramp if self.warmup == "ramp" else self.decay * ramp
             if self.warmup == "product" else min(self.decay, ramp))
        if self.warmup == "sticky":
            self.decay = d
        if self.warmup_steps is not None and step >= self.warmup_steps:
            d = self.decay
        if self.swap:
            d = 1 - d
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            if self.rebind:
                ema_p = d * ema_p + (1 - d) * p.detach()     # noqa: PLW2901 (the mistake: a new tensor, not the copy)
            elif self.add_first:
                ema_p.add_(p.detach(), alpha=1 - d).mul_(d)
            else:
                ema_p.mul_(d).add_(p.detach(), alpha=1 - d)
            if self.first_only:
                break


def ema_variant(**switches):
    return type("WrongEMA", (RefEMA,), switches)


class _AveragedModelEMA:
    """torch.optim.swa_utils.AveragedModel as the copy: its weights are named module.0.weight, ... (and it adds
    n_averaged), so ema.model is not the network the sampler expects."""

    def __init__(self, model: nn.Module, decay: float):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    def update(self, model: nn.Module, step: int) -> None:
        self.model.update_parameters(model)


class _SeedingEMA(RefEMA):
    """torch.manual_seed(0) in update ("for reproducibility"): the worksheet's next batch is the same every step."""

    def update(self, model: nn.Module, step: int) -> None:
        torch.manual_seed(0)
        super().update(model, step)


class _FreezesTheLiveNetwork(RefEMA):
    """copy.deepcopy(model.requires_grad_(False)): the copy is frozen, and so is the live network."""

    def __init__(self, model: nn.Module, decay: float):
        import copy

        self.decay, self.model = decay, copy.deepcopy(model.requires_grad_(False))


class _LiveNetworkToEval(RefEMA):
    """copy.deepcopy(model.eval()): the live network is left in eval mode."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model.eval(), decay)


class _ReplacesTheCopy(RefEMA):
    """update() makes a new copy of the live network: the 'average' is the live weights."""

    def update(self, model: nn.Module, step: int) -> None:
        import copy

        self.model = copy.deepcopy(model).requires_grad_(False)


class _AverageFromZeros(RefEMA):
    """The average starts from zeros instead of the network's weights."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model, decay)
        with torch.no_grad():
            for p in self.model.parameters():
                p.zero_()


class _TrainableAfterUpdate(RefEMA):
    """Right until its first update, which makes the averaged copy trainable again."""

    def update(self, model: nn.Module, step: int) -> None:
        super().update(model, step)
        self.model.requires_grad_(True)


MISTAKES["EMA"] = [
    ("EMA without warm-up", ema_variant(warmup="none"), "EMA without warm-up"),
    ("warm-up off by one", ema_variant(warmup="no_plus_one"), "off by one"),
    ("warm-up from step + 1", ema_variant(offset=1), "not step + 1"),
    ("warm-up from step - 1", ema_variant(offset=-1), "not step - 1"),
    ("warm-up without the min", ema_variant(warmup="ramp"), "goes past `decay`"),
    ("warm-up for the first ten steps only", ema_variant(warmup="ramp", warmup_steps=10),
     "however many steps"),
    ("warm-up for the first 1000 steps only", ema_variant(warmup_steps=1000), "however many steps"),
    ("weights swapped", ema_variant(swap=True), "swapped"),
    ("add first, then multiply", ema_variant(add_first=True), "multiply first, then add"),
    ("the decay times the warm-up", ema_variant(warmup="product"), "not their product"),
    ("d stored in self.decay", ema_variant(warmup="sticky"), "the decay sticks at its first value"),
    ("the warm-up without its brackets", ema_variant(warmup="brackets"), "the warm-up's denominator lost its brackets"),
    ("only the first parameter averaged", ema_variant(first_only=True), "only some weights are averaged"),
    ("loop variable rebound", ema_variant(rebind=True), "never change"),
    ("the copy replaced at each update", _ReplacesTheCopy, "the average is just the live weights"),
    ("the average started from zeros", _AverageFromZeros, "the average starts from zeros"),
    ("no copy", ema_variant(alias=True), "independent copy"),
    ("copy still trainable", ema_variant(grad=True), "requires gradients"),
    ("copy trainable after an update", _TrainableAfterUpdate, "requires gradients"),
    ("the live network frozen", _FreezesTheLiveNetwork, "no longer requires gradients"),
    ("the live network left in eval mode", _LiveNetworkToEval, "eval mode"),
    ("AveragedModel as the copy", _AveragedModelEMA, "AveragedModel"),
    ("torch.manual_seed in update", _SeedingEMA, "EMA moved torch's global random generator"),
    ("not implemented", TodoModule, "not implemented yet"),
]
