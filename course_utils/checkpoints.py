"""Pretrained models of the course, loaded by name from the package, offline, on any device.

    model, schedule, card = course_utils.checkpoints.load("mnist-unet", device="cpu")
    x = ddim_sample(model, schedule, (16, *card["image_shape"]), num_steps=50)

Each model is a pair of files in ``course_utils/checkpoints/``: ``NAME.pt`` (the EMA weights, stored in
half precision: a ``state_dict`` cast to float16) and ``NAME.json`` (its model card: dataset, architecture,
training steps, batch, wall time, hardware, the exact command, measured metrics and the sha256 of the
``.pt`` file). ``load`` checks the sha256 before it reads the weights, so a corrupted or mismatched file
fails with a message that names the file and says what is wrong. Every model is produced by
``python -m course_utils.pretrain NAME`` (see ``course_utils.pretrain.CONFIGS``).

``schedule`` is the ``NoiseSchedule`` the model was trained with (diffusion models and the noisy
classifier), or None for the clean classifiers. ``card["num_classes"]`` is None for unconditional models.

Measured runs of these models that take too long for a lesson (hundreds of samples per sampler) are stored
beside them, in ``course_utils/checkpoints/runs/NAME.json``, each with the command that reproduces it (written
by a bench script's ``--json``; ``sampler_quality_n300`` was copied by hand from ``bench/bench_quality.py``'s
output, which has no ``--json``); lessons read them with ``load_run(NAME)``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from .nets import NoisyClassifier, UNet
from .schedules import NoiseSchedule

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
RUNS_DIR = CHECKPOINT_DIR / "runs"
NAMES = ("digits-unet-cond", "mnist-classifier", "mnist-noisy-classifier", "mnist-eval-classifier",
         "mnist-unet", "mnist-unet-cond")
ARCHITECTURES = {"UNet": UNet, "NoisyClassifier": NoisyClassifier}


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupted or does not match its model card; the message says which and why."""


def available() -> list[str]:
    """The names whose weights and model card are present in the package, sorted."""
    return sorted(n for n in NAMES if (CHECKPOINT_DIR / f"{n}.pt").exists() and (CHECKPOINT_DIR / f"{n}.json").exists())


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(name: str, *, directory: str | Path | None = None) -> dict:
    """The model card (a dict) of ``name``, without loading the weights."""
    directory = Path(directory) if directory is not None else CHECKPOINT_DIR
    _check_name(name)
    card_path = directory / f"{name}.json"
    if not card_path.exists():
        raise CheckpointError(f"the model card {card_path} is missing: {name!r} has not been trained yet. "
                              f"Train it with: python -m course_utils.pretrain {name}")
    try:
        return json.loads(card_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"the model card {card_path} is not valid JSON ({err}); "
                              f"retrain with: python -m course_utils.pretrain {name}") from err


def build_model(card: dict) -> nn.Module:
    """An untrained model of the card's architecture ({"class": "UNet", "config": {...}})."""
    arch = card["architecture"]
    if arch["class"] not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch['class']!r}; known: {sorted(ARCHITECTURES)}")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in arch["config"].items()}
    return ARCHITECTURES[arch["class"]](**config)


def build_schedule(spec: dict | None) -> NoiseSchedule | None:
    """The NoiseSchedule of a card's ``schedule`` entry: {"kind": "linear"|"cosine", "T": ..., ...}, or None."""
    if spec is None:
        return None
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "linear":
        return NoiseSchedule.linear(**kwargs)
    if spec["kind"] == "cosine":
        return NoiseSchedule.cosine(**kwargs)
    raise CheckpointError(f"unknown schedule kind {spec['kind']!r}; known: 'linear', 'cosine'")


