"""The course's sample-quality metric: FID and KID on the features of the course's own MNIST classifier.

- FID (Heusel et al. 2017, Eq. 6 / the "Frechet distance" of two Gaussians fitted to features):
      FID = ||mu_a - mu_b||^2 + Tr(Sigma_a + Sigma_b - 2 (Sigma_a Sigma_b)^(1/2))
- KID (Binkowski et al. 2018, Sec. 3 / Eq. 4): the unbiased estimate of the squared MMD with the cubic
  polynomial kernel k(u, v) = (u . v / d + 1)^3, averaged over random subsets.
- ``class_accuracy``: the share of class-conditional samples that a classifier assigns to the class asked for.
- ``calibration`` / ``fit_temperature``: whether a judge's confidence can be trusted (ECE, Guo et al. 2017).

IMPORTANT: the features are the 128-dimensional penultimate activations (``NoisyClassifier.features``) of
the small pretrained ``mnist-classifier`` (28x28 grey images), NOT of Inception-v3. These FID and KID numbers
are only comparable with each other (same classifier, same number of samples); they are NOT comparable with
the Inception-based FID of papers and leaderboards. FID is biased upwards for small sample sizes: compare
numbers computed from the same number of images.

Shapes: images (N, 1, 28, 28) float in [-1, 1]; labels (N,) int64; features (N, D) float64 numpy arrays.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from .progress import tqdm

FEATURE_CLASSIFIER = "mnist-classifier"


def feature_classifier(device: torch.device | str = "cpu") -> nn.Module:
    """The pretrained clean classifier whose features the metric uses (``mnist-classifier``)."""
    from .checkpoints import load
    return load(FEATURE_CLASSIFIER, device=device)[0]


def _check_images(images: Tensor, classifier: nn.Module) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W) in [-1, 1], got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    want = getattr(classifier, "config", {}).get("in_channels", images.shape[1])
    if images.shape[1] != want:
        raise ValueError(f"the classifier expects {want} channel(s), the images have {images.shape[1]}")
    if images.shape[-2:] != (28, 28):
        raise ValueError(f"the metric's classifier was trained on 28x28 MNIST images, got {tuple(images.shape[-2:])}; "
                         "resize first (torch.nn.functional.interpolate)")


@torch.no_grad()
def features(images: Tensor, classifier: nn.Module | None = None, *, batch_size: int = 500,
             progress: bool = False) -> np.ndarray:
    """The classifier's penultimate features of images (N, 1, 28, 28) in [-1, 1]: (N, D) float64. ``progress``
    shows a bar over the batches."""
    classifier = classifier if classifier is not None else feature_classifier()
    _check_images(images, classifier)
    device = next(classifier.parameters()).device
    starts = tqdm(range(0, images.shape[0], batch_size), desc="features", unit="batch", disable=not progress,
                  leave=False)
    out = [classifier.features(images[i:i + batch_size].to(device).float()).double().cpu() for i in starts]
    return torch.cat(out).numpy()


def fid_from_features(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID = ||mu_a - mu_b||^2 + Tr(Sigma_a + Sigma_b - 2 sqrtm(Sigma_a Sigma_b)) of two (N, D) feature sets."""
    if feats_a.ndim != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"need two (N, D) arrays with the same D, got {feats_a.shape} and {feats_b.shape}")
    if min(len(feats_a), len(feats_b)) < 2:
        raise ValueError("FID needs at least 2 images per set (and many more for a stable estimate)")
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    cov_a, cov_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)      # Sigma_a, Sigma_b (D, D)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)                  # (Sigma_a Sigma_b)^(1/2)
    if not np.isfinite(covmean).all():            # near-singular product: regularise, as pytorch-fid does
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)                                   # drop tiny imaginary parts of round-off
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(u, v) = (u . v / d + 1)^3 for rows of a (n, d) and b (m, d): (n, m)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid_from_features(feats_a: np.ndarray, feats_b: np.ndarray, *, num_subsets: int = 50,
                      subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation over subsets of the unbiased MMD^2 (cubic polynomial kernel).

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(a_i, a_j) + 1/(m(m-1)) sum_{i!=j} k(b_i, b_j) - 2/m^2 sum_{i,j} k(a_i, b_j)

    The subsets hold m = min(subset_size, N_a, N_b) images. When both sets have exactly m images every subset
    is the whole set, so the standard deviation is 0 by construction and says nothing about the spread; this
    warns then. Pass a ``subset_size`` below the set sizes (e.g. half) to get a spread that means something.
    """
    m = min(subset_size, len(feats_a), len(feats_b))
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    if num_subsets > 1 and m == len(feats_a) == len(feats_b):
        warnings.warn(f"KID: subset_size {subset_size} covers both sets of {m} images, so every subset is the "
                      f"whole set and the standard deviation is 0; pass subset_size={m // 2} (half) for a spread "
                      "over subsets", stacklevel=2)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        a = feats_a[rng.choice(len(feats_a), m, replace=False)]
        b = feats_b[rng.choice(len(feats_b), m, replace=False)]
        k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
        mmd2 = ((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
                - 2 * k_ab.mean())
        values.append(mmd2)
    return float(np.mean(values)), float(np.std(values))


def fid(images_a: Tensor, images_b: Tensor, classifier: nn.Module | None = None) -> float:
    """FID between two sets of images (N, 1, 28, 28) in [-1, 1], on the course classifier's features."""
    classifier = classifier if classifier is not None else feature_classifier()
    return fid_from_features(features(images_a, classifier), features(images_b, classifier))


def kid(images_a: Tensor, images_b: Tensor, classifier: nn.Module | None = None, **kwargs) -> tuple[float, float]:
    """KID (mean, std over subsets) between two sets of images, on the course classifier's features."""
    classifier = classifier if classifier is not None else feature_classifier()
    return kid_from_features(features(images_a, classifier), features(images_b, classifier), **kwargs)


@torch.no_grad()
def predict_logits(images: Tensor, classifier: nn.Module, *, t: Tensor | None = None, batch_size: int = 500) -> Tensor:
    """Class logits (N, K), float32 on the CPU, of a classifier (``classifier(x)`` or ``classifier(x, t)``)."""
    _check_images(images, classifier)
    device = next(classifier.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        xb = images[i:i + batch_size].to(device).float()
        logits = classifier(xb) if t is None else classifier(xb, t[i:i + batch_size].to(device))
        out.append(logits.float().cpu())
    return torch.cat(out)


def predict_proba(images: Tensor, classifier: nn.Module, *, t: Tensor | None = None, batch_size: int = 500) -> Tensor:
    """Class probabilities (N, K) of a classifier (``classifier(x)`` or ``classifier(x, t)``) on the CPU."""
    return predict_logits(images, classifier, t=t, batch_size=batch_size).softmax(-1)


def class_accuracy(images: Tensor, labels: Tensor, classifier: nn.Module) -> float:
    """The share of images (N, 1, 28, 28) that ``classifier`` assigns to ``labels`` (N,): a float in [0, 1]."""
    labels = torch.as_tensor(labels).long().cpu()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    hits = predict_proba(images, classifier).argmax(-1) == labels
    return int(hits.sum()) / len(hits) if len(hits) else float("nan")   # a count over n, exact (not float32's)


def confident_share(images: Tensor, classifier: nn.Module, threshold: float = 0.9) -> tuple[float, Tensor]:
    """(share of images whose top class probability exceeds ``threshold``, class counts (K,) of the argmax)."""
    probs = predict_proba(images, classifier)
    counts = torch.bincount(probs.argmax(-1), minlength=probs.shape[1])
    confident = probs.max(-1).values > threshold
    return (int(confident.sum()) / len(confident) if len(confident) else float("nan")), counts   # exact count / n


def within_class_spread(feats: np.ndarray, labels: np.ndarray) -> float:
    """The mean pairwise Euclidean distance between features (N, D) of the same class, averaged over classes.

    Divided by the same figure for real images, it is the course's diversity measure (1.0 = as varied as real
    digits of one class; guidance that collapses variety lowers it). A class with fewer than 2 samples has no
    pair and is left out; when no class has 2, there is nothing to measure and the result is nan (no warning)."""
    spreads = []
    for c in np.unique(labels):
        f = torch.as_tensor(feats[labels == c])
        if len(f) >= 2:                                        # mean over the n (n - 1) ordered pairs
            spreads.append(float(torch.cdist(f, f).sum() / (len(f) * (len(f) - 1))))
    return float(np.mean(spreads)) if spreads else float("nan")


def calibration(probs: Tensor, labels: Tensor, *, bins: int = 15) -> dict[str, float]:
    """How far a classifier's confidence can be trusted, from probabilities (N, K) and true labels (N,).

    Returns accuracy, the share with confidence > 0.9 and the expected calibration error (Guo et al. 2017,
    Eq. 3): ECE = sum_b (n_b / N) |acc(b) - conf(b)| over ``bins`` equal-width confidence bins. A calibrated
    judge has ECE ~ 0, so "confidence > 0.9" then means "right at least 9 times in 10".
    """
    labels = torch.as_tensor(labels).long()
    conf, pred = probs.max(-1)
    correct = (pred == labels).float()
    bin_of = ((conf * bins).ceil().long() - 1).clamp(0, bins - 1)
    ece = 0.0
    for b in bin_of.unique():
        m = bin_of == b
        ece += float(m.float().mean()) * abs(float(correct[m].mean()) - float(conf[m].mean()))
    return dict(accuracy=float(correct.mean()), confident=float((conf > 0.9).float().mean()), ece=ece)


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) (Guo et al. 2017, Sec. 4.2), on a grid
    0.2..2.0 in steps of 0.01. T ~ 1: calibrated; T < 1: under-confident; T > 1: over-confident."""
    labels = torch.as_tensor(labels).long()
    grid = torch.linspace(0.2, 2.0, 181)
    nll = torch.stack([torch.nn.functional.cross_entropy(logits.float() / t, labels) for t in grid])
    return float(grid[nll.argmin()])
