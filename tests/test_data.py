"""Data: toy sets, scikit-learn's digits, MNIST from COURSE_DATA_DIR, and the error for a missing dataset."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from course_utils import data
from course_utils.data import TOY_NAMES, DatasetNotFoundError, load_images, load_images_or_digits, make_toy


@pytest.mark.parametrize("name", TOY_NAMES)
def test_toy_shapes_and_labels(name):
    x, y = make_toy(name, 500, seed=0)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert y.shape == (500,) and y.dtype == torch.int64
    assert torch.isfinite(x).all() and x.abs().max() < 6
    x2, _ = make_toy(name, 500, seed=0)
    assert torch.equal(x, x2), "same seed, same points"
    n_labels = {"moons": 2, "8gaussians": 8, "gaussian_mixture": 2}.get(name, 1)
    assert set(y.unique().tolist()) == set(range(n_labels))


def test_toy_unknown_name():
    with pytest.raises(ValueError, match=r"unknown toy dataset 'spiral'; choose one of \('moons'"):
        make_toy("spiral")


def test_digits_range_shapes_resize():
    x, y = load_images("digits")
    assert x.shape == (1500, 1, 8, 8) and y.shape == (1500,)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    xt, yt = load_images("digits", split="test")
    assert xt.shape == (297, 1, 8, 8) and set(yt.tolist()) == set(range(10))
    x16, _ = load_images("digits", image_size=16, limit=10)
    assert x16.shape == (10, 1, 16, 16) and x16.min() >= -1 and x16.max() <= 1
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_images("digits", split="val")
    with pytest.raises(ValueError, match="unknown image dataset 'svhn'"):
        load_images("svhn")


def test_mnist_from_course_data_dir(missing):
    """CI points COURSE_DATA_DIR at ../shared/data: there a missing MNIST fails; elsewhere it skips."""
    root = os.environ.get("COURSE_DATA_DIR")
    if not root or not (Path(root) / "MNIST" / "raw").is_dir():
        missing(f"MNIST not found under COURSE_DATA_DIR={root!r} (expected MNIST/raw/*-idx*-ubyte)")
    x, y = load_images("mnist", split="test", limit=100, download=False)
    assert x.shape == (100, 1, 28, 28) and y.shape == (100,)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    x32, _ = load_images("mnist", split="test", limit=4, image_size=32, download=False)
    assert x32.shape == (4, 1, 32, 32)


def test_missing_dataset_error_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    import torchvision

    def no_network(*args, **kwargs):  # make sure nothing is downloaded even if download=True slipped through
        raise AssertionError("the test must not reach the network")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_network)
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", no_network)
    assert data.data_root() == tmp_path
    with pytest.raises(DatasetNotFoundError) as info:
        load_images("mnist", download=False)
    message = str(info.value)
    assert "COURSE_DATA_DIR" in message
    assert str(tmp_path) in message
    assert "MNIST/raw" in message and "train-images-idx3-ubyte" in message
    assert "load_images('digits')" in message
    with pytest.raises(DatasetNotFoundError, match="FashionMNIST/raw"):
        load_images("fashion_mnist", root=tmp_path, download=False)


def test_fallback_to_digits(tmp_path, capsys):
    x, y, name = load_images_or_digits("mnist", root=tmp_path, download=False, limit=5)
    assert name == "digits" and x.shape == (5, 1, 8, 8)
    assert "using scikit-learn's digits instead" in capsys.readouterr().out
