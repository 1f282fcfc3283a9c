"""The course metric (course_utils.metrics): exact identities of FID/KID on features, and its behaviour on MNIST.

Real against real (two disjoint halves of the MNIST test set) sits near the floor, real against noise far
above it, and the score grows monotonically as Gaussian noise of increasing std is added to real images.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from course_utils import checkpoints, metrics
from course_utils.data import DatasetNotFoundError, load_images


# ---------------------------------------------------------------- exact identities on features
def test_fid_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 16))
    assert metrics.fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_a_shift_is_the_squared_shift():
    # shifting every feature by c leaves the covariance unchanged: FID = ||c||^2 exactly
    feats = np.random.default_rng(1).normal(size=(400, 8))
    c = np.arange(8) / 4.0
    assert metrics.fid_from_features(feats, feats + c) == pytest.approx(float((c ** 2).sum()), rel=1e-6)


def test_fid_matches_the_gaussian_formula_for_diagonal_covariances():
    # for diagonal covariances Tr(S_a + S_b - 2 sqrt(S_a S_b)) = sum (s_a - s_b)^2 over standard deviations
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200_000, 3)) * np.array([1.0, 2.0, 0.5])
    b = rng.normal(size=(200_000, 3)) * np.array([2.0, 1.0, 0.5]) + np.array([1.0, 0.0, 0.0])
    expected = 1.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    assert metrics.fid_from_features(a, b) == pytest.approx(expected, abs=0.05)


def _with_covariance(cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n points of mean 0 whose sample covariance (np.cov, N - 1) is exactly ``cov``: normal draws, whitened."""
    z = np.random.default_rng(seed).normal(size=(n, len(cov)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T           # sample covariance I
    return z @ np.linalg.cholesky(cov).T


def test_fid_of_two_correlated_covariances_is_the_closed_form():
    """S_a = [[1, 3], [3, 10]], S_b = [[1, -3], [-3, 10]], equal means: S_a S_b = [[-8, 27], [-27, 91]] has trace 83
    and determinant 1, and for a 2x2 matrix with positive eigenvalues Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M)) =
    sqrt(85), so FID = 11 + 11 - 2 sqrt(85) = 3.561. sqrt(S_a S_b) has a negative diagonal entry here: an FID that
    took its absolute value instead of its real part would give 0.524."""
    a = _with_covariance(np.array([[1.0, 3.0], [3.0, 10.0]]), 50, seed=0)
    b = _with_covariance(np.array([[1.0, -3.0], [-3.0, 10.0]]), 70, seed=1)
    assert metrics.fid_from_features(a, b) == pytest.approx(22 - 2 * np.sqrt(85), rel=1e-9)


def test_fid_regularises_a_product_whose_square_root_is_not_finite(monkeypatch):
    """When sqrtm(S_a S_b) comes back with NaN or inf (a near-singular product), the FID is computed again with
    1e-6 added to both diagonals, as pytorch-fid does: finite, and within 1e-4 of the exact value."""
    real_sqrtm, calls = metrics.scipy.linalg.sqrtm, []

    def fails_once(m):
        calls.append(m)
        return np.full_like(m, np.nan) if len(calls) == 1 else real_sqrtm(m)
    monkeypatch.setattr(metrics.scipy.linalg, "sqrtm", fails_once)
    a = _with_covariance(np.array([[1.0, 3.0], [3.0, 10.0]]), 50, seed=0)
    b = _with_covariance(np.array([[1.0, -3.0], [-3.0, 10.0]]), 70, seed=1)
    assert metrics.fid_from_features(a, b) == pytest.approx(22 - 2 * np.sqrt(85), abs=1e-4)
    assert len(calls) == 2


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    same, std = metrics.kid_from_features(a, b, num_subsets=20, subset_size=200)
    shifted, _ = metrics.kid_from_features(a, b + 0.5, num_subsets=20, subset_size=200)
    assert abs(same) < 3 * std + 1e-3
    assert shifted > 20 * abs(same) and shifted > 0


def test_kid_warns_when_every_subset_is_the_whole_set_and_half_subsets_give_a_real_spread():
    # the lab once printed "KID ... +- 0.0000": 500 images against 500 with the default subset_size 500
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(100, 8)), rng.normal(size=(100, 8)) + 0.3
    with pytest.warns(UserWarning, match="subset_size=50"):
        _, std_whole = metrics.kid_from_features(a, b, num_subsets=10)
    assert std_whole == pytest.approx(0.0, abs=1e-12)  # permuted sums: 0 up to rounding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean_half, std_half = metrics.kid_from_features(a, b, num_subsets=10, subset_size=50)
        metrics.kid_from_features(a, np.concatenate([b, b]), num_subsets=10)  # one set larger: no warning
    assert std_half > 0 and mean_half > 0


def test_calibration_of_a_constant_confidence_is_the_gap_to_the_accuracy():
    # every sample has confidence 0.8 on class 0; 3 of 5 are class 0: accuracy 0.6, ECE |0.6 - 0.8| = 0.2
    probs = torch.tensor([[0.8, 0.2]] * 5)
    c = metrics.calibration(probs, torch.tensor([0, 0, 0, 1, 1]))
    assert c == pytest.approx(dict(accuracy=0.6, confident=0.0, ece=0.2))


def test_calibration_bins_are_closed_on_the_right():
    """Guo et al.'s bins are ((m - 1) / M, m / M]: with 4 bins a confidence of 0.5 falls in (0.25, 0.5] and 0.6 in
    (0.5, 0.75], so a right 0.5 and a wrong 0.6 give ECE = 0.5 |1 - 0.5| + 0.5 |0 - 0.6| = 0.55 (in one bin, as
    left-closed bins [0.5, 0.75) would put them, 0.05)."""
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]])
    c = metrics.calibration(probs, torch.tensor([0, 1]), bins=4)
    assert c == pytest.approx(dict(accuracy=0.5, confident=0.0, ece=0.55))


