"""Data: toy sets, scikit-learn's digits, MNIST from COURSE_DATA_DIR, and the error for a missing dataset."""
from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
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
    assert "using scikit-learn's 8x8 digits instead" in capsys.readouterr().out


def test_fallback_says_once_in_one_line_what_is_missing_and_what_to_do(tmp_path, capsys, monkeypatch):
    """Two calls (as lesson 3 makes): one line, printed once, naming the root, the command and the layout; the
    second call does not try to download again."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    downloads = []

    def offline(name, split, root, download):       # as torchvision does with no network and no files
        downloads.append(download)
        raise DatasetNotFoundError("offline")

    monkeypatch.setattr(data, "_torchvision_images", offline)
    monkeypatch.setattr(data, "_FOUND_MISSING", set())
    for split in ("test", "train"):
        x, _, name = load_images_or_digits("mnist", split=split, image_size=28, limit=3)
        assert name == "digits" and x.shape == (3, 1, 28, 28)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n"), out
    assert f"MNIST is not under {tmp_path} and could not be downloaded" in out
    assert "figures and numbers will differ from the text" in out
    assert data.download_command("mnist", tmp_path) in out and "download=True" in out
    assert f"{tmp_path}/MNIST/raw" in out and "t10k-labels-idx1-ubyte" in out and "COURSE_DATA_DIR" in out
    assert downloads == [True, False]


def test_has_files_wants_the_four_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)                       # what a failed download leaves behind
    assert not data.has_files("mnist", tmp_path)
    for f in data._MNIST_FILES[:3]:
        (raw / f).touch()
    (raw / (data._MNIST_FILES[3] + ".gz")).touch()
    assert data.has_files("mnist", tmp_path) and data.has_files("digits", tmp_path)


def test_dataset_not_found_shows_only_its_message_in_a_notebook(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_images("mnist", root=tmp_path, download=False)
    assert info.value._render_traceback_() == [f"DatasetNotFoundError: {info.value}"]
    assert "download=False was asked for" in str(info.value) and "use download=True" not in str(info.value)


def _fake_flowers(root: Path, sizes=(10, 10, 25)) -> dict:
    """A folder laid out exactly like torchvision's Flowers102 (flowers-102/jpg/image_NNNNN.jpg, imagelabels.mat,
    setid.mat with 1-based ids in trnid/valid/tstid), with small JPEGs of different sizes and aspect ratios."""
    import numpy as np
    from PIL import Image
    from scipy.io import savemat

    folder = root / "flowers-102"
    (folder / "jpg").mkdir(parents=True)
    n = sum(sizes)
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / "jpg" / f"image_{i:05d}.jpg")
    ids = rng.permutation(np.arange(1, n + 1))
    setid = {"trnid": ids[:sizes[0]][None], "valid": ids[sizes[0]:sizes[0] + sizes[1]][None],
             "tstid": ids[sizes[0] + sizes[1]:][None]}
    labels = (np.arange(n) % 102 + 1)[None]
    savemat(folder / "imagelabels.mat", {"labels": labels})
    savemat(folder / "setid.mat", setid)
    return dict(setid=setid, labels=labels[0])


def test_flowers102_keras_split_from_torchvision_layout(tmp_path):
    """The lab's Flowers102: the Keras example's split (80% of each official split for training), 64x64 RGB."""
    fake = _fake_flowers(tmp_path)
    x, y = load_images("flowers102", root=tmp_path, download=False)
    assert x.shape == (8 + 8 + 20, 3, 64, 64) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.3
    train_ids = list(fake["setid"]["trnid"][0][:8]) + list(fake["setid"]["valid"][0][:8]) + \
        list(fake["setid"]["tstid"][0][:20])
    assert y.tolist() == [int(fake["labels"][i - 1]) - 1 for i in train_ids], "labels are 0-based, in split order"
    xt, yt = load_images("flowers102", split="test", root=tmp_path, download=False, image_size=32)
    assert xt.shape == (2 + 2 + 5, 3, 32, 32) and yt.shape == (9,)
    assert set(data.flowers102_split(fake["setid"], "train")).isdisjoint(data.flowers102_split(fake["setid"], "test"))


def test_flowers102_real_split_sizes():
    """With the official split sizes (1,020 / 1,020 / 6,149), the Keras split has 6,551 training images."""
    import numpy as np

    setid = {"trnid": np.arange(1, 1021), "valid": np.arange(1021, 2041), "tstid": np.arange(2041, 8190)}
    assert len(data.flowers102_split(setid, "train")) == 816 + 816 + 4919 == 6551
    assert len(data.flowers102_split(setid, "test")) == 8189 - 6551


def test_missing_flowers102_says_how_to_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_images("flowers102", root=tmp_path, download=False)
    message = str(info.value)
    assert "torchvision.datasets.Flowers102(" in message and "download=True" in message
    assert "flowers-102/: jpg/, imagelabels.mat, setid.mat" in message and str(tmp_path) in message


# ------------------------------------------------------------------ found by a mutation audit (2026-12-05)
def test_the_default_data_root_is_the_documented_cache(tmp_path, monkeypatch):
    """Students keep the default (README, Makefile): ~/.cache/course_utils/data, also when the variable is empty;
    a '~' in COURSE_DATA_DIR means the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert data.data_root() == tmp_path / ".cache" / "course_utils" / "data"
    monkeypatch.setenv("COURSE_DATA_DIR", "")
    assert data.data_root() == tmp_path / ".cache" / "course_utils" / "data"
    monkeypatch.setenv("COURSE_DATA_DIR", "~/datasets")
    assert data.data_root() == tmp_path / "datasets"


