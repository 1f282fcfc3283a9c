"""Known answers and identities for the formulas that the other test files check only by shape, sign or consistency.

Each test compares a formula of ``course_utils`` with an answer that does not come from the formula itself: a closed
form (log-SNR at chosen alpha_bar, the sinusoidal features at chosen t, the Frechet distance of two 2-D Gaussians,
the exact noise predictor of a Gaussian, the exact classifier of a noisy mixture), an identity of the math (DDPM's
posterior, DDIM's sigma on a respaced chain, KID through the cubic kernel's explicit feature map) or the law that a
sampler must obey in the limit (DDIM with the exact eps of N(mu, s^2) returns N(mu, s^2); DDIM inversion follows
the probability-flow ODE; the minimum of L_simple is the posterior variance of eps). Every test fails for a wrong
formula (a missing square root, a swapped coefficient, a biased estimator), and the file runs in seconds on one core.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from course_utils import metrics
from course_utils.analytic import GaussianMixtureEps
from course_utils.data import TWO_GAUSSIANS, GaussianMixture
from course_utils.guidance import predict_eps
from course_utils.nets import sinusoidal_embedding
from course_utils.samplers import ddim_invert, ddim_sample, ddim_sigma, ddim_step, ddim_timesteps
from course_utils.schedules import NoiseSchedule
from course_utils.solvers import edm_sigma, half_log_snr
from course_utils.training import TrainConfig, diffusion_loss, learning_rate

MU, S, D = 0.5, 0.4, 3          # a single Gaussian N(MU, S^2 I) in D dimensions


def _single_gaussian(schedule: NoiseSchedule) -> GaussianMixtureEps:
    return GaussianMixtureEps(GaussianMixture(weights=(1.0,), means=((MU,) * D,), stds=(S,)), schedule)


# ------------------------------------------------------------------ schedules
def test_log_snr_and_half_log_snr_known_values():
    """log-SNR = log(alpha_bar / (1 - alpha_bar)), lambda = log-SNR / 2: betas 0.2, 0.5 give alpha_bar 0.8, 0.4,
    so log-SNR = log 4, log(2/3); alpha_bar 1/2 is SNR 1 (log-SNR 0); Ho et al.'s first step, log(0.9999 / 1e-4)."""
    schedule = NoiseSchedule.from_betas(torch.tensor([0.2, 0.5], dtype=torch.float64))
    assert schedule.log_snr().tolist() == pytest.approx([math.log(4.0), math.log(2 / 3)], rel=1e-6)
    lam = half_log_snr(torch.tensor([0.8, 0.4, 0.5], dtype=torch.float64))
    assert lam.tolist() == pytest.approx([math.log(2.0), 0.5 * math.log(2 / 3), 0.0], abs=1e-12)
    assert NoiseSchedule.linear().log_snr()[0].item() == pytest.approx(math.log(0.9999 / 1e-4), rel=1e-4)
    assert edm_sigma(torch.tensor(0.8, dtype=torch.float64)).item() == pytest.approx(0.5, abs=1e-12)  # sqrt(.2/.8)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_posterior_coefficients_obey_the_identities_of_ddpm_eq7(name):
    """With c0 = posterior_mean_coef_x0, ct = posterior_mean_coef_xt, tilde beta = posterior_variance:

    - a noise-free x_t = sqrt(alpha_bar_t) x0 has posterior mean sqrt(alpha_bar_{t-1}) x0:
          c0 + ct sqrt(alpha_bar_t) = sqrt(alpha_bar_{t-1})
    - total variance: Var(x_{t-1} | x0) = ct^2 Var(x_t | x0) + tilde beta:
          ct^2 (1 - alpha_bar_t) + tilde beta = 1 - alpha_bar_{t-1}
    - sqrt_recip_alphas^2 alpha_t = 1.
    The cosine schedule's clipped last beta (0.999) is included.
    """
    s = getattr(NoiseSchedule, name)(T=1000)
    ab, ab_prev = s.alpha_bar.double(), s.alpha_bar_prev.double()
    c0, ct, var = s.posterior_mean_coef_x0.double(), s.posterior_mean_coef_xt.double(), s.posterior_variance.double()
    assert torch.allclose(c0 + ct * ab.sqrt(), ab_prev.sqrt(), atol=2e-6, rtol=0)
    assert torch.allclose(ct ** 2 * (1 - ab) + var, 1 - ab_prev, atol=2e-6, rtol=0)
    assert torch.allclose(s.sqrt_recip_alphas.double() ** 2 * s.alphas.double(), torch.ones(1000, dtype=torch.float64),
                          atol=1e-6, rtol=0)