def test_calibration_is_near_zero_when_labels_are_drawn_from_the_probabilities():
    gen = torch.Generator().manual_seed(5)
    probs = (3 * torch.randn(200_000, 10, generator=gen)).softmax(-1)
    labels = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    assert metrics.calibration(probs, labels)["ece"] < 0.01


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_fit_temperature_recovers_the_temperature_of_the_data():
    gen = torch.Generator().manual_seed(6)
    z = 2 * torch.randn(50_000, 10, generator=gen)
    labels = torch.multinomial(z.softmax(-1), 1, generator=gen).squeeze(1)
    assert metrics.fit_temperature(2.0 * z, labels) == pytest.approx(2.0, abs=0.05)  # too sharp by 2
    assert metrics.fit_temperature(0.5 * z, labels) == pytest.approx(0.5, abs=0.02)  # too flat by 2


def test_polynomial_kernel_is_the_cubic_kernel():
    a, b = np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]])
    assert metrics.polynomial_kernel(a, b)[0, 0] == pytest.approx(((1 * 3 + 2 * -1) / 2 + 1) ** 3)  # 1.5^3


def test_bad_shapes_say_what_to_fix():
    clf = metrics.feature_classifier()
    with pytest.raises(ValueError, match="28x28"):
        metrics.features(torch.zeros(4, 1, 16, 16), clf)
    with pytest.raises(ValueError, match="labels must have shape"):
        metrics.class_accuracy(torch.zeros(4, 1, 28, 28), torch.zeros(3), clf)


# ---------------------------------------------------------------- on MNIST with the course classifier
@pytest.fixture(scope="module")
def mnist_test():
    try:
        x, y = load_images("mnist", split="test")
    except DatasetNotFoundError as err:
        from conftest import skip_or_fail
        skip_or_fail(f"MNIST is needed for the metric tests: {err}")
    return x[:4000], y[:4000]


@pytest.fixture(scope="module")
def classifier():
    return metrics.feature_classifier()


