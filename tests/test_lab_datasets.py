"""The lab's other two datasets, run end to end: the solution notebook with `DATASET = "fashion_mnist"` (real
Fashion-MNIST from the course's data folder) and `DATASET = "flowers102"` (a folder laid out exactly like
torchvision's Flowers102, with random JPEGs), in quick mode. nbval runs the MNIST path; these are the paths a
student reaches by changing the first line of the lab."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_utils.data import DatasetNotFoundError, data_root, load_images
from test_data import _fake_flowers

LAB = Path(__file__).resolve().parents[1] / "solutions" / "lab_ddim.ipynb"


def _run_lab(dataset: str, data_dir: Path, monkeypatch) -> tuple[str, int]:
    """Execute the lab with DATASET set; returns (all stream text, number of images shown)."""
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_QUICK", "1")
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    nb = nbformat.read(LAB, as_version=4)
    first = [c for c in nb.cells if c.cell_type == "code" and 'DATASET = "mnist"' in c.source]
    assert len(first) == 1, "the lab chooses its dataset in one cell"
    first[0].source = first[0].source.replace('DATASET = "mnist"', f'DATASET = "{dataset}"', 1)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(LAB.parent)}}).execute()
    text, images = "", 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not [o for o in cell.outputs if o.output_type == "error"]
        text += "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        images += sum("image/png" in o.get("data", {}) for o in cell.outputs)
    assert "❌" not in text and "Traceback" not in text, text
    assert "trained 120 steps (3,840 images)" in text, "quick mode's run is 3,840 images, whatever the CPU's speed"
    return text, images


@pytest.mark.slow
def test_the_lab_runs_on_fashion_mnist(monkeypatch):
    try:
        load_images("fashion_mnist", limit=1, download=False)
    except DatasetNotFoundError:
        pytest.skip(f"Fashion-MNIST is not under {data_root()}")
    text, images = _run_lab("fashion_mnist", data_root(), monkeypatch)
    assert "dataset: fashion_mnist" in text and "training on fashion_mnist: 5000 images of shape (1, 16, 16)" in text
    assert "judge (" not in text, "the digit judge knows digits only"
    assert "KID on mnist-classifier features, 100 samples" in text and "(the floor)" in text
    assert images == 4     # training images, loss, samples, samples by number of steps


@pytest.mark.slow
def test_the_lab_runs_on_a_flowers102_folder(tmp_path, monkeypatch):
    _fake_flowers(tmp_path, sizes=(20, 20, 30))     # 80% of each split trains: 16 + 16 + 24 = 56 images
    text, images = _run_lab("flowers102", tmp_path, monkeypatch)
    assert "dataset: flowers102" in text and "training on flowers102: 56 images of shape (3, 16, 16)" in text
    assert "Flowers102: no metric here" in text and "KID on" not in text
    assert images == 4
