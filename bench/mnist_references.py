"""What the quality benches (bench_quality, bench_samplers, bench_guidance) measure samples against, loaded once.

The held-out judge `mnist-eval-classifier`, the course's feature classifier `mnist-classifier` and the MNIST
test set with its features; ``scores`` gives the course FID, KID and the judge's confident share of a batch.
The benches import it as a sibling module (they run as ``python bench/NAME.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_utils import checkpoints, metrics
from course_utils.data import load_images


@dataclass
class References:
    judge: torch.nn.Module              # mnist-eval-classifier: confident share
    feature_classifier: torch.nn.Module  # mnist-classifier: FID and KID features
    real: torch.Tensor                  # MNIST test images (10000, 1, 28, 28) in [-1, 1]
    real_y: torch.Tensor                # their labels (10000,)
    real_feats: torch.Tensor            # their features (10000, D)

    @classmethod
    def load(cls) -> "References":
        judge = checkpoints.load("mnist-eval-classifier")[0]
        feature_classifier = metrics.feature_classifier()
        real, real_y = load_images("mnist", split="test")
        return cls(judge, feature_classifier, real, real_y, metrics.features(real, feature_classifier))

    def scores(self, x: torch.Tensor) -> tuple[float, float, float, torch.Tensor]:
        """(course FID, KID, confident share at 0.9, per-class counts of the confident samples) of x (N, 1, 28, 28)."""
        feats = metrics.features(x, self.feature_classifier)
        share, counts = metrics.confident_share(x, self.judge, 0.9)
        kid = metrics.kid_from_features(feats, self.real_feats, subset_size=min(len(x), 500))[0]
        return metrics.fid_from_features(feats, self.real_feats), kid, share, counts
