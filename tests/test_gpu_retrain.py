"""tools/gpu_retrain.sh, the one command of issue 18's GPU run, run here on the CPU with a tiny budget.

A device session has minutes of GPU time and no way to install a package, so the script is tried here first:
its runs train and measure, a failing run is counted and does not stop the others, and nothing it imports is
missing on a bare PyTorch image (no Jupyter, no ipywidgets, no diffusers: such imports are made to fail).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import checkpoints

ROOT = Path(__file__).resolve().parents[1]
NOT_ON_A_GPU_IMAGE = ("IPython", "ipywidgets", "ipykernel", "nbformat", "nbclient", "nbconvert", "nbval",
                      "jupyter_client", "diffusers", "playwright")
BLOCKER = f'''
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_ON_A_GPU_IMAGE!r}:
            raise ImportError(f"{{name}} is not on the GPU image")
sys.meta_path.insert(0, _Block())
'''


def _blocker_site(tmp_path) -> Path:
    """A folder whose sitecustomize.py makes NOT_ON_A_GPU_IMAGE unimportable (put it on PYTHONPATH)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    return site


def _run_script(tmp_path, runs: str):
    site = _blocker_site(tmp_path)
    env = dict(os.environ, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"), PYTHON=sys.executable,
               DEVICE="cpu", RUNS=runs, BUDGET="--steps 2 --warmup-steps 1 --batch-size 4",
               EVAL="--eval-samples 20", PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    return subprocess.run(["bash", str(ROOT / "tools" / "gpu_retrain.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_blocker_blocks(tmp_path):
    """Positive control: with the blocker in place, importing a Jupyter package fails."""
    site = _blocker_site(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "import nbformat"], env=dict(os.environ, PYTHONPATH=str(site)),
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "nbformat is not on the GPU image" in proc.stderr


@pytest.mark.slow  # over 10 s: out of `make test-unit`, in `make test`
def test_the_gpu_script_trains_and_measures_each_run(tmp_path, capsys):
    proc = _run_script(tmp_path, "mnist-unet:gpu-deep mnist-unet-cond:gpu-deep mnist-unet:no-such-recipe")
    log = (tmp_path / "out" / "gpu_retrain.log").read_text()
    assert proc.returncode == 1, log                    # one run of three failed: the exit status counts it
    assert "[mnist-unet.no-such-recipe] ValueError: mnist-unet has no recipe 'no-such-recipe'" in log, log
    assert "1 run(s) failed" in proc.stdout
    # three runs side by side share the cores (torch's default threads each: 190 s here instead of 60)
    threads = max(1, len(os.sched_getaffinity(0)) // 3)
    assert f"; {threads} CPU threads per run" in log, log
    for name in ("mnist-unet", "mnist-unet-cond"):
        folder = tmp_path / "out" / f"{name}.gpu-deep"
        card = json.loads((folder / f"{name}.json").read_text())
        assert card["recipe"] == "gpu-deep" and card["steps"] == 2 and card["architecture"]["config"][
            "num_res_blocks"] == 2
        assert card["command"] == (f"python -m course_utils.pretrain {name} --steps 2 --recipe gpu-deep "
                                   f"--batch-size 4 --warmup-steps 1 --threads {threads}")   # a CPU run here
        assert card["metrics"]["evaluation"].startswith("20 samples, DDIM 50 steps")
        assert ("confident_share_0.9_ddim20" if name == "mnist-unet" else "diversity_guidance1") in card["metrics"]
        assert f"[{name}.gpu-deep] {name}: <= 10 MB in float16: " in log
        checkpoints.load(name, directory=folder)                 # the weights load as the lessons load them
    # step 3 reads what came back: each model's run is picked (20 samples miss targets: nothing to copy)
    sys.path.insert(0, str(ROOT / "tools"))
    import adopt_gpu_run
    assert adopt_gpu_run.main([str(tmp_path / "out"), "--dry-run"]) == 0
    picked = capsys.readouterr().out
    assert "-> mnist-unet: recipe gpu-deep (misses" in picked, picked
    assert "-> mnist-unet-cond: recipe gpu-deep" in picked, picked
    # what comes back from the device: at most 8 files, no deeper than two folders
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(tmp_path / "out").parts) <= 3 for p in files), files


@pytest.mark.parametrize("missing", ["OUT", "COURSE_DATA_DIR"])
def test_the_gpu_script_says_what_is_missing(tmp_path, missing):
    env = dict(os.environ, OUT=str(tmp_path), COURSE_DATA_DIR=str(tmp_path))
    del env[missing]
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_retrain.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and f"{missing}: set {missing} to" in proc.stderr
