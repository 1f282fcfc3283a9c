"""Worksheets 3 and 4's checks (course_utils/checks/ws03_unet.py, ws04_training.py) against near-miss student
answers, found by a mutation audit: each test fails if a hidden case is made no harder than the visible ones, a
guard of ``diagnose`` is dropped, or a reference drifts from an independent implementation. test_checks.py only
runs the catalogue, whose mistakes are far from the reference; the answer key is made of the references
themselves, and SmallUNet, training_step and EMA have no package twin in test_package_matches_checks.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import nets
from course_utils.checks import run_check
from course_utils.checks.ws03_unet import RefResBlock, RefSmallUNet, RefTimeEmbedding, ref_sinusoidal, ref_small_unet
from course_utils.checks.ws04_training import RefEMA, ema_variant, loss_variant, noisy_input, training_step_variant


def _zero_initialised(module_class: type, weight: str) -> type:
    """``module_class`` with one weight zeroed after the given __init__ (guided-diffusion's zero_module, a common
    trick on a block's last layer): not the weights the given __init__ creates."""
    class ZeroInitialised(module_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            nn.init.zeros_(self.get_parameter(weight))
    return ZeroInitialised


# ------------------------------------------------------------------ sinusoidal_embedding
def test_an_embedding_that_ignores_max_period_fails_the_worksheets_check():
    """The second visible case passes max_period = 100: an embedding that ignores it passed the worksheet and got
    a generic message from the hidden case (a student's run); now the worksheet tells it to use the argument."""
    def sinusoidal_embedding(t, dim, max_period=10000.0):
        return ref_sinusoidal(t, dim).float()                  # max_period never used

    result = run_check("sinusoidal_embedding", sinusoidal_embedding)
    assert not result.passed and "use the max_period you are given (this case passes 100.0)" in result.message


def test_an_embedding_that_rounds_t_fails_the_visible_cases():
    """A visible case has fractional t (as a hidden one does): t.long() rounds them, and t.unsqueeze_(1) after
    t.float() (t itself when t is float) reshapes the caller's t; both passed the worksheet when its t were whole."""
    def rounds(t, dim, max_period=10000.0):
        return ref_sinusoidal(t.long(), dim, max_period).float()

    def unsqueezes_in_place(t, dim, max_period=10000.0):
        t = t.float()
        t.unsqueeze_(1)
        return ref_sinusoidal(t[:, 0], dim, max_period).float()

    for hidden in (False, True):
        result = run_check("sinusoidal_embedding", rounds, hidden=hidden)
        assert not result.passed and "t is rounded to whole numbers" in result.message, result.message
        result = run_check("sinusoidal_embedding", unsqueezes_in_place, hidden=hidden)
        assert not result.passed and "changed its input t in place" in result.message, result.message


# ------------------------------------------------------------------ SinusoidalTimeEmbedding
class _HardCodedDim(RefTimeEmbedding):
    """Features of the worksheet's demo width 16 instead of self.dim: right whenever dim is 16."""

    def forward(self, t):
        return self.mlp(F.pad(ref_sinusoidal(t, 16).float(), (0, self.dim - 16))[:, : self.dim])


def test_a_time_embedding_with_a_hard_coded_width_fails_the_hidden_case():
    """The visible case has dim 16; the hidden one another dim (and repeated timesteps)."""
    assert run_check("SinusoidalTimeEmbedding", _HardCodedDim).passed
    assert not run_check("SinusoidalTimeEmbedding", _HardCodedDim, hidden=True).passed

    class Sixteen(RefTimeEmbedding):        # as a student writes it: sinusoidal_embedding(t, 16), a bare matmul error
        def forward(self, t):
            return self.mlp(ref_sinusoidal(t, 16).float())

    result = run_check("SinusoidalTimeEmbedding", Sixteen, hidden=True)
    assert not result.passed and "sinusoidal_embedding(t, self.dim)" in result.message, result.message


def test_a_time_embedding_with_other_initial_weights_is_told_so():
    """The hint names the weights, not the sinusoidal features (which would send the student to the wrong TODO)."""
    result = run_check("SinusoidalTimeEmbedding", _zero_initialised(RefTimeEmbedding, "mlp.2.weight"))
    assert not result.passed and "weights are not the ones the given __init__ creates" in result.message


# ------------------------------------------------------------------ ResBlock
class _ExplicitSkipConv(RefResBlock):
    """Calls the skip convolution's weights by hand: breaks when in_ch == out_ch, where skip is nn.Identity."""

    def forward(self, x, temb):
        h = super().forward(x, temb) - self.skip(x)
        return F.conv2d(x, self.skip.weight, self.skip.bias) + h


def test_a_resblock_that_assumes_a_skip_convolution_fails_the_worksheets_check():
    """The first visible case changes the channels (a 1x1 skip conv), the second keeps them (an identity skip,
    where `out = self.skip(x); out += h` would change the caller's x): it passed the worksheet's check before."""
    result = run_check("ResBlock", _ExplicitSkipConv)
    assert not result.passed and "raised AttributeError" in result.message


class _TembAccumulated(RefResBlock):
    """Keeps a running total of the time embeddings it was given (state between calls): right on the first call,
    wrong, but not constant, on the next."""

    def forward(self, x, temb):
        self._total = temb if getattr(self, "_total", None) is None else self._total + temb
        return super().forward(x, self._total)


def test_a_resblock_that_keeps_state_between_calls_fails():
    """The second call with another temb must give that temb's output, not merely a different one."""
    result = run_check("ResBlock", _TembAccumulated)
    assert not result.passed and "wrong for another" in result.message


def test_a_resblock_with_other_initial_weights_is_told_so():
    """A zeroed conv2 makes the block its skip: the hint names the weights, not a missing residual."""
    result = run_check("ResBlock", _zero_initialised(RefResBlock, "conv2.weight"))
    assert not result.passed and "weights are not the ones the given __init__ creates" in result.message


# ------------------------------------------------------------------ SmallUNet
class _PackageBlocksUNet(nn.Module):
    """The worksheet's SmallUNet written as a student does, from the package's blocks (course_utils.nets), whose
    sinusoidal embedding and ResBlock pass their own checks: independent of ``ref_small_unet``, which both the
    check and the answer key use. ``square``: upsample to the skip's width in both dimensions (a near miss that
    is right on square images only)."""

    square = False

    def __init__(self, in_ch=1, ch=16, temb_dim=64, groups=8):
        super().__init__()
        self.time_embed = nets.SinusoidalTimeEmbedding(ch, temb_dim)
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down1 = nets.ResBlock(ch, ch, temb_dim, groups=groups)
        self.downsample1 = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.down2 = nets.ResBlock(ch, 2 * ch, temb_dim, groups=groups)
        self.downsample2 = nn.Conv2d(2 * ch, 2 * ch, 3, stride=2, padding=1)
        self.mid = nets.ResBlock(2 * ch, 2 * ch, temb_dim, groups=groups)
        self.up2 = nets.ResBlock(4 * ch, 2 * ch, temb_dim, groups=groups)
        self.up1 = nets.ResBlock(3 * ch, ch, temb_dim, groups=groups)
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = nn.Conv2d(ch, in_ch, 3, padding=1)

    def _up(self, h, skip):
        if self.square:
            return F.interpolate(h, size=skip.shape[-1], mode="nearest")
        return F.interpolate(h, scale_factor=2, mode="nearest")

    def forward(self, x, t):
        temb = self.time_embed(t)
        h1 = self.down1(self.conv_in(x), temb)
        h2 = self.down2(self.downsample1(h1), temb)
        h = self.mid(self.downsample2(h2), temb)
        h = self.up2(torch.cat([self._up(h, h2), h2], dim=1), temb)
        h = self.up1(torch.cat([self._up(h, h1), h1], dim=1), temb)
        return self.conv_out(F.silu(self.norm_out(h)))


def test_a_unet_from_the_package_blocks_passes_the_check():
    """The UNet reference (no package twin) agrees with the forward pass written from nn modules: upsampling by
    nearest, the skips after the blocks, [h, skip] order, the bottleneck and the head."""
    assert RefSmallUNet().state_dict().keys() == _PackageBlocksUNet().state_dict().keys()
    result = run_check("SmallUNet", _PackageBlocksUNet, hidden=True)
    assert result.passed, result.message


def test_a_unet_that_assumes_square_images_fails_the_hidden_cases():
    """The visible case is 8x8; the hidden ones are not square, where upsampling to the skip's width is wrong."""
    square = type("SquareUNet", (_PackageBlocksUNet,), {"square": True})
    assert run_check("SmallUNet", square).passed
    assert not run_check("SmallUNet", square, hidden=True).passed


def test_a_unet_with_other_initial_weights_is_told_so():
    """A zeroed output conv gives a constant output: the hint names the weights, not the blocks."""
    result = run_check("SmallUNet", _zero_initialised(RefSmallUNet, "conv_out.weight"))
    assert not result.passed and "weights are not the ones the given __init__ creates" in result.message


# ------------------------------------------------------------------ diffusion_loss
def test_a_loss_with_the_right_value_and_half_its_gradient_fails():
    """Half the batch through a detached prediction: the value is L_simple, the gradients are not."""
    right = loss_variant()

    def diffusion_loss(model, schedule, x0, *, t, eps):
        full = right(model, schedule, x0, t=t, eps=eps)
        return 0.5 * full + 0.5 * full.detach()

    result = run_check("diffusion_loss", diffusion_loss)
    assert not result.passed and "gradients are not" in result.message


def _loss_reshaping_for_points(model, schedule, x0, *, t, eps):
    """alpha_bar[t][:, None]: right for (B, D) points, wrong for a batch of images."""
    a = schedule.alpha_bar[t][:, None]
    return F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)


def test_a_loss_reshaping_alpha_bar_for_points_only_is_told_about_images():
    """alpha_bar[t][:, None] is right for (B, D) points; on the worksheet's image batch the hint says reshape."""
    result = run_check("diffusion_loss", _loss_reshaping_for_points)
    assert not result.passed and "alpha_bar[t] must be reshaped to (3, 1, 1, 1)" in result.message


def test_a_loss_with_a_small_weight_penalty_fails():
    """L_simple plus an L2 penalty 1e-4 * sum(p^2) (weight decay folded into the loss) is within 1e-3 of the
    loss but not within close's tolerance 1e-4: the check keeps that tolerance."""
    right = loss_variant()

    def diffusion_loss(model, schedule, x0, *, t, eps):
        penalty = sum((p ** 2).sum() for p in model.parameters())
        return right(model, schedule, x0, t=t, eps=eps) + 1e-4 * penalty

    result = run_check("diffusion_loss", diffusion_loss)
    assert not result.passed and "the loss is" in result.message


def test_a_loss_that_changes_the_weights_is_told_so():
    """Zeroing the model's output layer inside the loss: the hint names the weights, not the MSE."""
    right = loss_variant()

    def diffusion_loss(model, schedule, x0, *, t, eps):
        nn.init.zeros_(model.out.weight)
        return right(model, schedule, x0, t=t, eps=eps)

    result = run_check("diffusion_loss", diffusion_loss)
    assert not result.passed and "weights are not the ones the check gave it" in result.message


# ------------------------------------------------------------------ training_step
def test_a_training_step_that_returns_nothing_fails():
    """The right update without `return loss.item()`: the notebook's training loop plots the returned losses."""
    right = training_step_variant()

    def training_step(model, optimizer, x0, t, eps, schedule):
        right(model, optimizer, x0, t, eps, schedule)

    result = run_check("training_step", training_step)
    assert not result.passed and "return the loss" in result.message


def test_a_training_step_that_returns_the_loss_after_the_step_fails():
    """The loss recomputed after optimizer.step() is not this batch's training loss."""
    right = training_step_variant()

    def training_step(model, optimizer, x0, t, eps, schedule):
        right(model, optimizer, x0, t, eps, schedule)
        with torch.no_grad():
            return loss_variant()(model, schedule, x0, t=t, eps=eps).item()

    result = run_check("training_step", training_step)
    assert not result.passed and "return this batch's loss" in result.message


# ------------------------------------------------------------------ EMA
class _LoadsTheAverageIntoTheLiveNetwork(RefEMA):
    """Right average, but copies it back into the live network (as if sampling with EMA weights): training then
    continues from the average."""

    @torch.no_grad()
    def update(self, model, step):
        super().update(model, step)
        for p, ema_p in zip(model.parameters(), self.model.parameters()):
            p.copy_(ema_p)


def test_an_ema_that_overwrites_the_live_network_fails():
    """The check sets the live weights before each update, so the average itself is right: only the live weights
    after the updates show the mistake."""
    result = run_check("EMA", _LoadsTheAverageIntoTheLiveNetwork)
    assert not result.passed and "changed the live network's weights" in result.message


# ------------------------------------------------------------------ SmallUNet (the audit's unrun mutants)
class _BottleneckRenamed(RefSmallUNet):
    """The given UNet with self.mid renamed self.bottleneck: same weights and output, other weight names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bottleneck = self.mid
        del self.mid

    def forward(self, x, t):
        params = {k.replace("bottleneck.", "mid."): v for k, v in self.named_parameters()}
        return ref_small_unet(x, t, params, self.groups).float()


def test_a_unet_with_a_renamed_block_is_told_which_weights_are_missing():
    """A renamed block is not an initialisation change: the hint names the missing weights, not torch's init."""
    result = run_check("SmallUNet", _BottleneckRenamed)
    assert not result.passed and "missing weights ['mid.conv1.weight']" in result.message


# ------------------------------------------------------------------ diffusion_loss
def test_a_per_element_loss_is_told_to_reduce_it():
    """reduction="none" gives a loss with a graph but many elements: the hint asks for a scalar, not for grad."""
    def diffusion_loss(model, schedule, x0, *, t, eps):
        return F.mse_loss(model(noisy_input(x0, t, eps, schedule), t), eps, reduction="none")

    result = run_check("diffusion_loss", diffusion_loss)
    assert not result.passed and "the loss must be a scalar" in result.message


def test_a_loss_that_gives_the_model_t_over_T_fails():
    """The check's model must depend on t, or a loss passing the model a wrong timestep would pass."""
    def diffusion_loss(model, schedule, x0, *, t, eps):
        return F.mse_loss(model(noisy_input(x0, t, eps, schedule), t / schedule.T), eps)

    result = run_check("diffusion_loss", diffusion_loss)
    assert not result.passed and "integer timesteps t as they are" in result.message, result.message


# ------------------------------------------------------------------ training_step
def test_a_training_step_without_zero_grad_is_told_that_gradients_accumulate():
    """The catalogue pins only "zero_grad", which the generic hint also says: pin the specific diagnosis."""
    result = run_check("training_step", training_step_variant(zero_grad=False))
    assert not result.passed and "gradients accumulate across steps" in result.message


def _training_step_reshaping_for_points(model, optimizer, x0, t, eps, schedule):
    """The right step on ``_loss_reshaping_for_points``: right for the visible case's points only."""
    optimizer.zero_grad()
    loss = _loss_reshaping_for_points(model, schedule, x0, t=t, eps=eps)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_a_training_step_reshaping_alpha_bar_for_points_only_fails_the_hidden_case():
    """The visible case is a batch of points; the hidden cases must add a batch of images."""
    assert run_check("training_step", _training_step_reshaping_for_points).passed
    assert not run_check("training_step", _training_step_reshaping_for_points, hidden=True).passed


def _training_step_with_weight_penalty(lam: float):
    """The right step on diffusion_loss + lam * sum of squared weights (an L2 penalty, weight decay by hand)."""
    def training_step(model, optimizer, x0, t, eps, schedule):
        optimizer.zero_grad()
        loss = loss_variant()(model, schedule, x0, t=t, eps=eps)
        (loss + lam * sum(p.pow(2).sum() for p in model.parameters())).backward()
        optimizer.step()
        return loss.item()
    return training_step


def test_a_training_step_that_clears_the_gradients_before_the_step_is_told_the_order():
    """zero_grad between backward and step leaves the weights as they were; the hint named only backward and step,
    which that student already calls (a student's report)."""
    def cleared_too_early(model, optimizer, x0, t, eps, schedule):
        loss = loss_variant()(model, schedule, x0, t=t, eps=eps)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        return loss.item()

    result = run_check("training_step", cleared_too_early)
    assert not result.passed and "or a zero_grad between them, finds none" in result.message, result.message


def test_a_training_step_with_a_small_weight_penalty_fails():
    """An L2 penalty of 1e-4 * sum(p^2) moves the weights by about 2e-5 of their size (the right step in float32:
    2e-8): the weights' tolerance must stay below that."""
    result = run_check("training_step", _training_step_with_weight_penalty(1e-4))
    assert not result.passed and "the weights after two steps differ" in result.message


# ------------------------------------------------------------------ EMA
class _CountsItsOwnUpdates(RefEMA):
    """Right average and warm-up, but the step is its own count of updates, not the step it is given."""

    def __init__(self, model, decay):
        super().__init__(model, decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, model, step):
        super().update(model, self.updates)
        self.updates += 1


def test_an_ema_that_counts_its_own_updates_is_told_to_use_the_step():
    """It passes the cases that start at step 0 and failed the later ones with the generic formula (a student's
    report); the check's case from step 20 names the step argument."""
    result = run_check("EMA", _CountsItsOwnUpdates)
    assert not result.passed and "use the `step` that update(model, step) is given" in result.message, result.message


class _CountsItsOwnUpdatesFromOne(_CountsItsOwnUpdates):
    """The same with the count started at 1 (``self.updates += 1`` before the update)."""

    @torch.no_grad()
    def update(self, model, step):
        self.updates += 1
        RefEMA.update(self, model, self.updates)


def test_an_ema_that_counts_its_own_updates_from_one_is_told_it_is_off_by_one():
    """A student's version of the same slip, counted from 1: the case from step 0 already fails, with a decay of
    (2 + 0) / (11 + 0) at step 0, and the hint names both ways to get there (it got the generic formula)."""
    result = run_check("EMA", _CountsItsOwnUpdatesFromOne)
    assert not result.passed and "nor a count of updates from 1" in result.message, result.message


class _FreezesTheLiveNetworkInUpdate(RefEMA):
    """Right average, but update() freezes the live network (the catalogue's mistake, made in update, not __init__)."""

    @torch.no_grad()
    def update(self, model, step):
        super().update(model, step)
        model.requires_grad_(False)


class _LiveNetworkToEvalInUpdate(RefEMA):
    """Right average, but update() leaves the live network in eval mode."""

    @torch.no_grad()
    def update(self, model, step):
        super().update(model, step)
        model.eval()


class _SnapshotOfTheFirstLiveWeights(RefEMA):
    """Averages in the live weights as they were at the first update, a snapshot it never refreshes."""

    @torch.no_grad()
    def update(self, model, step):
        if not hasattr(self, "live"):
            self.live = [p.detach().clone() for p in model.parameters()]
        d = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), self.live):
            ema_p.mul_(d).add_(p, alpha=1 - d)


