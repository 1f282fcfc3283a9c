"""Data for the course: 2-D toy distributions and image datasets, all mapped to [-1, 1].

Images come from torchvision (MNIST, Fashion-MNIST, CIFAR-10, Flowers102) under a data root, or from
scikit-learn's bundled 8x8 digits, which need no download at all. Flowers102 is read from torchvision's folder
layout (``flowers-102/``: ``jpg/``, ``imagelabels.mat``, ``setid.mat``) with the split of the Keras DDIM example
that the lab follows: its "train" is 80% of each official split (train, validation, test: 816 + 816 + 4,919 =
6,551 images), its "test" the remaining 20% (1,638); images are centre-cropped to a square and resized to 64x64.
The data root is the environment variable ``COURSE_DATA_DIR`` if set, else ``~/.cache/course_utils/data``.
Nothing here needs a network when the files are in place; when they are not, the error says where to put which
files and how to download them, and ``load_images_or_digits`` falls back to the digits with one printed line.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

TOY_NAMES = ("moons", "swiss_roll", "8gaussians", "checkerboard", "gaussian_mixture")
IMAGE_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "flowers102")
CLASS_NAMES = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not under the data root and could not be downloaded; the message says what to do.

    In a notebook IPython shows only ``DatasetNotFoundError: <the message>``, without a traceback: the message is
    the whole story (``_render_traceback_`` is IPython's hook for that; plain Python still prints a traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def data_root() -> Path:
    """``$COURSE_DATA_DIR`` if set, else ``~/.cache/course_utils/data``."""
    return Path(os.environ.get("COURSE_DATA_DIR") or Path.home() / ".cache" / "course_utils" / "data").expanduser()


# ---------------------------------------------------------------- 2-D toy data
@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of isotropic Gaussians with known weights (K,), means (K, D) and stds (K,)."""

    weights: tuple
    means: tuple
    stds: tuple

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n points (n, D) and the component of each (n,)."""
        weights = torch.tensor(self.weights, dtype=torch.float64)
        comp = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=generator)
        means = torch.tensor(self.means, dtype=torch.float32)
        stds = torch.tensor(self.stds, dtype=torch.float32)
        noise = torch.randn(n, means.shape[1], generator=generator)
        return means[comp] + stds[comp, None] * noise, comp


EIGHT_GAUSSIANS = GaussianMixture(
    weights=(1 / 8,) * 8,
    means=tuple((1.5 * math.cos(k * math.pi / 4), 1.5 * math.sin(k * math.pi / 4)) for k in range(8)),
    stds=(0.1,) * 8,
)
TWO_GAUSSIANS = GaussianMixture(weights=(0.3, 0.7), means=((-1.0, 0.5), (1.0, -0.5)), stds=(0.3, 0.2))


def make_toy(name: str, n: int = 2000, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n points (n, 2), float32, roughly within [-2, 2] and standardised to unit scale, plus labels (n,).

    Labels: the mixture component for the Gaussian mixtures, the moon for moons, zeros otherwise.
    """
    from sklearn import datasets

    gen = torch.Generator().manual_seed(seed)
    rng = np.random.RandomState(seed)
    if name == "moons":
        x, y = datasets.make_moons(n, noise=0.05, random_state=rng)
        x = (x - np.array([0.5, 0.25])) / np.array([0.87, 0.5])
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    if name == "swiss_roll":
        x, _ = datasets.make_swiss_roll(n, noise=0.3, random_state=rng)
        return torch.tensor(x[:, [0, 2]] / 7.0, dtype=torch.float32), torch.zeros(n, dtype=torch.long)
    if name == "checkerboard":
        x1 = torch.rand(n, generator=gen) * 4 - 2
        x2 = torch.rand(n, generator=gen) - torch.randint(0, 2, (n,), generator=gen) * 2.0
        x2 = x2 + (torch.floor(x1) % 2)
        return torch.stack([x1, x2], dim=1).float(), torch.zeros(n, dtype=torch.long)
    if name == "8gaussians":
        return EIGHT_GAUSSIANS.sample(n, generator=gen)
    if name == "gaussian_mixture":
        return TWO_GAUSSIANS.sample(n, generator=gen)
    raise ValueError(f"unknown toy dataset {name!r}; choose one of {TOY_NAMES}")