def test_ddim_eta1_on_a_sub_grid_is_ddpm_on_the_respaced_chain():
    """Song et al. (Eq. 16, eta = 1) on a grid t_k > t_{k-1} is ancestral sampling of the K-step chain that
    ``respace`` builds (Nichol and Dhariwal Sec. 4): ddim_sigma^2 = the respaced tilde beta_k, and the step is
        x_prev = 1/sqrt(alpha_k) (x_t - beta_k / sqrt(1 - alpha_bar_k) eps_pred) + sqrt(tilde beta_k) z."""
    long_chain = NoiseSchedule.cosine(1000)
    kept = torch.tensor([0, 40, 300, 301, 650, 999])
    short = long_chain.respace(kept)
    ab = long_chain.alpha_bar.double()
    sigmas = torch.stack([ddim_sigma(long_chain, int(kept[k]), int(kept[k - 1]) if k else -1, 1.0)
                          for k in range(len(kept))]).double()
    assert torch.allclose(sigmas ** 2, short.posterior_variance.double(), rtol=1e-4, atol=1e-10)
    gen = torch.Generator().manual_seed(0)
    x, eps_pred, z = (torch.randn(8, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    for k in range(1, len(kept)):
        got, _ = ddim_step(x, eps_pred, ab[kept[k]], ab[kept[k - 1]], eta=1.0, noise=z)
        mean = short.sqrt_recip_alphas[k].double() * (x - short.betas[k].double()
                                                       / short.sqrt_one_minus_alpha_bar[k].double() * eps_pred)
        expected = mean + short.posterior_variance[k].double().sqrt() * z
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (k, (got - expected).abs().max())


# ------------------------------------------------------------------ the exact noise predictor
def test_exact_eps_of_a_single_gaussian_is_the_closed_form(linear_schedule):
    """x0 ~ N(mu, s^2 I): x_t ~ N(sqrt(ab) mu, (ab s^2 + 1 - ab) I), so by Tweedie
        eps*(x_t) = (x_t - sqrt(ab) mu) sqrt(1 - ab) / (ab s^2 + 1 - ab)."""
    model = _single_gaussian(linear_schedule)
    t = torch.tensor([0, 10, 250, 500, 999])
    xt = torch.randn(5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    ab = linear_schedule.alpha_bar.double()[t][:, None]
    expected = (xt - ab.sqrt() * MU) * (1 - ab).sqrt() / (ab * S ** 2 + 1 - ab)
    assert torch.allclose(model(xt, t), expected, atol=1e-12, rtol=1e-10)


def test_exact_eps_of_a_mixture_is_minus_sqrt_one_minus_ab_times_the_score(linear_schedule):
    """eps*(x_t) = -sqrt(1 - ab) grad log p_t(x_t), with p_t = sum_k w_k N(sqrt(ab) mu_k, (ab s_k^2 + 1 - ab) I)
    written with torch.distributions and differentiated by autograd; conditioned on y = k it is component k's
    closed form, and y = -1 is the unconditional eps*."""
    mix = TWO_GAUSSIANS
    model = GaussianMixtureEps(mix, linear_schedule)
    gen = torch.Generator().manual_seed(2)
    for t in (5, 200, 450, 800):
        ab = linear_schedule.alpha_bar.double()[t]
        means = ab.sqrt() * torch.tensor(mix.means, dtype=torch.float64)                        # (K, 2)
        stds = (ab * torch.tensor(mix.stds, dtype=torch.float64) ** 2 + 1 - ab).sqrt()            # (K,)
        p_t = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=torch.tensor(mix.weights, dtype=torch.float64)),
            torch.distributions.Independent(torch.distributions.Normal(means, stds[:, None].expand(-1, 2)), 1))
        xt = (0.7 * torch.randn(16, 2, generator=gen, dtype=torch.float64)).requires_grad_(True)
        (score,) = torch.autograd.grad(p_t.log_prob(xt).sum(), xt)
        tt = torch.full((16,), t)
        assert torch.allclose(model(xt.detach(), tt), -(1 - ab).sqrt() * score, atol=1e-10), t
        for k in range(2):
            component = (xt.detach() - means[k]) * (1 - ab).sqrt() / stds[k] ** 2
            assert torch.allclose(model(xt.detach(), tt, torch.full((16,), k)), component, atol=1e-10), (t, k)
        assert torch.equal(model(xt.detach(), tt, torch.full((16,), -1)), model(xt.detach(), tt))


# ------------------------------------------------------------------ guidance
def _exact_noisy_classifier(mixture: GaussianMixture, schedule: NoiseSchedule):
    """log p(y = k | x_t) up to a constant: log w_k - ||x_t - sqrt(ab) mu_k||^2 / (2 v_k) - D/2 log v_k (logits)."""
    log_w = torch.tensor(mixture.weights, dtype=torch.float64).log()
    means = torch.tensor(mixture.means, dtype=torch.float64)
    var = torch.tensor(mixture.stds, dtype=torch.float64) ** 2

    def classifier(x, t):
        ab = schedule.alpha_bar.double()[t][:, None]                                          # (B, 1)
        v = ab * var[None] + 1 - ab                                                            # (B, K)
        dist2 = ((x.double()[:, None, :] - ab.sqrt()[:, :, None] * means[None]) ** 2).sum(-1)  # (B, K)
        return log_w[None] - 0.5 * dist2 / v - 0.5 * means.shape[1] * v.log()
    return classifier


@pytest.mark.parametrize("w", [1.0, 3.0])
def test_cfg_equals_classifier_guidance_with_the_exact_classifier(linear_schedule, w):
    """Bayes: grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t), and eps = -sqrt(1 - ab) score, so
        eps_uncond + w (eps_cond - eps_uncond) = eps_uncond - w sqrt(1 - ab) grad log p(y | x_t)
    (Ho and Salimans Eq. 6 with our w; Dhariwal and Nichol Eq. 14 from the unconditional model). At w = 1 both
    are the conditional eps*."""
    model = GaussianMixtureEps(TWO_GAUSSIANS, linear_schedule)
    clf = _exact_noisy_classifier(TWO_GAUSSIANS, linear_schedule)
    gen = torch.Generator().manual_seed(3)
    xt = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    t = torch.randint(100, 900, (32,), generator=gen)
    y = torch.arange(32) % 2
    cfg = predict_eps(model, xt, t, y=y, guidance_scale=w)
    classifier_guided = predict_eps(model, xt, t, y=y, guidance_scale=0.0, classifier=clf, classifier_scale=w,
                                    schedule=linear_schedule)
    # classifier_grad takes log_softmax in float32: agreement to float32 round-off
    assert torch.allclose(classifier_guided, cfg, atol=1e-5, rtol=1e-5), (classifier_guided - cfg).abs().max()
    if w == 1.0:
        assert torch.allclose(classifier_guided, model(xt, t, y), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ samplers against the exact eps
def test_ddim_eta0_with_the_exact_eps_of_a_gaussian_returns_that_gaussian(linear_schedule):
    """eps* of N(MU, S^2) is affine in x_t, so deterministic DDIM is an affine map x_0 = A x_T + B, and from
    x_T ~ N(0, 1) the output is N(B, A^2): B = the sample from x_T = 0, A = (sample from 1) - (sample from 0),
    both exact (no sampling error). They must approach MU and S as the steps grow, at first order (Euler):
    measured |B - MU|, |A - S|: 10 steps 0.002, 0.118; 100: 0.0013, 0.013; 1000: 0.0013, 0.0015. What is left
    at 1000 steps is the prior's mismatch: x_T ~ N(0, 1) instead of N(sqrt(ab_T) MU, ~1), MU S / 156 = 0.0013."""
    model = _single_gaussian(linear_schedule)
    errors = {}
    for n in (10, 100, 1000):
        zero, one = (ddim_sample(model, linear_schedule, (1, D), x_T=torch.full((1, D), v, dtype=torch.float64),
                                 num_steps=n, progress=False) for v in (0.0, 1.0))
        errors[n] = ((zero - MU).abs().max().item(), (one - zero - S).abs().max().item())
    assert errors[1000][0] < 0.005 * MU + 0.0013 and errors[1000][1] < 0.005 * S, errors
    assert errors[10][1] > 5 * errors[100][1] > 25 * errors[1000][1], errors         # first order: ~10x per 10x


def test_ddim_invert_with_a_constant_eps_is_the_closed_form_forward_process(linear_schedule):
    """If eps_pred = c everywhere, d x_bar / d edm_sigma = c (DDIM Eq. 14) integrates exactly: inversion from x0
    to the last grid time t_K gives x_bar = x0 + edm_sigma_K c, i.e. x_K = sqrt(ab_K) x0 + sqrt(1 - ab_K) c,
    which is q_sample(x0, t_K, eps = c); and DDIM from there returns x0 exactly."""
    c = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    constant = lambda xt, t: c.expand_as(xt)
    x0 = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ab = linear_schedule.alpha_bar.double()
    for n in (1, 7, 50):
        t_last = int(ddim_timesteps(1000, n)[0])
        latent = ddim_invert(constant, linear_schedule, x0, num_steps=n)
        assert torch.allclose(latent, ab[t_last].sqrt() * x0 + (1 - ab[t_last]).sqrt() * c, atol=1e-6), n
        back = ddim_sample(constant, linear_schedule, x0.shape, x_T=latent, num_steps=n, progress=False)
        assert torch.allclose(back, x0, atol=1e-5), n


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_ddim_invert_follows_the_exact_ode_of_a_gaussian(linear_schedule):
    """For N(MU, S^2) the probability-flow ODE is solved in closed form (tests/test_solvers.py):
        x_bar(sigma) - MU = (x0 - MU) sqrt(S^2 + sigma^2) / S,  x_t = sqrt(ab_t) x_bar(edm_sigma_t).
    Inversion (an explicit first-order scheme) must converge to it: measured max error 0.107 at 50 steps, 0.025
    at 200, 0.0041 at 1000 (latents up to 3.8)."""
    model = _single_gaussian(linear_schedule)
    ab = linear_schedule.alpha_bar.double()
    x0 = torch.linspace(-1, 2, 5, dtype=torch.float64)[:, None].expand(5, D).contiguous()
    errors = {}
    for n in (50, 200, 1000):
        t_last = int(ddim_timesteps(1000, n)[0])
        sigma = edm_sigma(ab[t_last])
        exact = ab[t_last].sqrt() * (MU + (x0 - MU) * (S ** 2 + sigma ** 2).sqrt() / S)
        errors[n] = (ddim_invert(model, linear_schedule, x0, num_steps=n) - exact).abs().max().item()
    assert errors[1000] < 0.01 and errors[50] > 3 * errors[200] > 9 * errors[1000], errors


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("t", [10, 300, 700])
def test_l_simple_of_the_exact_eps_is_the_posterior_variance_of_eps(linear_schedule, t):
    """The MSE-optimal eps_pred is E[eps | x_t]; its loss is Var(eps | x_t) per coordinate. For N(MU, S^2):
        eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab),  Var(eps | x_t) = 1 - (1 - ab) / (ab S^2 + 1 - ab)
                                                                  = ab S^2 / (ab S^2 + 1 - ab).
    The residual is N(0, m) per coordinate, so the mean of n squares has standard error m sqrt(2 / n)."""
    model = _single_gaussian(linear_schedule)
    n_points = 20000
    gen = torch.Generator().manual_seed(t)
    x0 = MU + S * torch.randn(n_points, D, generator=gen)
    loss = diffusion_loss(model, linear_schedule, x0, t=torch.full((n_points,), t), generator=gen).item()
    ab = linear_schedule.alpha_bar.double()[t].item()
    m = ab * S ** 2 / (ab * S ** 2 + 1 - ab)
    assert abs(loss - m) < 5 * m * math.sqrt(2 / (n_points * D)), (loss, m)


@pytest.mark.parametrize("t", [10, 300, 700])
def test_l1_noise_loss_of_the_exact_eps_is_the_mean_absolute_residual(linear_schedule, t):
    """The same residual eps - E[eps | x_t] is N(0, m) per coordinate (m as above), so with noise_loss="l1" the
    loss is E|r| = sqrt(2 m / pi), with standard error sqrt(m (1 - 2 / pi) / n). (For Gaussian data the posterior
    mean is also the posterior median, the L1-optimal eps_pred: the exact eps minimises both losses.)"""
    model = _single_gaussian(linear_schedule)
    n_points = 20000
    gen = torch.Generator().manual_seed(t)
    x0 = MU + S * torch.randn(n_points, D, generator=gen)
    loss = diffusion_loss(model, linear_schedule, x0, t=torch.full((n_points,), t), generator=gen,
                          noise_loss="l1").item()
    ab = linear_schedule.alpha_bar.double()[t].item()
    m = ab * S ** 2 / (ab * S ** 2 + 1 - ab)
    assert abs(loss - math.sqrt(2 * m / math.pi)) < 5 * math.sqrt(m * (1 - 2 / math.pi) / (n_points * D)), (loss, m)


def test_learning_rate_warm_up_without_cosine_and_cosine_without_warm_up():
    """The two branches tests/test_training.py leaves out: lr (step + 1) / warmup_steps, then constant; and with
    no warm-up, lr (1 + cos(pi step / decay_steps)) / 2, 0 from decay_steps on."""
    warm = TrainConfig(lr=1.0, warmup_steps=4)
    assert [learning_rate(warm, s) for s in (0, 1, 2, 3, 4, 100)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    cosine = TrainConfig(lr=2.0, lr_schedule="cosine", decay_steps=4)
    half = math.sqrt(2) / 2                                                    # cos(pi / 4)
    assert [learning_rate(cosine, s) for s in (0, 1, 2, 3, 4, 9)] == pytest.approx(
        [2.0, 1 + half, 1.0, 1 - half, 0.0, 0.0], abs=1e-12)


# ------------------------------------------------------------------ nets
def test_sinusoidal_embedding_known_values():
    """w_i = max_period^(-i / (dim/2)): dim 8, max_period 10^4 gives w = 1, 0.1, 0.01, 0.001, and the features are
    [sin(t w), cos(t w)]; an odd dim pads one zero; max_period 100 with dim 4 gives w = 1, 0.1."""
    t = torch.tensor([1, 100, 777])
    emb = sinusoidal_embedding(t, 9)
    for row, tv in zip(emb, t.tolist()):
        args = [tv * w for w in (1.0, 0.1, 0.01, 0.001)]
        expected = [math.sin(a) for a in args] + [math.cos(a) for a in args] + [0.0]
        assert row.tolist() == pytest.approx(expected, abs=2e-5), tv              # float32 arguments up to 777
    small = sinusoidal_embedding(torch.tensor([3]), 4, max_period=100.0)[0]
    assert small.tolist() == pytest.approx([math.sin(3), math.sin(0.3), math.cos(3), math.cos(0.3)], abs=1e-6)


# ------------------------------------------------------------------ metrics
def _with_exact_moments(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n points whose sample mean and (N - 1)-normalised sample covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T                  # sample cov = I
    return z @ np.linalg.cholesky(cov).T + mean


def test_fid_of_two_gaussians_with_full_covariances_is_the_closed_form():
    """FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b) - 2 Tr((S_a S_b)^(1/2)), and for 2 x 2 covariances the eigenvalues
    l1, l2 of S_a S_b (real, positive) give Tr((S_a S_b)^(1/2)) = sqrt(l1) + sqrt(l2) = sqrt(Tr(S_a S_b) + 2 sqrt(
    det S_a det S_b)). The covariances do not commute, so sqrtm(S_a) sqrtm(S_b) would be wrong here."""
    mu_a, mu_b = np.array([0.0, 0.0]), np.array([1.0, -2.0])
    s_a, s_b = np.array([[4.0, 1.9], [1.9, 1.0]]), np.array([[1.0, -0.9], [-0.9, 4.0]])
    a, b = _with_exact_moments(mu_a, s_a, 300, 0), _with_exact_moments(mu_b, s_b, 400, 1)
    tr_sqrt = math.sqrt(np.trace(s_a @ s_b) + 2 * math.sqrt(np.linalg.det(s_a) * np.linalg.det(s_b)))
    expected = 5.0 + (5.0 + 5.0) - 2 * tr_sqrt                                  # = 9.7805...
    assert metrics.fid_from_features(a, b) == pytest.approx(expected, rel=1e-9)
    wrong = 5.0 + 10.0 - 2 * np.trace(np.real(scipy.linalg.sqrtm(s_a) @ scipy.linalg.sqrtm(s_b)))
    assert abs(wrong - expected) > 0.05, "the case must tell the two apart (9.845 vs 9.781)"


def _cubic_feature_map(u: np.ndarray) -> np.ndarray:
    """phi with <phi(u), phi(v)> = (u.v / d + 1)^3 = 1 + 3 z + 3 z^2 + z^3, z = u.v / d and (u.v)^k = <u^(x)k, v^(x)k>:
    phi(u) = [1, sqrt(3 / d) u, sqrt(3) / d u (x) u, d^(-3/2) u (x) u (x) u], shape (n, 1 + d + d^2 + d^3)."""
    n, d = u.shape
    outer2 = np.einsum("ni,nj->nij", u, u).reshape(n, -1)
    outer3 = np.einsum("ni,nj,nk->nijk", u, u, u).reshape(n, -1)
    return np.concatenate([np.ones((n, 1)), math.sqrt(3 / d) * u, math.sqrt(3) / d * outer2, d ** -1.5 * outer3], 1)


def test_kid_is_the_unbiased_mmd_through_the_explicit_feature_map():
    """With phi the cubic kernel's feature map and S = sum_i phi(a_i) (m points per set):
        MMD^2_u = (||S_a||^2 - sum_i ||phi(a_i)||^2) / (m (m - 1)) + (the same for b) - 2 <S_a, S_b> / m^2
    (the i = j terms left out: Binkowski et al. Eq. 4). One subset of all points: the statistic itself."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(60, 3)), 0.8 * rng.normal(size=(60, 3)) + 0.3
    pa, pb = _cubic_feature_map(a), _cubic_feature_map(b)
    assert np.allclose(pa @ pb.T, metrics.polynomial_kernel(a, b), rtol=1e-12)     # the map is the kernel's
    m = 60
    sa, sb = pa.sum(0), pb.sum(0)
    expected = ((sa @ sa - (pa ** 2).sum()) / (m * (m - 1)) + (sb @ sb - (pb ** 2).sum()) / (m * (m - 1))
                - 2 * sa @ sb / m ** 2)
    value, spread = metrics.kid_from_features(a, b, num_subsets=1, subset_size=m)
    assert value == pytest.approx(expected, rel=1e-10) and spread == 0.0


class _FixedProbabilities(nn.Module):
    """A 'classifier' of 28x28 images filled with the value v in {0, 1, 2, 3}: probabilities PROBS[v] (logits: log)."""

    PROBS = torch.tensor([[0.95, 0.03, 0.02], [0.2, 0.7, 0.1], [0.05, 0.1, 0.85], [0.01, 0.01, 0.98]])

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))        # metrics read the device from the parameters

    def forward(self, x):
        return self.PROBS[x[:, 0, 0, 0].round().long()].log() + self.anchor


def test_confident_share_and_class_counts_known_answer():
    """Six images with top probabilities 0.95, 0.95, 0.7, 0.85, 0.98, 0.98 (argmax 0, 0, 1, 2, 2, 2): above the
    threshold 0.9 are 4 of 6, and the class counts are (2, 1, 3); at threshold 0.8 it is 5 of 6."""
    values = torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0, 3.0])
    images = values[:, None, None, None].expand(6, 1, 28, 28).contiguous()
    share, counts = metrics.confident_share(images, _FixedProbabilities(), 0.9)
    assert share == pytest.approx(4 / 6) and counts.tolist() == [2, 1, 3]
    assert metrics.confident_share(images, _FixedProbabilities(), 0.8)[0] == pytest.approx(5 / 6)
    # a class no image goes to still has its count: (K,) whatever the samples (all class 0 here: (2, 0, 0))
    assert metrics.confident_share(images[:2], _FixedProbabilities())[1].tolist() == [2, 0, 0]


def test_shares_are_exact_counts_over_n():
    """950 of 1000 images confident, and 950 of 1000 labels right, is 0.95 itself, the double issue 18's targets
    compare with (a float32 mean gave 0.949999988, a met target judged missed)."""
    values = torch.tensor([0.0] * 950 + [1.0] * 50)                     # 0.95 confident class 0; 0.7 class 1
    images = values[:, None, None, None].expand(1000, 1, 28, 28).contiguous()
    assert metrics.confident_share(images, _FixedProbabilities(), 0.9)[0] == 0.95
    assert metrics.class_accuracy(images, torch.zeros(1000), _FixedProbabilities()) == 0.95