def _warm_up_for_the_first_steps_only(steps: int, *, with_min: bool = False) -> type:
    """An EMA with the warm-up (1 + step) / (10 + step) for the first ``steps`` steps (its min with `decay` if
    ``with_min``), then `decay`."""
    return ema_variant(warmup="min" if with_min else "ramp", warmup_steps=steps)


def test_an_ema_whose_warm_up_stops_after_ten_steps_is_told_so_at_the_worksheet():
    """The fourth visible case starts at step 50, where min(0.999, 51/60) is the warm-up: a warm-up for a fixed
    ten steps, "EMA without warm-up" there by its numbers, is told that its warm-up stopped."""
    for hidden in (False, True):
        result = run_check("EMA", _warm_up_for_the_first_steps_only(10), hidden=hidden)
        assert not result.passed and "on a hidden case" not in result.message
        assert "stopped too early: at step 50" in result.message and "51/60) = 0.850" in result.message


@pytest.mark.parametrize("steps", [60, 1000])
def test_an_ema_whose_warm_up_stops_at_a_round_step_fails_the_visible_check(steps):
    """The last visible case starts at step 5000, where the warm-up (5001/5010) is still below the decay 0.999 (it
    reaches it at step 8990): a warm-up cut at 60 or 1000 steps passed every visible case once (the others end at
    step 52) and a cut at 1000 the hidden one too (step 104). (Without the min, a warm-up longer than 20 steps
    fails the case from step 20 with decay 0.5.)"""
    result = run_check("EMA", _warm_up_for_the_first_steps_only(steps, with_min=True))
    assert not result.passed and "on a hidden case" not in result.message, result.message
    assert "stopped too early: at step 5000" in result.message, result.message


def test_an_ema_whose_warm_up_stops_after_five_steps_fails_the_visible_check():
    """The visible case with decay 0.999 runs six updates (steps 0 to 5): the only visible look past step 3 in
    the warm-up's range, where the min is the warm-up."""
    result = run_check("EMA", _warm_up_for_the_first_steps_only(5))
    assert not result.passed and "on a hidden case" not in result.message


def test_an_ema_that_freezes_the_live_network_in_update_is_told_so():
    """The live network's requires_grad is measured after every update, not only after __init__."""
    result = run_check("EMA", _FreezesTheLiveNetworkInUpdate)
    assert not result.passed and "no longer requires gradients" in result.message


def test_an_ema_that_switches_the_live_network_to_eval_in_update_is_told_so():
    """The live network's mode is measured after every update, not only after __init__."""
    result = run_check("EMA", _LiveNetworkToEvalInUpdate)
    assert not result.passed and "eval mode" in result.message


def test_an_ema_that_keeps_averaging_its_first_live_weights_fails():
    """The check's live weights change at every update; with one set repeated, a stale snapshot would pass."""
    result = run_check("EMA", _SnapshotOfTheFirstLiveWeights)
    assert not result.passed and "the averaged weights differ" in result.message