# ---------------------------------------------------------------- images
def load_images(name: str, *, split: str = "train", image_size: int | None = None, limit: int | None = None,
                root: str | Path | None = None, download: bool = True) -> tuple[Tensor, Tensor]:
    """Images (N, C, H, W) float32 in [-1, 1] and labels (N,) int64.

    ``image_size`` resizes (bilinear, antialiased); ``limit`` keeps the first N examples.
    """
    if name not in IMAGE_NAMES:
        raise ValueError(f"unknown image dataset {name!r}; choose one of {IMAGE_NAMES}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "digits":
        x, y = _sklearn_digits(split)
    else:
        x, y = _torchvision_images(name, split, Path(root) if root else data_root(), download)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = x.float() / 127.5 - 1.0                                           # uint8 [0, 255] -> [-1, 1]
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(-1, 1)
    return x.contiguous(), y.long()


def _sklearn_digits(split: str) -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 8x8 digits (values 0..16) as uint8 (N, 1, 8, 8); the last 297 are the test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(np.round(digits.images * 255.0 / 16.0), dtype=torch.uint8)[:, None]
    y = torch.tensor(digits.target)
    return (x[:1500], y[:1500]) if split == "train" else (x[1500:], y[1500:])


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")
# name -> (torchvision class, folder under the data root, the files it holds)
_TV = {"mnist": ("MNIST", "MNIST/raw", "the four idx files " + ", ".join(_MNIST_FILES) + " (or their .gz)"),
       "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", "the same four idx files as MNIST"),
       "cifar10": ("CIFAR10", "cifar-10-batches-py", "the batches extracted from cifar-10-python.tar.gz"),
       "flowers102": ("Flowers102", "flowers-102/", "jpg/, imagelabels.mat, setid.mat")}


def has_files(name: str, root: str | Path | None = None) -> bool:
    """Whether dataset ``name``'s files are under ``root`` (default: the data root), without loading them.

    For MNIST and Fashion-MNIST: the four idx files (or their .gz) in ``NAME/raw`` (an empty ``raw`` folder, which a
    failed download leaves behind, does not count); for the others, their folder. "digits" is always there."""
    if name == "digits":
        return True
    if name not in _TV:
        raise ValueError(f"unknown image dataset {name!r}; choose one of {IMAGE_NAMES}")
    folder = (Path(root) if root is not None else data_root()) / _TV[name][1]
    if name in ("mnist", "fashion_mnist"):
        return all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in _MNIST_FILES)
    return folder.is_dir() and any(folder.iterdir())


def _torchvision_images(name: str, split: str, root: Path, download: bool) -> tuple[Tensor, Tensor]:
    import torchvision

    cls = getattr(torchvision.datasets, _TV[name][0])
    if name == "flowers102":
        return _flowers102(root, split, download)
    try:
        ds = cls(root=str(root), download=download, train=split == "train")
    except Exception as err:  # noqa: BLE001 - no network, a corrupt file, a missing folder: say what to do
        raise DatasetNotFoundError(_missing_message(name, split, root, err, download)) from None  # it quotes err
    if name in ("mnist", "fashion_mnist"):
        return ds.data[:, None].clone(), ds.targets.clone()
    return torch.tensor(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)    # cifar10


def download_command(name: str, root: str | Path | None = None) -> str:
    """The one shell command that downloads dataset ``name`` into ``root`` (default: the data root)."""
    if name not in _TV:
        raise ValueError(f"{name!r} is not downloaded; the downloadable datasets are {tuple(_TV)}")
    root = Path(root) if root is not None else data_root()
    kwargs = "split='train'" if name == "flowers102" else "train=True"
    return f"python -c \"import torchvision; torchvision.datasets.{_TV[name][0]}('{root}', {kwargs}, download=True)\""


def where_to_get(name: str, root: str | Path | None = None) -> str:
    """One sentence: how to get dataset ``name`` into ``root`` (default: the data root), downloaded or by hand."""
    root = Path(root) if root is not None else data_root()
    _, folder, files = _TV[name]
    return (f"To get {_TV[name][0]}: {download_command(name, root)} or put {files} in {root}/{folder} "
            f"(COURSE_DATA_DIR sets the root).")


def _missing_message(name: str, split: str, root: Path, err: Exception, download: bool) -> str:
    _, folder, files = _TV[name]
    cause = f"could not be downloaded ({type(err).__name__}: {err})" if download else "download=False was asked for"
    return (f"dataset {name!r} ({split}) is not under the data root {root} and {cause}.\nWhat to do: on a machine "
            f"with a network, download it with\n    {download_command(name, root)}\nor put the files at "
            f"{root}/{folder}: {files}, or point the environment variable COURSE_DATA_DIR at a folder that has "
            f"them; offline, load_images('digits') ships with scikit-learn.")


FLOWERS_SIZE = 64           # the Keras example's image_size
FLOWERS_TRAIN_SHARE = 0.8   # train[:80%] + validation[:80%] + test[:80%]