def load(name: str, device: torch.device | str = "cpu", *, directory: str | Path | None = None):
    """Load a pretrained model by name: returns ``(model, schedule, card)``.

    ``model`` is float32, in eval mode, on ``device``; ``schedule`` a NoiseSchedule on ``device`` (None for a
    clean classifier); ``card`` the model card dict (image_shape (C, H, W), num_classes, metrics, ...).
    A UNet keeps the card's ``image_shape`` and refuses images of another size (``model.image_shape = None`` lifts
    that). ``directory`` defaults to the package's ``checkpoints/`` folder.
    """
    directory = Path(directory) if directory is not None else CHECKPOINT_DIR
    card = read_card(name, directory=directory)
    weights = directory / f"{name}.pt"
    if not weights.exists():
        raise CheckpointError(f"the weights file {weights} is missing (its model card is there). "
                              f"Train it with: python -m course_utils.pretrain {name}")
    digest = sha256_of(weights)
    if digest != card.get("sha256"):
        raise CheckpointError(f"the weights file {weights} does not match its model card {name}.json: sha256 is "
                              f"{digest}, the card expects {card.get('sha256')}. The file is corrupted or belongs to "
                              f"another training run; reinstall the package or retrain with: "
                              f"python -m course_utils.pretrain {name}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - name the file and the reason
        raise CheckpointError(f"cannot read the weights file {weights}: {type(err).__name__}: {err}") from err
    model = build_model(card)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as err:
        raise CheckpointError(f"the weights in {weights} do not fit the architecture in {name}.json: {err}") from err
    model = model.to(device).eval()
    if isinstance(model, UNet):         # refuses images of another size than it was trained at (model_inputs)
        model.image_shape = tuple(card["image_shape"])
    schedule = build_schedule(card.get("schedule"))
    if schedule is not None:
        schedule = schedule.to(device)
    return model, schedule, card


def load_pretrained(*names: str, device: torch.device | str = "cpu", directory: str | Path | None = None):
    """The first of ``names`` that is installed, loaded: ``(name, model, schedule, card)`` as ``load`` gives them.

    The lessons ask for a model and a fallback, e.g. ``load_pretrained("mnist-unet", "digits-unet-cond")``: a
    name that is not installed is skipped with one printed line; when none is, ``CheckpointError`` says how to
    train one.
    """
    if not names:
        raise ValueError(f"name at least one pretrained model; the course's models are {list(NAMES)}")
    for name in names:
        if _is_device(name):    # load(name, device) takes the device by position; load_pretrained cannot
            models = ", ".join(repr(n) for n in names if not _is_device(n)) or "'mnist-unet'"
            raise TypeError(f"{str(name)!r} is a device, not a model name: device is keyword-only, "
                            f"load_pretrained({models}, device={str(name)!r})")
        _check_name(name)
    directory = Path(directory) if directory is not None else CHECKPOINT_DIR
    for name in names:
        if (directory / f"{name}.pt").exists() and (directory / f"{name}.json").exists():
            return (name, *load(name, device, directory=directory))
        print(f"pretrained model {name!r} is not installed; trying the next one")
    raise CheckpointError(f"none of the pretrained models {list(names)} is installed in {directory}. "
                          f"Train one with: python -m course_utils.pretrain {names[0]}")


def load_run(name: str, *, directory: str | Path | None = None) -> dict:
    """A stored measured run (``runs/NAME.json``, most written by a bench script's ``--json``), as a dict.

    Every run records the ``command`` that reproduces it; a missing file raises ``CheckpointError`` naming that
    file and the folder searched."""
    path = (Path(directory) if directory is not None else RUNS_DIR) / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise CheckpointError(f"no stored run {name!r} in {path.parent} (stored: {known}); the bench scripts in "
                              f"bench/ write them with --json")
    return json.loads(path.read_text())


def save(name: str, model: nn.Module, card: dict, *, directory: str | Path | None = None) -> dict:
    """Write ``NAME.pt`` (the state_dict in float16) and ``NAME.json`` (the card plus sha256 and file size).

    Returns the card as written.
    """
    directory = Path(directory) if directory is not None else CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.pt"
    state = {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    torch.save(state, weights)
    card = dict(card, name=name, weights_file=weights.name, weights_dtype="float16",
                file_size_bytes=weights.stat().st_size, sha256=sha256_of(weights))
    (directory / f"{name}.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return card


def _is_device(name) -> bool:
    """A ``torch.device``, or a string that torch reads as one ("cpu", "cuda:0", "mps") and no model is named."""
    if isinstance(name, torch.device):
        return True
    if not isinstance(name, str) or name in NAMES:
        return False
    try:
        torch.device(name)
    except RuntimeError:
        return False
    return True


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown pretrained model {name!r}; the course's models are {list(NAMES)} "
                         f"(trained here: {available()})")


def cards_markdown(*, directory: str | Path | None = None) -> str:
    """A markdown table of the shipped models' cards (what docs/checkpoints.md shows):
    ``python -m course_utils.checkpoints``."""
    rows = ["| name | data | architecture | parameters | steps x batch | wall time | hardware | file | metrics |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in NAMES:
        try:
            card = read_card(name, directory=directory)
        except CheckpointError:
            rows.append(f"| `{name}` | not trained yet | | | | | | | |")
            continue
        hw = card.get("hardware", {})
        hardware = (f"{hw.get('cpu', '?')}, {hw.get('torch_threads', '?')} thread(s), "
                    f"load {hw.get('load_average_1min_at_end', '?')}" + (f", {hw['gpu']}" if hw.get("gpu") else ""))
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in card.get("metrics", {}).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)) or "not measured"
        config = card["architecture"]["config"]
        mults = f" x{tuple(config['channel_mults'])}" if "channel_mults" in config else ""
        arch = card["architecture"]["class"] + f" base {config['base_channels']}{mults}"
        size = card["dataset"]["image_size"]
        rows.append(f"| `{name}` | {card['dataset']['name']} {size}x{size} "
                    f"| {arch} | {card['parameters']:,} | {card['steps']} x {card['batch_size']} "
                    f"| {card['wall_time_s'] / 60:.1f} min | {hardware} | {card['file_size_bytes'] / 1e6:.2f} MB "
                    f"| {metrics} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(cards_markdown())