def _idx(path, array: np.ndarray) -> None:
    """An idx file as MNIST ships them: magic (0, 0, uint8 type 0x08, rank), big-endian sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_test_split_is_the_test_files(tmp_path):
    """split='test' must read t10k-*, not the training files: a silent swap would evaluate on training data."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, value, labels in (("train", 10, [1, 2, 3]), ("t10k", 200, [7, 8])):
        _idx(raw / f"{prefix}-images-idx3-ubyte", np.full((len(labels), 28, 28), value))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.array(labels))
    x, y = load_images("mnist", split="test", root=tmp_path, download=False)
    assert y.tolist() == [7, 8] and x.shape == (2, 1, 28, 28)
    assert torch.allclose(x, torch.full_like(x, 200 / 127.5 - 1))
    assert load_images("mnist", split="train", root=tmp_path, download=False)[1].tolist() == [1, 2, 3]


def test_cifar10_images_keep_their_orientation(tmp_path, monkeypatch):
    """CIFAR-10's pickles store images as (N, H, W, C) once torchvision reads them: (N, C, H, W) must keep rows as
    rows (a transposed image is a silent wrong dataset). A fake cifar-10-batches-py, its md5 checks off."""
    import torchvision.datasets.cifar as cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    image = np.zeros((3, 32, 32), dtype=np.uint8)       # CIFAR's own layout: channel, row, column
    image[0, 0, 5] = 255                                 # red at row 0, column 5
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": image.reshape(1, -1), "labels": [3]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": data.CLASS_NAMES["cifar10"]}, f)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    x, y = load_images("cifar10", split="test", root=tmp_path, download=False)
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [3]
    assert x[0, 0, 0, 5] == 1.0 and x[0, 0, 5, 0] == -1.0, "row 0, column 5 is the red pixel"


def test_missing_flowers102_gives_a_command_that_runs(tmp_path):
    """Flowers102 takes split=..., not train=...: the printed download command must be one that works."""
    with pytest.raises(DatasetNotFoundError) as info:
        load_images("flowers102", root=tmp_path, download=False)
    assert f"torchvision.datasets.Flowers102('{tmp_path}', split='train', download=True)" in str(info.value)


def test_flowers102_without_download_never_downloads(tmp_path, monkeypatch):
    """download=False (what the lab passes in quick mode and offline) must not try the network."""
    import torchvision

    calls = []
    monkeypatch.setattr(torchvision.datasets, "Flowers102", lambda *a, **k: calls.append((a, k)))
    with pytest.raises(DatasetNotFoundError):
        load_images("flowers102", root=tmp_path, download=False)
    assert calls == []


def test_flowers102_images_are_centre_cropped(tmp_path):
    """A wide photo keeps its centre square (the flower), not its left edge or black padding."""
    from PIL import Image
    from scipy.io import savemat

    folder = tmp_path / "flowers-102"
    (folder / "jpg").mkdir(parents=True)
    for i in (1, 2, 3):
        img = np.zeros((64, 192, 3), dtype=np.uint8)     # 64 high, 192 wide: black, white in the middle third
        img[:, 64:128] = 255
        Image.fromarray(img).save(folder / "jpg" / f"image_{i:05d}.jpg", quality=95)
    savemat(folder / "imagelabels.mat", {"labels": np.array([[1, 2, 3]])})
    savemat(folder / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[2]]), "tstid": np.array([[3]])})
    x, y = load_images("flowers102", root=tmp_path, download=False)
    assert x.shape == (3, 3, 64, 64) and y.tolist() == [0, 1, 2]
    assert x[:, :, 8:-8, 8:-8].min() > 0.9, "the centre square is all white"


def test_limit_zero_keeps_no_examples():
    """limit=N keeps the first N examples, N = 0 included (not 'no limit')."""
    x, y = load_images("digits", limit=0)
    assert x.shape == (0, 1, 8, 8) and y.shape == (0,)


def test_toy_moons_are_standardised():
    """make_toy's moons are centred and of unit scale (the docstring's promise the lessons' plots rely on)."""
    x, _ = make_toy("moons", 4000, seed=0)
    assert x.mean(0).abs().max() < 0.15, x.mean(0)
    assert ((x.std(0) > 0.7) & (x.std(0) < 1.3)).all(), x.std(0)


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toy_seeds_change_the_points(name):
    """Another seed, other points: a seed that is ignored makes every 'fresh' sample the same one."""
    assert not torch.equal(make_toy(name, 200, seed=0)[0], make_toy(name, 200, seed=1)[0])
