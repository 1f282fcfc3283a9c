"""The forward process: closed form vs the Markov chain, and the posterior q(x_{t-1} | x_t, x_0) (DDPM Eq. 2-7)."""
from __future__ import annotations

import math

import pytest
import torch

from course_utils.forward import q_posterior, q_sample, q_sample_chain
from course_utils.schedules import NoiseSchedule

N = 20000  # samples per coordinate for the empirical checks


@pytest.mark.parametrize("t", [0, 10, 300, 999])
def test_q_sample_and_chain_agree_in_mean_and_variance(linear_schedule, t):
    """Both must give mean sqrt(alpha_bar_t) x0 and variance 1 - alpha_bar_t (DDPM Eq. 4).

    Tolerances from the sample size: the mean of N draws has standard error sqrt(var / N); a sample
    variance has standard error var * sqrt(2 / (N - 1)). We allow 5 standard errors (a false alarm
    about once in 3.5 million per check), with the seed fixed so the test is deterministic anyway.
    """
    schedule = linear_schedule
    x0 = torch.tensor([[-1.0, 0.3, 0.8]]).expand(N, 3).contiguous()            # (N, 3): three fixed x0 values
    gen = torch.Generator().manual_seed(t)
    closed = q_sample(x0, torch.full((N,), t), torch.randn(x0.shape, generator=gen), schedule)
    chain = q_sample_chain(x0, t, schedule, generator=gen)
    mean = schedule.sqrt_alpha_bar[t].double() * x0[0].double()                  # (3,)
    var = 1 - schedule.alpha_bar[t].double().item()
    mean_tol = 5 * math.sqrt(var / N)
    var_tol = 5 * var * math.sqrt(2 / (N - 1))
    for name, x in (("q_sample", closed), ("q_sample_chain", chain)):
        x = x.double()
        assert torch.allclose(x.mean(0), mean, atol=mean_tol, rtol=0), (name, x.mean(0), mean)
        assert torch.allclose(x.var(0), torch.full((3,), var, dtype=torch.float64), atol=var_tol, rtol=0), \
            (name, x.var(0), var)
    # the two against each other: the difference of two independent means has sqrt(2) times the error
    assert torch.allclose(closed.double().mean(0), chain.double().mean(0), atol=math.sqrt(2) * mean_tol, rtol=0)


def test_chain_return_all_and_bad_t(linear_schedule):
    x0 = torch.zeros(4, 2)
    states = q_sample_chain(x0, 5, linear_schedule, generator=torch.Generator().manual_seed(0), return_all=True)
    assert states.shape == (7, 4, 2)
    assert torch.equal(states[0], x0)
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.999, got 1000"):
        q_sample_chain(x0, 1000, linear_schedule)


def test_q_sample_exact_formula(linear_schedule):
    schedule = linear_schedule
    x0, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 500, 999])
    xt = q_sample(x0, t, eps, schedule)
    for i in range(3):
        a = schedule.alpha_bar[t[i]]
        assert torch.allclose(xt[i], a.sqrt() * x0[i] + (1 - a).sqrt() * eps[i], atol=1e-6)


def test_posterior_mean_equals_eps_form_of_reverse_mean(linear_schedule):
    """With x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), DDPM Eq. 7's tilde mu_t equals
    1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps)  (DDPM Eq. 11)."""
    schedule = linear_schedule
    B = 64
    t = torch.cat([torch.tensor([0, 1, 2, 999]), torch.randint(0, 1000, (B - 4,))])
    xt, eps = torch.randn(B, 2, 3, 3), torch.randn(B, 2, 3, 3)
    a = schedule.gather(schedule.alpha_bar, t, 4)
    x0 = (xt - (1 - a).sqrt() * eps) / a.sqrt()
    mean, variance = q_posterior(x0, xt, t, schedule)
    betas = schedule.gather(schedule.betas, t, 4)
    eps_form = schedule.gather(schedule.sqrt_recip_alphas, t, 4) * (xt - betas / (1 - a).sqrt() * eps)
    # float32: x0 is amplified by 1/sqrt(alpha_bar) (up to ~160 at t = 999) and then scaled back down, so
    # the two forms agree to a few float32 ulps of that intermediate size.
    assert torch.allclose(mean, eps_form, atol=2e-4, rtol=1e-4), (mean - eps_form).abs().max()
    assert variance.shape == (B, 1, 1, 1)
    assert torch.equal(variance.flatten(), schedule.posterior_variance[t])


