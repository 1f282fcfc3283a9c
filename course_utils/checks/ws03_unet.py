"""Worksheet 03 (solutions/03_unet.ipynb): the pieces of the UNet.

- ``sinusoidal_embedding``: the Transformer's position encoding (Vaswani et al. 2017, Sec. 3.5) of timesteps,
  [sin(t w_0..w_{h-1}), cos(t w_0..w_{h-1})] with w_i = max_period^(-i/h), h = dim // 2.
- ``SinusoidalTimeEmbedding``: those features through Linear, SiLU, Linear.
- ``ResBlock``: DDPM's residual block (Ho et al. 2020, Appendix B): GroupNorm, SiLU, conv, the time embedding
  added per channel after the first convolution, GroupNorm, SiLU, conv, plus the skip connection.
- ``SmallUNet``: the forward pass of a two-level UNet (Ronneberger et al. 2015; Ho et al. 2020, Appendix B) from
  the given blocks: conv_in, down1, downsample1, down2, downsample2, mid, then up2 and up1 on the upsampled
  features concatenated with the matching down block's output ([h, skip], channels), GroupNorm, SiLU, conv_out.
  The reference rebuilds it from the student's weights in float64 with the ResBlock reference.

Modules are checked by construction: ``call`` seeds torch, builds the student's module, runs it and returns its
output with its ``state_dict``; ``diagnose`` rebuilds the weights the given ``__init__`` creates under the same
seed (``seeded_state``, with the reference module below), fails a module whose reported weights differ, and
recomputes the reference (float64, ``torch.nn.functional``) with the rebuilt weights, never with the reported ones.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .framework import (MISTAKES, WEIGHTS_CHANGED, Check, TodoModule, close, explain_by, generator, gradient_hint,
                        judge, register, seeded_state, shape_hint, state_changed, todo, visible, without_gradient)


# ------------------------------------------------------------------ sinusoidal_embedding
def ref_sinusoidal(t: Tensor, dim: int, max_period: float = 10000.0, *, order="sin_cos", denom=None,
                   sign=-1.0, mistake: str | None = None) -> Tensor:
    """(B, dim) features in float64; ``order`` ("cos_sin", "interleave", "sin_sin", "cos_cos"), ``denom``, ``sign``
    (+1: frequencies that grow) and ``mistake`` ("floor": i // half, "log10", "log2", "from one": i = 1 .. half,
    "t / 1000", "2 pi": args 2 pi t w) reproduce the mistakes."""
    half = dim // 2
    args = _sinusoidal_args(t, dim, max_period, denom=denom, sign=sign, mistake=mistake)
    if order == "interleave":
        return torch.stack([torch.sin(args), torch.cos(args)], dim=-1).reshape(t.shape[0], 2 * half)
    parts = {"sin_cos": [torch.sin(args), torch.cos(args)], "cos_sin": [torch.cos(args), torch.sin(args)],
             "sin_sin": [torch.sin(args)] * 2, "cos_cos": [torch.cos(args)] * 2}[order]
    return torch.cat(parts, dim=-1)


def _sinusoidal_args(t: Tensor, dim: int, max_period: float = 10000.0, *, denom=None, sign=-1.0,
                     mistake: str | None = None) -> Tensor:
    """The (B, dim // 2) arguments t w_i of ``ref_sinusoidal`` (float64), with its mistakes."""
    half = dim // 2
    i = torch.arange(1, half + 1, dtype=torch.float64) if mistake == "from one" else torch.arange(
        half, dtype=torch.float64)
    log = {"log10": math.log10, "log2": math.log2}.get(mistake, math.log)(max_period)
    freqs = torch.exp(sign * log * (i // half if mistake == "floor" else i / (denom or half)))
    t = t.double() / 1000 if mistake == "t / 1000" else t.double()
    return t[:, None] * freqs[None, :] * (2 * math.pi if mistake == "2 pi" else 1)


def _like_where_float32_can(out, t: Tensor, dim: int, kw: dict, **mistake) -> bool:
    """True when ``out`` matches the embedding with ``mistake`` where float32 can tell: a mistake that makes the
    arguments t w large (frequencies that grow, 2 pi) is computed by a student in float32, whose sin of an
    argument of 10^6 is noise; so compare only the entries whose argument is below 100 and not 0 (0 gives sin 0,
    cos 1 in every embedding), and only if there are at least dim // 2 of them."""
    if not (isinstance(out, Tensor) and tuple(out.shape) == (t.shape[0], dim) and dim % 2 == 0):
        return False
    args = _sinusoidal_args(t, dim, kw.get("max_period", 10000.0), **mistake)
    usable = ((args.abs() < 100) & (args != 0)).repeat(1, 2)                          # (B, dim): sin, cos halves
    if int(usable.sum()) < dim // 2:
        return False
    wrong = ref_sinusoidal(t, dim, kw.get("max_period", 10000.0), **mistake)
    return bool(((out.double() - wrong).abs()[usable] < 1e-3).all())


def _embedding_cases(hidden: bool) -> list:
    # the second visible case passes max_period: an embedding that ignores it passed the worksheet before
    # and float timesteps: t.float() is then t itself, so t.unsqueeze_(1) changed the caller's t unseen before
    cases = [dict(t=torch.tensor([0, 1, 5, 999]), dim=16, kwargs={}),
             dict(t=torch.tensor([2.0, 17.5]), dim=8, kwargs=dict(max_period=100.0))]
    if hidden:
        cases += [dict(t=torch.tensor([0.5, 3.0, 42.0]), dim=32, kwargs={})]
    return cases


GROWING_FREQUENCIES = ("the frequencies must decrease, from 1 down towards 1 / max_period: w_i = max_period ** "
                       "(-i / half), a negative exponent (yours grow)")
TWO_PI = "no 2 pi: the arguments are t w_i (2 pi t w belongs to random Fourier features, another embedding)"


def _embedding_diagnose(out, c) -> str | None:
    t, dim, kw = c["t"], c["dim"], c["kwargs"]
    ref = ref_sinusoidal(t, dim, **kw)
    sin, cos = ref[:, :dim // 2], ref[:, dim // 2:]
    if close(out, torch.cat([sin, cos], dim=0)):
        return (f"the sines and cosines are concatenated along the batch, shape {tuple(out.shape)}: concatenate "
                "along the features, torch.cat([sin(args), cos(args)], dim=-1), shape (B, dim)")
    if close(out, torch.stack([sin, cos], dim=-1)) or close(out, torch.stack([sin, cos], dim=1)):
        return (f"torch.stack adds a dimension (your shape is {tuple(out.shape)}): torch.cat([sin(args), cos(args)], "
                "dim=-1) puts the sines and cosines side by side, shape (B, dim)")
    hint = judge(out, ref, [
        ("sin first, then cos: torch.cat([sin(args), cos(args)], dim=-1)",
         ref_sinusoidal(t, dim, **kw, order="cos_sin")),
        ("concatenate the sin block and the cos block, don't interleave them",
         ref_sinusoidal(t, dim, **kw, order="interleave")),
        ("frequencies: w_i = max_period ** (-i / (dim / 2)) for i = 0..dim/2-1 (divide by half = dim // 2)",
         ref_sinusoidal(t, dim, **kw, denom=dim)),
        ("frequencies: you divided i by half - 1, as the original DDPM code does; this worksheet follows "
         "guided-diffusion, w_i = max_period ** (-i / half) with half = dim // 2 (both work in a network, the check "
         "follows the docstring)", ref_sinusoidal(t, dim, **kw, denom=dim // 2 - 1)),
        (GROWING_FREQUENCIES, ref_sinusoidal(t, dim, **kw, sign=1.0)),
        (f"use the max_period you are given (this case passes {kw.get('max_period')}), not 10000",
         ref_sinusoidal(t, dim) if kw.get("max_period") not in (None, 10000.0) else None),
        ("t is rounded to whole numbers (t.long() or t.int()): the embedding takes any real t (this case has "
         "fractions); use t.float()", ref_sinusoidal(t.long(), dim, **kw) if not torch.equal(t, t.round()) else None),
        ("every frequency is 1: i // half is floor division (0 for every i < half); the exponent is -i / half, a "
         "true division: torch.arange(half) / half", ref_sinusoidal(t, dim, **kw, mistake="floor")),
        ("the frequencies use the natural log: w_i = exp(-ln(max_period) i / half) = max_period ** (-i / half) "
         "(math.log, not math.log10)", ref_sinusoidal(t, dim, **kw, mistake="log10")),
        ("i runs from 0 to half - 1 (torch.arange(half)), so the first frequency is 1; yours starts at "
         "max_period ** (-1 / half)", ref_sinusoidal(t, dim, **kw, mistake="from one")),
        ("t goes in as it is (the timestep itself, not t / 1000): the frequencies, from 1 down to 1 / max_period, "
         "already span its scale", ref_sinusoidal(t, dim, **kw, mistake="t / 1000")),
        (TWO_PI, ref_sinusoidal(t, dim, **kw, mistake="2 pi")),
        ("the second block is the sines again: torch.cat([torch.sin(args), torch.cos(args)], dim=-1), sines then "
         "COSINES", ref_sinusoidal(t, dim, **kw, order="sin_sin")),
        ("the first block is cosines too: torch.cat([torch.sin(args), torch.cos(args)], dim=-1), SINES then "
         "cosines", ref_sinusoidal(t, dim, **kw, order="cos_cos")),
        ("the exponent is -i / half with i = 0 .. half - 1 (torch.arange(half)); yours is -2i / half (i stepping by 2, "
         "torch.arange(0, dim, 2), goes with a division by dim, not by half)",
         ref_sinusoidal(t, dim, **kw, denom=dim / 4)),
        ("the frequencies use the natural log: w_i = exp(-ln(max_period) i / half) = max_period ** (-i / half) "
         "(math.log, not math.log2)", ref_sinusoidal(t, dim, **kw, mistake="log2")),
    ], "embedding", GENERIC_EMBEDDING)
    # judge: a float64 embedding with the right values is told to return float32
    if hint == GENERIC_EMBEDDING:
        for loose_hint, mistake in [(GROWING_FREQUENCIES, dict(sign=1.0)), (TWO_PI, dict(mistake="2 pi"))]:
            if _like_where_float32_can(out, t, dim, kw, **mistake):
                return loose_hint
    return hint


GENERIC_EMBEDDING = ("the embedding differs: with half = dim // 2 and w_i = max_period ** (-i / half), i = 0 .. "
                     "half - 1, it is torch.cat([sin(t w), cos(t w)], dim=-1), shape (B, dim), float32")


def answer_sinusoidal_embedding():
    """A right sinusoidal_embedding (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return embedding_variant()


register(Check("sinusoidal_embedding", "sinusoidal_embedding", _embedding_cases,
               lambda f, c: f(c["t"], c["dim"], **c["kwargs"]), _embedding_diagnose, explain_by(
                   ("must match the size of tensor b",
                    "t (B,) times the frequencies (half,) is an outer product: t[:, None] * freqs[None, :] has shape "
                    "(B, half); t * freqs multiplies them entry by entry"),
                   ("only one element tensors can be converted to Python scalars",
                    "math.exp (or math.sin, float()) takes one number, and yours got a tensor of several: use "
                    "torch.exp, torch.sin, torch.cos on tensors")), answer=answer_sinusoidal_embedding))
check_sinusoidal_embedding = visible("sinusoidal_embedding")


def embedding_variant(*, denom_dim=False, denom_half_minus_one=False, denom_quarter=False, **switches):
    """sinusoidal_embedding(t, dim, max_period) in float32 with mistakes switched on; none: the right one."""
    def sinusoidal_embedding(t, dim, max_period=10000.0):
        denom = dim if denom_dim else dim // 2 - 1 if denom_half_minus_one else dim / 4 if denom_quarter else None
        return ref_sinusoidal(t, dim, max_period, denom=denom, **switches).float()
    return sinusoidal_embedding


def _float32_embedding(t, dim, max_period, scale, *, grow=False):
    """An embedding computed as a student does, in float32 (its sin of large arguments is off by far more than
    the checks' tolerance): ``scale`` multiplies the arguments, ``grow`` flips the exponent's sign."""
    half = dim // 2
    freqs = max_period ** ((1 if grow else -1) * torch.arange(half, dtype=torch.float32) / half)
    args = scale * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def _unsqueezed_in_place(t, dim, max_period=10000.0):
    """t.float() is t itself when t is float: t.unsqueeze_(1) then reshapes the caller's t to (B, 1)."""
    t = t.float()
    t.unsqueeze_(1)
    return embedding_variant()(t[:, 0], dim, max_period)


MISTAKES["sinusoidal_embedding"] = [
    ("cos first", embedding_variant(order="cos_sin"), "sin first"),
    ("interleaved", embedding_variant(order="interleave"), "interleave"),
    ("frequencies over dim", embedding_variant(denom_dim=True), "frequencies"),
    ("frequencies over half - 1", embedding_variant(denom_half_minus_one=True), "divided i by half - 1"),
    ("frequencies that grow", embedding_variant(sign=1.0), "the frequencies must decrease"),
    ("floor division i // half", embedding_variant(mistake="floor"), "every frequency is 1"),
    ("log10 for the natural log", embedding_variant(mistake="log10"), "(math.log, not math.log10)"),
    ("log2 for the natural log", embedding_variant(mistake="log2"), "(math.log, not math.log2)"),
    ("sines twice", embedding_variant(order="sin_sin"), "the second block is the sines again"),
    ("cosines twice", embedding_variant(order="cos_cos"), "the first block is cosines too"),
    ("exponent -2i over half", embedding_variant(denom_quarter=True), "yours is -2i / half"),
    ("concatenated along the batch", lambda t, dim, max_period=10000.0: torch.cat(
        embedding_variant()(t, dim, max_period).chunk(2, dim=-1), dim=0), "concatenated along the batch"),
    ("torch.stack for torch.cat", lambda t, dim, max_period=10000.0: torch.stack(
        embedding_variant()(t, dim, max_period).chunk(2, dim=-1), dim=-1), "torch.stack adds a dimension"),
    ("i from 1 to half", embedding_variant(mistake="from one"), "i runs from 0 to half - 1"),
    ("t divided by 1000", embedding_variant(mistake="t / 1000"), "t goes in as it is"),
    ("2 pi t w", embedding_variant(mistake="2 pi"), "no 2 pi"),
    ("2 pi t w in float32", lambda t, dim, max_period=10000.0: _float32_embedding(t, dim, max_period, 2 * math.pi),
     "no 2 pi"),
    ("frequencies that grow, in float32", lambda t, dim, max_period=10000.0: _float32_embedding(
        t, dim, max_period, 1.0, grow=True), "the frequencies must decrease"),
    ("max_period ignored", lambda t, dim, max_period=10000.0: embedding_variant()(t, dim), "use the max_period you"),
    ("float64", lambda t, dim, max_period=10000.0: ref_sinusoidal(t, dim, max_period), "return float32"),
    ("no batch broadcasting", lambda t, dim, max_period=10000.0: embedding_variant()(t, dim, max_period)[0],
     "wrong shape"),
    ("t times the frequencies entry by entry", lambda t, dim, max_period=10000.0: t.float() * torch.exp(
        -math.log(max_period) * torch.arange(dim // 2) / (dim // 2)), "is an outer product"),
    ("math.exp on a tensor", lambda t, dim, max_period=10000.0: math.exp(
        -math.log(max_period) * torch.arange(dim // 2) / (dim // 2)), "use torch.exp"),
    ("t unsqueezed in place", _unsqueezed_in_place, "changed its input t in place"),
    ("not implemented", todo, "not implemented yet"),
]


# ------------------------------------------------------------------ SinusoidalTimeEmbedding
def _mlp_ref(emb: Tensor, state: dict) -> Tensor:
    h = F.linear(emb, state["mlp.0.weight"].double(), state["mlp.0.bias"].double())
    return F.linear(F.silu(h), state["mlp.2.weight"].double(), state["mlp.2.bias"].double())


ALL_OF_MLP = "self.mlp already is Linear, SiLU, Linear; call it whole on the sinusoidal features"


def _time_module_cases(hidden: bool) -> list:
    cases = [dict(seed=0, dim=16, out_dim=32, t=torch.tensor([0, 10, 500, 999]))]
    if hidden:
        cases.append(dict(seed=1, dim=8, out_dim=12, t=torch.tensor([3, 3, 7])))
    return cases


def _time_module_call(cls, c):
    torch.manual_seed(c["seed"])
    module = cls(c["dim"], c["out_dim"])
    out = module(c["t"])
    # once more with other timesteps: the features belong to each call's t (a module that kept its first ones
    # answers the first case right)
    # and with a batch of one timestep, as the worksheet's next cell and a sampler's single image give it
    return dict(out=out, out2=module(c["t"].flip(0) + 1), again=module(c["t"]), one=module(c["t"][:1]),
                state=module.state_dict(), no_grad=without_gradient(module, out))


def _time_module_diagnose(out, c) -> str | None:
    missing = [k for k in ("mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias") if k not in out["state"]]
    if missing:
        return f"keep the given __init__ (self.mlp = Linear, SiLU, Linear); missing weights {missing}"
    state = seeded_state(lambda: RefTimeEmbedding(c["dim"], c["out_dim"]), c["seed"])
    if state_changed(out["state"], state):
        return WEIGHTS_CHANGED
    emb = ref_sinusoidal(c["t"], c["dim"])
    ref = _mlp_ref(emb, state)
    if isinstance(out["out"], Tensor) and tuple(out["out"].shape) == tuple(emb.shape) and c["dim"] != c["out_dim"]:
        return f"the output has shape {tuple(emb.shape)}: pass the sinusoidal features through self.mlp"
    first = F.linear(emb, state["mlp.0.weight"].double(), state["mlp.0.bias"].double())
    last = lambda h: F.linear(h, state["mlp.2.weight"].double(), state["mlp.2.bias"].double())  # noqa: E731
    if isinstance(out["out"], Tensor) and isinstance(out.get("again"), Tensor) and not close(out["out"],
                                                                                             out["again"], 1e-6):
        return ("two calls with the same t gave different outputs: a layer created in forward gets new random "
                "weights at each call, and dropout (F.dropout, nn.Dropout) a new mask; use the layers the given "
                "__init__ made (self.mlp), and nothing random")
    hint = judge(out["out"], ref, [
        ("the MLP must see the sinusoidal features: self.mlp(sinusoidal_embedding(t, self.dim))",
         _mlp_ref(c["t"].double()[:, None].expand(-1, c["dim"]), state)),
        (f"a SiLU after the MLP: {ALL_OF_MLP} and return its output as it is", F.silu(ref)),
        (f"only the first Linear: {ALL_OF_MLP}", first),
        (f"the SiLU between the two Linears is missing: {ALL_OF_MLP}", last(first)),
        (f"a SiLU on the sinusoidal features before the MLP: {ALL_OF_MLP}", _mlp_ref(F.silu(emb), state)),
        (f"a ReLU between the two Linears: the MLP's activation is SiLU; {ALL_OF_MLP}", last(F.relu(first))),
        ("the sinusoidal features of t / 1000: give sinusoidal_embedding the timesteps as they are, "
         "self.mlp(sinusoidal_embedding(t, self.dim))", _mlp_ref(ref_sinusoidal(c["t"] / 1000, c["dim"]), state)),
    ], "time embedding", "differs from self.mlp(sinusoidal_embedding(t, self.dim)); "
                         "does your sinusoidal_embedding pass its check?")
    if hint:
        return hint
    if not close(out.get("out2"), _mlp_ref(ref_sinusoidal(c["t"].flip(0) + 1, c["dim"]), state)):
        return ("right on the first call, wrong on a second call with other timesteps: compute the features from "
                "each call's t (keep nothing from an earlier call)")
    one = out.get("one")
    if not close(one, ref[:1]):
        shape = tuple(one.shape) if isinstance(one, Tensor) else type(one).__name__
        return (f"right for a batch of {len(c['t'])} timesteps, but a batch of one (t of shape (1,)) gives {shape}, "
                f"expected (1, {c['out_dim']}): keep the batch dimension (no .squeeze(), which drops it when B = 1; "
                "the worksheet's next cell and the UNet give one timestep per image)")
    return gradient_hint(out.get("no_grad"), "time embedding's MLP")


def answer_SinusoidalTimeEmbedding():
    """A right SinusoidalTimeEmbedding (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return RefTimeEmbedding


register(Check("SinusoidalTimeEmbedding", "SinusoidalTimeEmbedding", _time_module_cases, _time_module_call,
               _time_module_diagnose, explain_by(
                   ("mat1 and mat2 shapes cannot be multiplied",
                    "the MLP's first Linear takes self.dim features: sinusoidal_embedding(t, self.dim), with the dim "
                    "this module was built with, not a fixed number")), calls=("sinusoidal_embedding",),
               answer=answer_SinusoidalTimeEmbedding))
check_SinusoidalTimeEmbedding = visible("SinusoidalTimeEmbedding")


class RefTimeEmbedding(nn.Module):
    """The worksheet's SinusoidalTimeEmbedding (same __init__), with a switchable forward for the mistakes."""

    variant = ""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        if self.variant == "raw_t":
            return self.mlp(t.float()[:, None].expand(-1, self.dim))
        emb = ref_sinusoidal(t, self.dim, order="cos_sin" if self.variant == "cos_sin" else "sin_cos").float()
        return emb if self.variant == "skip_mlp" else self.mlp(emb)


def _time_embedding_variant(kind: str):
    return type("WrongTimeEmbedding", (RefTimeEmbedding,), {"variant": kind})


def _detached(cls, name: str):
    """``cls`` whose forward runs without a graph: the right values, and a network that never trains."""
    def forward(self, *args):
        with torch.no_grad():
            return cls.forward(self, *args)
    return type(name, (cls,), {"forward": forward})


class _MlpMisusedTimeEmbedding(RefTimeEmbedding):
    """Uses self.mlp's layers otherwise than in order: an extra SiLU, one Linear, no SiLU, a SiLU first."""

    use = ""

    def forward(self, t: Tensor) -> Tensor:
        emb = ref_sinusoidal(t, self.dim).float()
        lin0, act, lin2 = self.mlp
        return {"silu_after": lambda: act(self.mlp(emb)), "first_only": lambda: lin0(emb),
                "no_silu": lambda: lin2(lin0(emb)), "silu_first": lambda: self.mlp(act(emb)),
                "relu": lambda: lin2(F.relu(lin0(emb))),
                "t / 1000": lambda: self.mlp(ref_sinusoidal(t / 1000, self.dim).float()),
                "new layer": lambda: self.mlp(nn.Linear(self.dim, self.dim)(emb))}[self.use]()


def _mlp_misused(use: str):
    return type("WrongTimeEmbedding", (_MlpMisusedTimeEmbedding,), {"use": use})


class _CachedTimeEmbedding(RefTimeEmbedding):
    """Keeps the sinusoidal features of its first call and reuses them: right on the first call only."""

    def forward(self, t: Tensor) -> Tensor:
        if getattr(self, "_kept", None) is None:
            self._kept = ref_sinusoidal(t, self.dim).float()
        return self.mlp(self._kept)


class _SqueezedTimeEmbedding(RefTimeEmbedding):
    """.squeeze() on the output: right for a batch of several timesteps, shape (out_dim,) for a batch of one."""

    def forward(self, t: Tensor) -> Tensor:
        return super().forward(t).squeeze()


MISTAKES["SinusoidalTimeEmbedding"] = [
    ("MLP skipped", _time_embedding_variant("skip_mlp"), "self.mlp"),
    ("raw t into the MLP", _time_embedding_variant("raw_t"), "must see the sinusoidal features"),
    ("a wrong sinusoidal_embedding", _time_embedding_variant("cos_sin"), "does your sinusoidal_embedding pass"),
    ("output detached", _detached(RefTimeEmbedding, "WrongTimeEmbedding"), "no gradient reaches"),
    ("features of the first call kept", _CachedTimeEmbedding, "second call with other timesteps"),
    ("an extra SiLU after the MLP", _mlp_misused("silu_after"), "a SiLU after the MLP"),
    ("only the MLP's first Linear", _mlp_misused("first_only"), "only the first Linear"),
    ("the MLP's SiLU skipped", _mlp_misused("no_silu"), "the SiLU between the two Linears is missing"),
    ("a SiLU before the MLP", _mlp_misused("silu_first"), "a SiLU on the sinusoidal features before the MLP"),
    ("ReLU for the MLP's SiLU", _mlp_misused("relu"), "a ReLU between the two Linears"),
    ("features of t divided by 1000", _mlp_misused("t / 1000"), "the sinusoidal features of t / 1000"),
    ("a new Linear made in forward", _mlp_misused("new layer"), "a layer created in forward"),
    ("output squeezed", _SqueezedTimeEmbedding, "keep the batch dimension"),
    ("not implemented", TodoModule, "not implemented yet"),
]


# ------------------------------------------------------------------ ResBlock
def _resblock_ref(x, temb, state, groups, *, temb_where="after_conv1", silu_temb=True, skip=True,
                  conv_first=False, identity_skip=False, temb_3d=False, act=F.silu, silu_after_proj=False,
                  act1=True, film=False, residual_scale=1.0, act_first=False, norm2=True, act2=True,
                  second_half=True, out_act=False) -> Tensor:
    """The block's output in float64; the switches are mistakes (``temb_where``: "after_conv1" (right), "end",
    "after_act2" (between norm2's SiLU and conv2), "twice" (after conv1 and at the end), "in_norm2" (between norm2
    and its SiLU); ``act1``: the SiLU after norm1; ``film``: h * proj instead of h + proj; ``residual_scale``:
    (skip(x) + h) times it; ``act_first``: SiLU before each GroupNorm; ``norm2``, ``act2``: norm2 or its SiLU left
    out; ``second_half`` False: skip(x) + h after conv1 and the embedding; ``out_act``: SiLU on skip(x) + h)."""
    d = {k: v.double() for k, v in state.items()}
    x, temb = x.double(), temb.double()
    proj = F.linear(act(temb) if silu_temb else temb, d["temb_proj.weight"], d["temb_proj.bias"])
    proj = act(proj) if silu_after_proj else proj
    proj = proj[:, :, None] if temb_3d else proj[:, :, None, None]     # (B, out_ch, 1): broadcasts on W, raises
    act1_ = act if act1 else (lambda v: v)
    norm_act = (lambda v, norm, a: norm(a(v))) if act_first else (lambda v, norm, a: a(norm(v)))
    if conv_first:   # SiLU(norm1(conv1(x))): norm1 sees out_ch channels, raises where out_ch != in_ch
        h = act1_(F.group_norm(F.conv2d(x, d["conv1.weight"], d["conv1.bias"], padding=1), groups,
                               d["norm1.weight"], d["norm1.bias"]))
    else:
        h = F.conv2d(norm_act(x, lambda v: F.group_norm(v, groups, d["norm1.weight"], d["norm1.bias"]), act1_),
                     d["conv1.weight"], d["conv1.bias"], padding=1)
    if temb_where in ("after_conv1", "twice"):
        h = h * proj if film else h + proj
    if second_half:
        norm2_ = (lambda v: F.group_norm(v, groups, d["norm2.weight"], d["norm2.bias"])) if norm2 else (lambda v: v)
        h = (act(norm2_(h) + proj) if temb_where == "in_norm2" else norm_act(h, norm2_, act if act2 else
                                                                              (lambda v: v)))
        h = F.conv2d(h + proj if temb_where == "after_act2" else h, d["conv2.weight"], d["conv2.bias"], padding=1)
    if temb_where in ("end", "twice"):
        h = h + proj
    if not skip:
        return h
    res = F.conv2d(x, d["skip.weight"], d["skip.bias"]) if "skip.weight" in d and not identity_skip else x
    return act(res + h) * residual_scale if out_act else (res + h) * residual_scale


def _resblock_cases(hidden: bool) -> list:
    g = generator(4)
    cases = [dict(seed=0, in_ch=8, out_ch=16, temb_dim=6, groups=4, x=torch.randn(2, 8, 6, 6, generator=g),
                  temb=torch.randn(2, 6, generator=g), temb2=torch.randn(2, 6, generator=g)),
             # in_ch == out_ch: skip is the identity, where `out = self.skip(x); out += h` changes the caller's x
             dict(seed=2, in_ch=8, out_ch=8, temb_dim=6, groups=2, x=torch.randn(2, 8, 4, 4, generator=g),
                  temb=torch.randn(2, 6, generator=g), temb2=torch.randn(2, 6, generator=g))]
    if hidden:
        cases.append(dict(seed=1, in_ch=8, out_ch=8, temb_dim=5, groups=4, x=torch.randn(3, 8, 4, 5, generator=g),
                          temb=torch.randn(3, 5, generator=g), temb2=torch.randn(3, 5, generator=g)))
    return cases


def _resblock_call(cls, c):
    torch.manual_seed(c["seed"])
    block = cls(c["in_ch"], c["out_ch"], c["temb_dim"], groups=c["groups"])
    out = block(c["x"], c["temb"])
    return dict(out=out, out2=block(c["x"], c["temb2"]), again=block(c["x"], c["temb"]), state=block.state_dict(),
                no_grad=without_gradient(block, out))


def _resblock_diagnose(out, c) -> str | None:
    groups = c["groups"]
    need = ["norm1.weight", "conv1.weight", "temb_proj.weight", "norm2.weight", "conv2.weight"]
    if any(k not in out["state"] for k in need):
        return "keep the given __init__ (norm1, conv1, temb_proj, norm2, conv2, skip)"
    state = seeded_state(lambda: RefResBlock(c["in_ch"], c["out_ch"], c["temb_dim"], groups=groups), c["seed"])
    if state_changed(out["state"], state):
        return WEIGHTS_CHANGED
    ref = _resblock_ref(c["x"], c["temb"], state, groups)
    hint = shape_hint(out["out"], ref, "output")
    if hint:
        return hint
    if close(out["out"], out["out2"], 1e-6):
        return "the time embedding has no effect: add temb_proj(SiLU(temb)) per channel to h"
    if (isinstance(out.get("again"), Tensor) and not close(out["out"], ref)
            and not close(out["out"], out["again"], 1e-6)):       # (right once, then not: state kept, told below)
        return ("two calls with the same x and temb gave different outputs: nothing random in forward (no dropout, "
                "F.dropout or nn.Dropout, and no layer built inside forward, which gets new random weights)")
    args = (c["x"], c["temb"], state, groups)
    wrong = judge(out["out"], ref, [
        ("the residual connection is missing: return self.skip(x) + h", _resblock_ref(*args, skip=False)),
        ("add the time embedding after the first convolution (before norm2), not at the end",
         _resblock_ref(*args, temb_where="end")),
        ("apply SiLU to temb before temb_proj: self.temb_proj(F.silu(temb))", _resblock_ref(*args, silu_temb=False)),
        ("the activation is SiLU (F.silu), not ReLU: DDPM's blocks use the smooth SiLU (swish) everywhere",
         _resblock_ref(*args, act=F.relu)),
        ("the SiLU goes on temb before the projection, self.temb_proj(F.silu(temb)), not on its output",
         _resblock_ref(*args, silu_temb=False, silu_after_proj=True)),
        ("the SiLU after norm1 is missing: h = conv1(SiLU(norm1(x)))", _resblock_ref(*args, act1=False)),
        ("add the time embedding once, right after conv1 (before norm2): yours is added twice",
         _resblock_ref(*args, temb_where="twice")),
        ("add the time embedding right after conv1, before norm2 (the normalisation then sees it), not between "
         "norm2's SiLU and conv2", _resblock_ref(*args, temb_where="after_act2")),
        ("the time embedding is ADDED to h, one shift per channel (h + temb_proj(SiLU(temb)) broadcast over H "
         "and W), not multiplied",
         _resblock_ref(*args, film=True)),
        ("the residual is skip(x) + h as it is, with no scale (no division by sqrt(2))",
         _resblock_ref(*args, residual_scale=2 ** -0.5)),
        ("add the time embedding to conv1's output, before norm2: h = conv1(...) + temb_proj(SiLU(temb))[:, :, None, "
         "None], then conv2(SiLU(norm2(h))); yours goes between norm2 and its SiLU",
         _resblock_ref(*args, temb_where="in_norm2")),
        ("each half is GroupNorm, then SiLU, then the convolution: conv1(SiLU(norm1(x))), not conv1(norm1(SiLU(x))) "
         "(yours applies the SiLU before the norm)", _resblock_ref(*args, act_first=True)),
        ("norm2 is missing in the second half: conv2(SiLU(norm2(h))), GroupNorm before the SiLU as in the first half",
         _resblock_ref(*args, norm2=False)),
        ("the SiLU after norm2 is missing: conv2(SiLU(norm2(h))), as conv1(SiLU(norm1(x))) in the first half",
         _resblock_ref(*args, act2=False)),
        ("the second half is missing: after adding the time embedding, h = conv2(SiLU(norm2(h))), then skip(x) + h",
         _resblock_ref(*args, second_half=False)),
        ("no SiLU on the block's output: return skip(x) + h as it is (the next block's GroupNorm and SiLU come "
         "first there)", _resblock_ref(*args, out_act=True)),
        ("the number of groups is the block's own: call self.norm1 and self.norm2, built with it, not a "
         "GroupNorm of a fixed number of groups", _resblock_ref(c["x"], c["temb"], state, 8)
         if c["in_ch"] % 8 == 0 and c["out_ch"] % 8 == 0 and groups != 8 else None),
    ], "output", "differs from skip(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + temb_proj(SiLU(temb)))))")
    if wrong:
        return wrong
    if not close(out["out2"], _resblock_ref(c["x"], c["temb2"], state, groups)):
        return ("right for one time embedding, wrong for another: the output must follow temb "
                "(no state kept between calls)")
    return gradient_hint(out.get("no_grad"), "block")


_BROADCAST = re.compile(r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
                        r"dimension (\d+)")


def _resblock_explain(error: str) -> str | None:
    """PyTorch's words for the block's usual slips name weights, shapes and dimensions; the fix is where the norm
    goes, the residual's 1x1 convolution, or the time embedding's shape."""
    if "number of channels in input" in error or "num_channels must be divisible" in error:
        return ("a GroupNorm got another number of channels than it was built for: norm1 = GroupNorm(groups, in_ch) "
                "goes on x, norm2 = GroupNorm(groups, out_ch) on h after conv1; in each half the order is norm, "
                "SiLU, conv (Ho et al. 2020, Appendix B)")
    if "channels, but got" in error:       # a convolution given the wrong tensor: skip(h) for skip(x), say
        return ("a convolution got another number of channels than it was built for: conv1 and skip take x (in_ch "
                "channels), conv2 takes h (out_ch): the residual is self.skip(x) + h")
    mismatch = _BROADCAST.search(error)
    if mismatch and mismatch.group(1) == "1":
        return ("a tensor of in_ch channels met one of out_ch: x has in_ch channels, h (after conv1) and the "
                "projected time embedding out_ch: add the embedding to h after conv1, and the residual is "
                "self.skip(x) + h (a 1x1 conv when they differ)")
    if mismatch:
        return ("the time embedding is added per channel: temb_proj(SiLU(temb)) has shape (B, out_ch); make it "
                "(B, out_ch, 1, 1) with [:, :, None, None] to add it to h of shape (B, out_ch, H, W)")
    return None


def answer_ResBlock():
    """A right ResBlock (``Check.answer``): lent to a caller's instant check beside a failing one."""
    return RefResBlock


register(Check("ResBlock", "ResBlock", _resblock_cases, _resblock_call, _resblock_diagnose, _resblock_explain,
               answer=answer_ResBlock))
check_ResBlock = visible("ResBlock")


class RefResBlock(nn.Module):
    """The worksheet's ResBlock (same __init__), with a switchable forward for the catalogue of mistakes."""

    variant: dict = {}

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, groups: int = 8):
        super().__init__()
        self.groups = groups
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        if self.variant.get("no_temb"):
            temb = torch.zeros_like(temb)
        return _resblock_ref(x, temb, dict(self.named_parameters()), self.groups,
                             **{k: v for k, v in self.variant.items() if k != "no_temb"}).float()


def _resblock_variant(**kw):
    return type("WrongResBlock", (RefResBlock,), {"variant": kw})


class _ResBlockSkipsH(RefResBlock):
    """``self.skip(h) + h``: the residual's 1x1 convolution given h (out_ch channels) instead of x (in_ch)."""

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = super().forward(x, temb) - self.skip(x)
        return self.skip(h) + h


class _ResBlockAddsInPlace(RefResBlock):
    """``out = self.skip(x); out += h``: right values, but where skip is the identity, out is x itself."""

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = super().forward(x, temb) - self.skip(x)
        out = self.skip(x)
        out += h
        return out


class _ResBlockTouchesItsInput(RefResBlock):
    """``x += 0`` first: the same values, but the tensor the first call's graph saved has changed by the second
    call, so backward raises."""

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        x += 0
        h = self.conv1(F.silu(self.norm1(x))) + self.temb_proj(F.silu(temb))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class _ResBlockEmbedsX(RefResBlock):
    """The time embedding added to norm1(x) before conv1: x has in_ch channels, the embedding out_ch."""

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x) + self.temb_proj(F.silu(temb))[:, :, None, None]))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class _ResBlockEightGroups(RefResBlock):
    """GroupNorm with 8 groups written into forward (F.group_norm(x, 8, ...)), whatever the block was built with."""

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        return _resblock_ref(x, temb, dict(self.named_parameters()), 8).float()


class _ResBlockDropout(RefResBlock):
    """F.dropout on h (training mode): a new mask at every call."""

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        return self.skip(x) + F.dropout(super().forward(x, temb) - self.skip(x), 0.1, training=True)


MISTAKES["ResBlock"] = [
    ("out = skip(x); out += h", _ResBlockAddsInPlace, "out += h changes x too"),
    ("the input changed in place", _ResBlockTouchesItsInput, "so training would crash"),
    ("time embedding ignored", _resblock_variant(no_temb=True), "no effect"),
    ("no residual", _resblock_variant(skip=False), "residual"),
    ("time embedding at the end", _resblock_variant(temb_where="end"), "after the first convolution"),
    ("no SiLU on temb", _resblock_variant(silu_temb=False), "SiLU to temb"),
    ("convolution before the norm", _resblock_variant(conv_first=True), "norm1 = GroupNorm(groups, in_ch) goes on x"),
    ("x + h without the skip convolution", _resblock_variant(identity_skip=True),
     "a tensor of in_ch channels met one of out_ch"),
    ("time embedding of shape (B, out_ch, 1)", _resblock_variant(temb_3d=True), "[:, :, None, None]"),
    ("forward under no_grad", _detached(RefResBlock, "WrongResBlock"), "no gradient reaches"),
    ("skip applied to h", _ResBlockSkipsH, "conv1 and skip take x (in_ch channels)"),
    ("ReLU for SiLU", _resblock_variant(act=F.relu), "not ReLU"),
    ("SiLU after temb_proj", _resblock_variant(silu_temb=False, silu_after_proj=True), "not on its output"),
    ("time embedding added to x before conv1", _ResBlockEmbedsX, "a tensor of in_ch channels met one of out_ch"),
    ("no SiLU after norm1", _resblock_variant(act1=False), "the SiLU after norm1 is missing"),
    ("time embedding added twice", _resblock_variant(temb_where="twice"), "yours is added twice"),
    ("time embedding after norm2's SiLU", _resblock_variant(temb_where="after_act2"), "not between norm2's SiLU"),
    ("time embedding multiplied", _resblock_variant(film=True), "not multiplied"),
    ("residual divided by sqrt(2)", _resblock_variant(residual_scale=2 ** -0.5), "no division by sqrt(2)"),
    ("eight groups whatever the block's", _ResBlockEightGroups, "the number of groups is the block's own"),
    ("dropout in forward", _ResBlockDropout, "nothing random in forward"),
    ("time embedding between norm2 and its SiLU", _resblock_variant(temb_where="in_norm2"),
     "yours goes between norm2 and its SiLU"),
    ("SiLU before GroupNorm", _resblock_variant(act_first=True), "yours applies the SiLU before the norm"),
    ("norm2 skipped", _resblock_variant(norm2=False), "norm2 is missing in the second half"),
    ("no SiLU after norm2", _resblock_variant(act2=False), "the SiLU after norm2 is missing"),
    ("second half missing", _resblock_variant(second_half=False), "the second half is missing"),
    ("SiLU on skip(x) + h", _resblock_variant(out_act=True), "no SiLU on the block's output"),
    ("not implemented", TodoModule, "not implemented yet"),
]


# ------------------------------------------------------------------ SmallUNet
def _sub(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def ref_small_unet(x, t, state, groups, *, cat_order="h_first", skip1="after_block", mid=True, head=True,
                   add_skip=False, pool=False, skip2="after_block", head_silu=True, add_x=False, t_scale=1.0,
                   up_mode="nearest", head_silu_first=False, head_norm=True, mid_first=False) -> Tensor:
    """The worksheet's two-level UNet in float64 from its weights; the switches reproduce the catalogued mistakes
    (``head_silu_first``: SiLU before norm_out; ``head_norm`` False: norm_out left out, its SiLU kept;
    ``mid_first``: mid before downsample2, at H/2)."""
    d = {k: v.double() for k, v in state.items()}
    ch = d["conv_in.weight"].shape[0]
    temb = _mlp_ref(ref_sinusoidal(t * t_scale, ch), _sub(d, "time_embed."))           # (B, temb_dim)

    def block(name, h):
        return _resblock_ref(h, temb, _sub(d, f"{name}."), groups)

    def join(h, skip):
        if add_skip:            # h + skip: the next block, built for the concatenation's channels, raises
            return h + skip
        return torch.cat([h, skip] if cat_order == "h_first" else [skip, h], dim=1)

    def down(name, h):
        if pool:                # pooling instead of the stride-2 convolution: the same shapes, other values
            return F.avg_pool2d(h, 2)
        return F.conv2d(h, d[f"{name}.weight"], d[f"{name}.bias"], stride=2, padding=1)

    h0 = F.conv2d(x.double(), d["conv_in.weight"], d["conv_in.bias"], padding=1)       # (B, ch, H, W)
    h1 = block("down1", h0)                                                            # (B, ch, H, W)
    h2 = block("down2", down("downsample1", h1))                                       # (B, 2ch, H/2, W/2)
    h = down("downsample2", block("mid", h2) if mid_first else h2)                    # (B, 2ch, H/4, W/4)
    if skip2 == "after_downsample":     # the skip taken at H/4: torch.cat with the H/2 upsampled features raises
        h2 = h
    if mid and not mid_first:
        h = block("mid", h)
    h = block("up2", join(F.interpolate(h, scale_factor=2, mode=up_mode), h2))        # (B, 2ch, H/2, W/2)
    h = block("up1", join(F.interpolate(h, scale_factor=2, mode=up_mode), h1 if skip1 == "after_block" else h0))
    if head:
        h = F.silu(h) if head_silu_first else h
        h = F.group_norm(h, groups, d["norm_out.weight"], d["norm_out.bias"]) if head_norm else h
        h = F.silu(h) if head_silu and not head_silu_first else h
    out = F.conv2d(h, d["conv_out.weight"], d["conv_out.bias"], padding=1)             # (B, C, H, W)
    return out + x.double() if add_x else out


def _unet_cases(hidden: bool) -> list:
    g = generator(14)
    # the visible network's seed, 84, gives 10 of its 128 outputs beyond +-1 (at most 1.72): at seed 0 the largest
    # was 0.993, and a UNet clamping its prediction to [-1, 1] passed the worksheet
    specs = [(84, 1, 8, 16, 4, (2, 1, 8, 8))] + ([(1, 3, 8, 12, 4, (3, 3, 4, 12)), (2, 1, 16, 32, 8, (1, 1, 12, 8))]
                                                if hidden else [])
    return [dict(seed=seed, in_ch=in_ch, ch=ch, temb_dim=temb_dim, groups=groups, x=torch.randn(shape, generator=g),
                 t=torch.randint(0, 1000, (shape[0],), generator=g))
            for seed, in_ch, ch, temb_dim, groups, shape in specs]


def _unet_call(cls, c):
    torch.manual_seed(c["seed"])
    net = cls(in_ch=c["in_ch"], ch=c["ch"], temb_dim=c["temb_dim"], groups=c["groups"])
    out = net(c["x"], c["t"])
    return dict(out=out, state=net.state_dict(), no_grad=without_gradient(net, out))


def _unet_diagnose(out, c) -> str | None:
    state = out["state"]
    need = ["time_embed.mlp.0.weight", "conv_in.weight", "down1.conv1.weight", "downsample1.weight",
            "down2.conv1.weight", "downsample2.weight", "mid.conv1.weight", "up2.conv1.weight", "up1.conv1.weight",
            "norm_out.weight", "conv_out.weight"]
    missing = [k for k in need if k not in state]
    if missing:
        return f"keep the given __init__ (its blocks and their names); missing weights {missing[:3]}"
    state = seeded_state(lambda: RefSmallUNet(in_ch=c["in_ch"], ch=c["ch"], temb_dim=c["temb_dim"],
                                              groups=c["groups"]), c["seed"])
    if state_changed(out["state"], state):
        return WEIGHTS_CHANGED
    args = (c["x"], c["t"], state, c["groups"])
    ref = ref_small_unet(*args)
    hint = shape_hint(out["out"], ref, "output")
    if hint:
        return hint + " (the output has the input's shape: (B, in_ch, H, W))"
    hint = judge(out["out"], ref, [
        ("concatenate in the order [upsampled features, skip] along the channels (dim=1): up2 and up1 were "
         "built for that order", ref_small_unet(*args, cat_order="skip_first")),
        ("the level-1 skip is down1's output (the features after the ResBlock), not conv_in's output",
         ref_small_unet(*args, skip1="before_block")),
        ("the bottleneck is skipped: after downsample2, apply self.mid", ref_small_unet(*args, mid=False)),
        ("the output head is GroupNorm, SiLU, then conv_out: norm_out and SiLU are missing",
         ref_small_unet(*args, head=False)),
        ("downsample with the given stride-2 convolutions, self.downsample1 and self.downsample2, not with "
         "pooling: they are part of the network and train with it", ref_small_unet(*args, pool=True)),
        ("the head's SiLU is missing: norm_out, then SiLU, then conv_out", ref_small_unet(*args, head_silu=False)),
        ("the input is added to the output: the network predicts the noise eps, conv_out's output itself (no "
         "residual around the whole UNet)", ref_small_unet(*args, add_x=True)),
        ("the time embedding of t / 1000: give time_embed the timesteps as they are, self.time_embed(t)",
         ref_small_unet(*args, t_scale=1e-3)),
        ("upsample by nearest: F.interpolate(h, scale_factor=2, mode='nearest') (yours interpolates, bilinear)",
         ref_small_unet(*args, up_mode="bilinear")),
        ("the output is clamped to [-1, 1]: the network predicts the noise eps, drawn from N(0, I), which has no "
         "bounds (clamping belongs to the predicted x0 in a sampler); return conv_out's output as it is",
         ref.clamp(-1, 1) if ref.abs().max() > 1 else None),
        ("the head's order: norm_out first, then SiLU, then conv_out, conv_out(SiLU(norm_out(h))); yours applies the "
         "SiLU before norm_out", ref_small_unet(*args, head_silu_first=True)),
        ("norm_out is missing from the head: conv_out(SiLU(norm_out(h))), the GroupNorm before the SiLU",
         ref_small_unet(*args, head_norm=False)),
        ("the bottleneck self.mid works at a quarter of the resolution, after downsample2: "
         "h = self.mid(self.downsample2(h2), temb) (yours applies it before downsample2)",
         ref_small_unet(*args, mid_first=True)),
    ], "output", "the output differs from the reference UNet with the same weights. If your "
                 "SinusoidalTimeEmbedding and ResBlock pass their checks, the difference is in forward itself: "
                 "every ResBlock gets the same time embedding time_embed(t); the upsampling is nearest-neighbour "
                 "(F.interpolate, scale_factor=2, mode=\"nearest\"); "
                 "the head is norm_out, SiLU, conv_out, and its output is the prediction (no x added)")
    return hint or gradient_hint(out.get("no_grad"), "UNet")


_GROUPNORM_INPUT = re.compile(r"number of channels in input.*input of shape \[\d+, (\d+),")


def _unet_explain(error: str) -> str | None:
    """A block given the image itself (conv_in skipped) names the image's channels; else PyTorch's words for a skip
    added instead of concatenated, concatenated along another axis, or upsampled to another size."""
    given = _GROUPNORM_INPUT.search(error)
    if given and int(given.group(1)) in (1, 3):
        return (f"a block got an input of {given.group(1)} channel(s), the image's: self.conv_in(x) comes first and "
                "makes the ch channels down1 was built for")
    return _unet_words(error)


_unet_words = explain_by(
    ("number of channels in input",
     "a block got another number of channels than it was built for: up2 expects 4 ch (the upsampled 2 ch and the "
     "2 ch skip) and up1 3 ch: concatenate along the channels, torch.cat([h, skip], dim=1), don't add, and take "
     "as skip the output of the down block at that resolution (down2's for up2, down1's for up1), not x nor a "
     "downsample's output"),
    ("channels, but got",
     "a convolution got another number of channels than it was built for: each one has its place, conv_in on x, "
     "downsample1 after down1 (ch channels), downsample2 after down2 (2 ch), conv_out after the head (ch): use each "
     "once, where the given __init__ puts it"),
    ("Sizes of tensors must match except in dimension 1",
     "the upsampled features and the skip differ in height or width: each skip is its down block's output before "
     "the downsampling that follows it (down1's at H x W, down2's at H/2 x W/2), and each upsampling doubles H "
     "and W (F.interpolate(h, scale_factor=2, mode='nearest'), not a size computed from one side); concatenate "
     "along dim=1"))
register(Check("SmallUNet", "SmallUNet", _unet_cases, _unet_call, _unet_diagnose, _unet_explain,
               calls=("ResBlock", "SinusoidalTimeEmbedding")))
check_SmallUNet = visible("SmallUNet")


class RefSmallUNet(nn.Module):
    """The worksheet's SmallUNet (same __init__ and weight names), with a switchable forward for the mistakes."""

    variant: dict = {}

    def __init__(self, in_ch: int = 1, ch: int = 16, temb_dim: int = 64, groups: int = 8):
        super().__init__()
        self.groups = groups
        self.time_embed = RefTimeEmbedding(ch, temb_dim)
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down1 = RefResBlock(ch, ch, temb_dim, groups=groups)
        self.downsample1 = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.down2 = RefResBlock(ch, 2 * ch, temb_dim, groups=groups)
        self.downsample2 = nn.Conv2d(2 * ch, 2 * ch, 3, stride=2, padding=1)
        self.mid = RefResBlock(2 * ch, 2 * ch, temb_dim, groups=groups)
        self.up2 = RefResBlock(4 * ch, 2 * ch, temb_dim, groups=groups)
        self.up1 = RefResBlock(3 * ch, ch, temb_dim, groups=groups)
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, in_ch, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return ref_small_unet(x, t, dict(self.named_parameters()), self.groups, **self.variant).float()


def _unet_variant(**kw):
    return type("WrongSmallUNet", (RefSmallUNet,), {"variant": kw})


class _UNetClamped(RefSmallUNet):
    """The prediction clamped to [-1, 1], as a sampler clamps its predicted x0."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return super().forward(x, t).clamp(-1, 1)


class _UNetWithoutConvIn(RefSmallUNet):
    """down1 applied to the image itself: its GroupNorm, built for ch channels, gets in_ch."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.down1(x, self.time_embed(t))


MISTAKES["SmallUNet"] = [
    ("skip concatenated first", _unet_variant(cat_order="skip_first"), "[upsampled features, skip]"),
    ("skip added, not concatenated", _unet_variant(add_skip=True), "concatenate along the channels"),
    ("level-1 skip before the block", _unet_variant(skip1="before_block"), "down1's output"),
    ("no bottleneck", _unet_variant(mid=False), "the bottleneck is skipped"),
    ("no output norm", _unet_variant(head=False), "norm_out and SiLU are missing"),
    ("pooling instead of the downsampling convolutions", _unet_variant(pool=True), "stride-2 convolutions"),
    ("level-2 skip taken after downsampling", _unet_variant(skip2="after_downsample"),
     "before the downsampling that follows it"),
    ("no SiLU in the head", _unet_variant(head_silu=False), "the head's SiLU is missing"),
    ("the input added to the output", _unet_variant(add_x=True), "the input is added to the output"),
    ("time embedding of t divided by 1000", _unet_variant(t_scale=1e-3), "the time embedding of t / 1000"),
    ("bilinear upsampling", _unet_variant(up_mode="bilinear"), "upsample by nearest"),
    ("SiLU before norm_out in the head", _unet_variant(head_silu_first=True), "yours applies the SiLU before norm_out"),
    ("norm_out skipped, its SiLU kept", _unet_variant(head_norm=False), "norm_out is missing from the head"),
    ("mid before downsample2", _unet_variant(mid_first=True), "yours applies it before downsample2"),
    ("conv_in skipped", _UNetWithoutConvIn, "self.conv_in(x) comes first"),
    ("the prediction clamped to [-1, 1]", _UNetClamped, "the output is clamped to [-1, 1]"),
    ("forward under no_grad", _detached(RefSmallUNet, "WrongSmallUNet"), "no gradient reaches"),
    ("not implemented", TodoModule, "not implemented yet"),
]