def test_real_vs_real_is_near_the_floor_and_noise_far_above(mnist_test, classifier):
    x, _ = mnist_test
    a, b = x[:2000], x[2000:]
    fa, fb = metrics.features(a, classifier), metrics.features(b, classifier)
    noise = torch.randn(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    fn = metrics.features(noise, classifier)
    real_fid, noise_fid = metrics.fid_from_features(fa, fb), metrics.fid_from_features(fa, fn)
    real_kid, noise_kid = metrics.kid_from_features(fa, fb, num_subsets=20)[0], \
        metrics.kid_from_features(fa, fn, num_subsets=20)[0]
    assert noise_fid > 50 * real_fid, (real_fid, noise_fid)
    assert noise_kid > 100 * abs(real_kid), (real_kid, noise_kid)


def test_the_score_grows_with_added_noise(mnist_test, classifier):
    x, _ = mnist_test
    a, b = x[:2000], x[2000:]
    fa = metrics.features(a, classifier)
    gen = torch.Generator().manual_seed(1)
    eps = torch.randn(b.shape, generator=gen)
    fids = [metrics.fid_from_features(fa, metrics.features((b + std * eps).clamp(-1, 1), classifier))
            for std in (0.0, 0.1, 0.2, 0.4, 0.8)]
    assert all(lo < hi for lo, hi in zip(fids, fids[1:])), fids


def test_class_accuracy_of_real_images_is_high(mnist_test, classifier):
    x, y = mnist_test
    assert metrics.class_accuracy(x[:1000], y[:1000], classifier) > 0.95
    assert metrics.class_accuracy(x[:1000], (y[:1000] + 1) % 10, classifier) < 0.05


def test_the_held_out_judge_is_calibrated_on_real_digits(mnist_test):
    # "confidence > 0.9" in the quality target only means something if the judge is calibrated
    x, y = mnist_test
    logits = metrics.predict_logits(x, checkpoints.load("mnist-eval-classifier")[0])
    half = len(x) // 2
    T = metrics.fit_temperature(logits[:half], y[:half])
    c = metrics.calibration(logits[half:].softmax(-1), y[half:])
    assert 0.8 <= T <= 1.25, T
    assert c["ece"] < 0.01 and c["accuracy"] > 0.98, c


def test_within_class_spread_is_the_mean_pairwise_distance_per_class():
    """Class 0: two points 5 apart (mean over ordered pairs: 5); class 1: 0, 1, 2 on a line (8 / 6 = 4/3)."""
    feats = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [9.0, 9.0]])
    labels = np.array([0, 0, 1, 1, 1, 2])          # class 2 has one point: no pair, left out
    assert metrics.within_class_spread(feats, labels) == pytest.approx((5 + 4 / 3) / 2)


def test_within_class_spread_without_a_pair_is_nan_without_a_warning():
    """One sample per class (as 8 real test images of 10 classes can give): no pair to measure, nan, quietly;
    a single class with a pair is measured on its own (3, 4 apart: 5)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(metrics.within_class_spread(np.eye(3), np.array([0, 1, 2])))
        assert np.isnan(metrics.within_class_spread(np.zeros((0, 2)), np.zeros(0, dtype=int)))
        assert metrics.within_class_spread(np.array([[0.0, 0], [3, 4], [7, 7]]), np.array([1, 1, 2])) == 5.0


def test_features_show_a_bar_over_the_batches_on_request(capsys):
    """Lesson 5 reads the features of all 10,000 test digits (4 s here) with ``progress=True``: a bar over the
    batches, the same features."""
    images = torch.rand(7, 1, 28, 28) * 2 - 1
    net = metrics.feature_classifier()
    quiet = metrics.features(images, net, batch_size=3)
    assert "features" not in capsys.readouterr().err
    shown = metrics.features(images, net, batch_size=3, progress=True)
    assert "features" in (err := capsys.readouterr().err) and "3/3" in err
    assert np.array_equal(quiet, shown)