def test_posterior_is_bayes_rule(linear_schedule):
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): precisions add and means combine (float64 by hand)."""
    schedule = linear_schedule
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    t = torch.tensor([1, 50, 500, 999])
    x0, xt = torch.randn(4, 3), torch.randn(4, 3)
    mean, variance = q_posterior(x0, xt, t, schedule)
    ab_prev, beta = alpha_bar[t - 1][:, None], betas[t][:, None]
    precision = (1 - beta) / beta + 1 / (1 - ab_prev)   # from N(x_t; sqrt(alpha_t) x, beta_t) and the prior
    expected_var = 1 / precision
    expected_mean = expected_var * ((1 - beta).sqrt() * xt.double() / beta
                                    + ab_prev.sqrt() * x0.double() / (1 - ab_prev))
    assert torch.allclose(variance.double().flatten(), expected_var.flatten(), rtol=1e-4)
    assert torch.allclose(mean.double(), expected_mean, atol=1e-5, rtol=1e-4)
    # at t = 0 the posterior is a point mass at x0
    m0, v0 = q_posterior(x0[:1], xt[:1], torch.tensor([0]), schedule)
    assert v0.item() == 0.0 and torch.allclose(m0, x0[:1], atol=1e-6)


def test_bad_input_messages(linear_schedule):
    schedule = linear_schedule
    x0 = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"same shape: x0 \(2, 1, 4, 4\), eps \(2, 1, 4, 3\)"):
        q_sample(x0, torch.tensor([1, 2]), torch.randn(2, 1, 4, 3), schedule)
    with pytest.raises(TypeError, match="integer tensor"):
        q_sample(x0, torch.tensor([1.0, 2.0]), torch.randn_like(x0), schedule)
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.999"):
        q_sample(x0, torch.tensor([1, 1000]), torch.randn_like(x0), schedule)
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        q_sample(x0, torch.tensor([1, 2, 3]), torch.randn_like(x0), schedule)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, \.\.\.\)"):
        q_sample(torch.randn(4), torch.tensor([1, 2, 3, 4]), torch.randn(4), schedule)
    with pytest.raises(ValueError, match="same shape"):
        q_posterior(x0, torch.randn(2, 1, 2, 2), torch.tensor([1, 2]), schedule)
    # arguments in another order (a student's cfg_loss): the error names the signature, not a missing .shape
    t, eps = torch.tensor([1, 2]), torch.randn_like(x0)
    with pytest.raises(ValueError, match=r"^q_sample\(x0, t, eps, schedule\): these tensors must have the same "
                                         r"shape: x0 \(2, 1, 4, 4\), eps \(2,\) \(are the arguments in this order\?\)"):
        q_sample(x0, eps, t, schedule)
    with pytest.raises(TypeError, match=r"^q_sample\(x0, t, eps, schedule\): x0 must be a torch.Tensor, got "
                                        r"NoiseSchedule"):
        q_sample(schedule, x0, t, eps)
    with pytest.raises(TypeError, match=r"^q_sample\(x0, t, eps, schedule\): schedule must be a NoiseSchedule, got "
                                        r"Tensor"):
        q_sample(x0, t, schedule.betas[:2], eps)
    with pytest.raises(TypeError, match=r"^q_posterior\(x0, xt, t, schedule\): t must be an integer tensor"):
        q_posterior(x0, x0, eps[:, 0, 0, 0], schedule)
    with pytest.raises(TypeError, match=r"^q_posterior\(x0, xt, t, schedule\): t must be a torch.Tensor of dtype int64 "
                                        r"and shape \(B,\), got int$"):
        q_posterior(x0, x0, 3, schedule)
    short = NoiseSchedule.linear(T=10)
    with pytest.raises(ValueError, match=r"t must lie in 0\.\.9 \(T = 10\)"):
        q_sample(x0, torch.tensor([1, 500]), torch.randn_like(x0), short)


# ------------------------------------------------------------------ a student's wrong calls (the error audit)
def test_raw_uint8_pixels_are_refused_with_the_scaling():
    """x0 as uint8 pixels 0..255 returned x_t in [-1, 255] without a word; q_posterior would do the same."""
    schedule = NoiseSchedule.linear(T=50)
    pixels = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    eps, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 20, 49])
    with pytest.raises(TypeError, match=r"^q_sample\(x0, t, eps, schedule\): x0 must be float data \(images in "
                                        r"\[-1, 1\]\), got torch\.uint8 \(raw pixels 0\.\.255\? use "
                                        r"x0\.float\(\) / 127\.5 - 1\)"):
        q_sample(pixels, t, eps, schedule)
    with pytest.raises(TypeError, match=r"^q_posterior\(x0, xt, t, schedule\): x0 must be float data"):
        q_posterior(pixels, eps, t, schedule)
    scaled = q_sample(pixels.float() / 127.5 - 1, t, eps, schedule)
    assert scaled.abs().max() < 10


def test_q_sample_chain_takes_one_step_for_the_batch():
    """q_sample takes t (B,); q_sample_chain one int. Its per-example tensor said "Boolean value of Tensor with more
    than one value is ambiguous", the swapped schedule "'<=' not supported between 'int' and 'NoiseSchedule'", a
    float "'float' object cannot be interpreted as an integer". A 0-dim integer tensor is one step: accepted."""
    schedule = NoiseSchedule.linear(T=50)
    x0 = torch.zeros(4, 2)
    with pytest.raises(TypeError, match=r"^q_sample_chain\(x0, t, schedule\): t is one step for the whole batch, an "
                                        r"int in 0\.\.49, got a tensor of shape \(4,\) .*\(q_sample takes one t per "
                                        r"example; this chain steps every example to the same t\)"):
        q_sample_chain(x0, torch.tensor([10, 20, 30, 40]), schedule)
    with pytest.raises(TypeError, match=r"^q_sample_chain\(x0, t, schedule\): schedule must be a NoiseSchedule, got "
                                        r"int \(are the arguments in this order\?\)"):
        q_sample_chain(x0, schedule, 10)
    with pytest.raises(TypeError, match=r"t is one step for the whole batch, an int in 0\.\.49, got float 10\.0"):
        q_sample_chain(x0, 10.0, schedule)
    with pytest.raises(ValueError, match=r"^q_sample_chain\(x0, t, schedule\): t must lie in 0\.\.49, got 50"):
        q_sample_chain(x0, 50, schedule)
    run = lambda t: q_sample_chain(x0, t, schedule, generator=torch.Generator().manual_seed(1))  # noqa: E731
    assert torch.equal(run(torch.tensor(10)), run(10))


def test_a_t_of_the_wrong_length_names_x0s_shape():
    """An image without its batch dimension, x0 of shape (16, 16), reads as 16 rows: q_sample blamed t alone ("t must
    have shape (16,)"), the audit's misleading case. The message now shows x0's shape and the fix."""
    schedule = NoiseSchedule.linear(50)
    x0 = torch.zeros(16, 16)
    with pytest.raises(ValueError, match=r"^q_sample\(x0, t, eps, schedule\): t must have shape \(16,\), .*got \(1,\) "
                                         r"\(x0 has shape \(16, 16\): the batch is its first dimension; a single "
                                         r"image needs x0\[None\], \(1, C, H, W\)\)$"):
        q_sample(x0, torch.tensor([10]), torch.zeros_like(x0), schedule)
    with pytest.raises(ValueError, match=r"got values from 50 to 50$"):          # a wrong value: no shape hint
        q_sample(x0, torch.full((16,), 50), torch.zeros_like(x0), schedule)


def test_the_chain_shows_a_bar_on_request_and_draws_the_same_states(capsys):
    """Lesson 2 pushes 4,000 copies through 300 steps (5 s here): ``progress=True`` shows a bar over the t + 1
    steps and changes nothing drawn."""
    schedule, x0 = NoiseSchedule.linear(T=50), torch.randn(6, 1, 4, 4)
    quiet = q_sample_chain(x0, 29, schedule, generator=torch.Generator().manual_seed(3))
    assert "forward chain" not in capsys.readouterr().err
    shown = q_sample_chain(x0, 29, schedule, generator=torch.Generator().manual_seed(3), progress=True)
    assert "forward chain" in (err := capsys.readouterr().err) and "30/30" in err
    assert torch.equal(quiet, shown)