def flowers102_split(setid: dict, split: str) -> np.ndarray:
    """The Keras example's split of Flowers102 as 1-based image ids: for "train" the first 80% of each official
    split (``trnid``, ``valid``, ``tstid`` of setid.mat, in that file's order), for "test" the other 20%."""
    ids = []
    for key in ("trnid", "valid", "tstid"):
        official = np.asarray(setid[key]).reshape(-1)
        cut = int(round(FLOWERS_TRAIN_SHARE * len(official)))
        ids.append(official[:cut] if split == "train" else official[cut:])
    return np.concatenate(ids).astype(np.int64)


def _flowers102(root: Path, split: str, download: bool) -> tuple[Tensor, Tensor]:
    """Flowers102 from torchvision's layout, the Keras split, centre-cropped and resized to 64x64, uint8."""
    from PIL import Image
    from scipy.io import loadmat

    folder = root / "flowers-102"
    needed = [folder / "jpg", folder / "imagelabels.mat", folder / "setid.mat"]
    if not all(p.exists() for p in needed):
        err: Exception = FileNotFoundError(f"missing {[str(p) for p in needed if not p.exists()]}")
        if download:
            try:
                import torchvision

                torchvision.datasets.Flowers102(str(root), split="train", download=True)
            except Exception as download_err:  # noqa: BLE001 - no network: say what to do
                err = download_err
        if not all(p.exists() for p in needed):
            raise DatasetNotFoundError(_missing_message("flowers102", split, root, err, download))
    labels = np.asarray(loadmat(folder / "imagelabels.mat")["labels"]).reshape(-1)    # 1..102, one per image
    ids = flowers102_split(loadmat(folder / "setid.mat"), split)
    xs = []
    for i in ids:
        with Image.open(folder / "jpg" / f"image_{i:05d}.jpg") as img:
            img = img.convert("RGB")
            side = min(img.size)                                          # centre crop to a square, then resize
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((FLOWERS_SIZE, FLOWERS_SIZE),
                                                                         Image.Resampling.BICUBIC, reducing_gap=None)
            xs.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1))
    return torch.stack(xs), torch.tensor(labels[ids - 1] - 1, dtype=torch.long)


def load_images_or_digits(name: str, **kwargs) -> tuple[Tensor, Tensor, str]:
    """``load_images(name)``, or scikit-learn's digits when ``name`` is not available offline.

    Returns (x, y, the name actually loaded): a lesson branches on that name, not on what it asked for. The first
    fallback prints one line (what is missing, that figures and numbers will differ from the text, how to get the
    data); the dataset is then remembered as missing for the rest of the process (``_FOUND_MISSING``, the one
    state this module keeps), so later calls neither print it again nor retry the download. They still look for
    the files, so data put in place meanwhile is picked up.
    """
    root = Path(kwargs.pop("root", None) or data_root())
    key = (name, str(root))
    download = kwargs.pop("download", True) and key not in _FOUND_MISSING
    try:
        return (*load_images(name, root=root, download=download, **kwargs), name)
    except DatasetNotFoundError:
        if key not in _FOUND_MISSING:
            _FOUND_MISSING.add(key)
            print(fallback_line(name, root, downloaded=download))
        return (*load_images("digits", **kwargs), "digits")


_FOUND_MISSING: set[tuple[str, str]] = set()   # (name, root) that load_images_or_digits found missing in this process


def fallback_line(name: str, root: str | Path | None = None, *, downloaded: bool = True) -> str:
    """The one line printed when ``name`` is replaced by scikit-learn's digits; it reuses ``where_to_get``."""
    root = Path(root) if root is not None else data_root()
    why = "could not be downloaded (offline?)" if downloaded else "was not downloaded (download=False)"
    return (f"{_TV[name][0]} is not under {root} and {why}: using scikit-learn's 8x8 digits instead, so figures and "
            f"numbers will differ from the text, which was written for {_TV[name][0]}. {where_to_get(name, root)}")


def have(wanted: str, loaded: str, *, cell: str) -> bool:
    """Whether the images loaded (``loaded``, as ``load_images_or_digits`` names them) are ``wanted``; when not,
    prints one line: the cell, which ``cell`` (e.g. "compares the samples with real MNIST images"), is skipped.

    ``if have("mnist", source, cell="runs the MNIST model on real MNIST images"): ...``"""
    if loaded == wanted:
        return True
    title = _TV[wanted][0] if wanted in _TV else wanted
    print(f"skipped: this cell {cell}, which this kernel does not have (it has {loaded}): the figures and numbers "
          f"in the text are {title}'s; see the fallback line above to get {title}.")
    return False
