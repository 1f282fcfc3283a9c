"""bench/ and tools/screenshots.py: every command that README.md and docs/*.md quote still parses, and each bench
runs end to end at its tiniest size and prints the table it promises (the quoted figures come from these scripts)."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"python (?:-m course_utils\.pretrain|(?:bench|tools)/\w+\.py)\b")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
PLACEHOLDERS = {"NAME": "mnist-unet"}            # `python -m course_utils.pretrain NAME`
# flags the prose quotes without the whole command
FRAGMENTS = [
    ("README.md", ["bench/bench_samplers.py", "--solvers", "DDIM", "DPM-Solver++(2M)", "--spacing", "leading"]),
    ("README.md", ["bench/bench_samplers.py", "--spacing", "linspace"]),
    ("checkpoints.md", ["bench/diagnose_confidence.py", "--from-scratch", "--anneal", "2000"]),
    ("Makefile", ["tools/screenshots.py", "docs/screenshots"]),
]


def quoted_commands() -> list[tuple[str, list[str]]]:
    """(file, [script or module, args...]) of every `python bench/...`, `python tools/...` and
    `python -m course_utils.pretrain ...` in the docs: code blocks (backslash continuations joined, comments cut)
    and inline code spans (which may wrap across lines)."""
    found = []
    for md in DOCS:
        text = md.read_text(encoding="utf-8")
        spans = [re.sub(r"\s#.*", "", line) for block in FENCE.findall(text)
                 for line in block.replace("\\\n", " ").splitlines()]
        spans += [s.replace("\n", " ") for s in re.findall(r"(?<!`)`([^`]+)`(?!`)", FENCE.sub("", text))]
        for span in spans:
            for match in COMMAND.finditer(span):
                words = shlex.split(span[match.start():])[1:]
                for stop in ("&&", ";", "|"):
                    words = words[:words.index(stop)] if stop in words else words
                if words[0] == "-m":
                    words = words[1:]
                found.append((md.name, [PLACEHOLDERS.get(w, w) for w in words]))
    return found + FRAGMENTS


QUOTED = quoted_commands()


class _Parsed(Exception):
    """The script's parser accepted its arguments (raised instead of running the measurement)."""


def test_the_docs_quote_every_bench():
    """The extraction below must keep finding the quotes; if the docs' format changes, this fails, not silence."""
    targets = {argv[0] for _, argv in QUOTED}
    expected = {f"bench/{p.name}" for p in (ROOT / "bench").glob("*.py") if p.name != "mnist_references.py"}
    assert expected | {"course_utils.pretrain", "tools/screenshots.py", "tools/adopt_gpu_run.py"} <= targets, targets


@pytest.mark.parametrize("where, argv", QUOTED, ids=[f"{w}:{' '.join(a)}"[:90] for w, a in QUOTED])
def test_quoted_command_parses(where, argv, monkeypatch):
    """A flag renamed or a choice dropped in a script must fail here, not when a reader reruns a quoted figure."""
    target, *args = argv
    real = argparse.ArgumentParser.parse_args

    def record(self, args=None, namespace=None):
        self.allow_abbrev = False                   # `--warmup` must not pass as an abbreviation of `--warmup-steps`
        real(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", record)
    monkeypatch.setattr(sys, "argv", [target, *args])
    try:
        if target == "course_utils.pretrain":
            importlib.import_module(target).main(args)
        else:
            monkeypatch.syspath_prepend(str((ROOT / target).parent))   # bench/mnist_references.py, a sibling
            runpy.run_path(str(ROOT / target), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as exit:
        pytest.fail(f"{where} quotes `python {shlex.join(argv)}`, which its parser rejects (exit {exit.code})")
    pytest.fail(f"{target} returned without parsing its arguments")


# ---------------------------------------------------------------- the scripts, end to end, at their tiniest
def _run(tmp_path: Path, *argv: str, timeout: int = 240) -> str:
    env = dict(os.environ, MPLBACKEND="Agg")
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc.stdout


def _table(stdout: str, first: str) -> tuple[list[str], list[list[str]]]:
    """The Markdown table whose header starts with ``first``: (header, rows); every row as wide as the header."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {first} |")), None)
    assert start is not None, f"no table headed {first!r} in:\n{stdout}"
    cells = [[c.strip() for c in line.strip().strip("|").split(" | ")]
             for line in lines[start:] if line.startswith("| ")]
    header, rows = cells[0], cells[1:]
    assert rows and all(len(r) == len(header) and all(r) for r in rows), f"{header}\n{rows}"
    return header, rows


@pytest.fixture
def mnist(missing):
    """The benches judge samples against the MNIST test set from COURSE_DATA_DIR (CI sets it)."""
    root = os.environ.get("COURSE_DATA_DIR")
    if not root or not (Path(root) / "MNIST" / "raw").is_dir():
        missing(f"MNIST not found under COURSE_DATA_DIR={root!r} (expected MNIST/raw/*-idx*-ubyte)")


def _bench(name: str) -> str:
    return str(ROOT / "bench" / name)


@pytest.mark.slow
def test_bench_quality(tmp_path, mnist):
    """The README's DDPM-vs-DDIM table: one row per sampler run, its six columns, and a sample grid per row."""
    out = _run(tmp_path, _bench("bench_quality.py"), "--n", "4", "--steps", "2", "3", "--no-ddpm",
               "--grid-dir", "grids")
    header, rows = _table(out, "sampler")
    assert header == ["sampler", "steps", "seconds", "FID (course)", "KID (course)", "confident > 0.9"]
    assert [r[:2] for r in rows] == [["DDIM", "2"], ["DDIM", "3"]]
    assert len(list((tmp_path / "grids").glob("bench_quality_*.png"))) == 2


@pytest.mark.slow
def test_bench_samplers(tmp_path, mnist):
    """Lesson 7 plots this script's JSON: the reference row, one row per solver and budget, and the summary."""
    out = _run(tmp_path, _bench("bench_samplers.py"), "--n", "4", "--calls", "2", "--json", "s.json")
    header, rows = _table(out, "sampler")
    assert header[:3] == ["sampler", "steps", "network calls"] and len(header) == 7
    assert [r[0] for r in rows] == ["DDIM (lesson 5's grid)", "DDIM", "Heun", "DPM-Solver++(2M)"]
    assert [r[2] for r in rows] == ["50", "2", "1", "2"]                 # Heun: 2N - 1 calls within the budget
    result = json.loads((tmp_path / "s.json").read_text())
    assert len(result["rows"]) == 4 and set(result["fewest_calls_matching_ddim50"]) == {"DDIM", "Heun",
                                                                                        "DPM-Solver++(2M)"}
    assert result["ddpm_1000"] is None      # the README's DDPM run (n = 300) is no reference for 4 other samples


@pytest.mark.slow
def test_bench_guidance(tmp_path, mnist):
    """The README's held-out-judge guidance sweep: one row per scale, accuracy and diversity columns, grids."""
    out = _run(tmp_path, _bench("bench_guidance.py"), "--n", "20", "--scales", "0", "3", "--steps", "2",
               "--grid-dir", "grids")
    header, rows = _table(out, "guidance scale")
    assert header == ["guidance scale", "accuracy (held-out)", "mean confidence", "FID (course)", "diversity",
                      "seconds"]
    assert [r[0] for r in rows] == ["0", "3"] and all(0 <= float(r[1]) <= 1 for r in rows)
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["bench_guidance_w0.png", "bench_guidance_w3.png"]


@pytest.mark.slow
def test_bench_student_training(tmp_path, mnist):
    """The README's training-time table: a row per model with its config's batch and steps."""
    out = _run(tmp_path, _bench("bench_student_training.py"), "--models", "mnist-classifier", "--steps", "2",
               "--warmup", "1", "--threads", "1")
    header, rows = _table(out, "model")
    assert header[1:3] == ["batch", "config steps"] and len(header) == 7
    assert [r[0] for r in rows] == ["mnist-classifier"] and float(rows[0][3]) > 0


@pytest.mark.slow
def test_bench_kernel_start(tmp_path):
    """docs/grading.md's cost of a kernel per submission: a row per run of each, with CPU and wall seconds (at
    least a tenth of a second each: both import torch). Not their order: one run of each on a busy CI machine gave
    the kernel 1.9 s of CPU and torch alone 2.0 s."""
    out = _run(tmp_path, _bench("bench_kernel_start.py"), "--runs", "1")
    header, rows = _table(out, "what")
    assert header == ["what", "run", "CPU s", "wall s"] and [r[:2] for r in rows] == [
        ["kernel + grader's imports", "1"], ["import torch alone", "1"]], out
    assert all(float(r[2]) >= 0.1 and float(r[3]) >= 0.1 for r in rows), out


@pytest.mark.slow
def test_bench_parse_memory(tmp_path):
    """docs/grading.md's memory of the grader's parse: one row per size; the text of a notebook of ASCII with one
    emoji is stored at 4 bytes a character, so a 4 MiB notebook grows the parsing process by more than 3 times its
    size (a parse that kept the bytes only, or a peak read in the writing process, would not)."""
    out = _run(tmp_path, _bench("bench_parse_memory.py"), "--mb", "1", "4")
    header, rows = _table(out, "file MiB")
    assert header[-1] == "x the file" and [round(float(r[0])) for r in rows] == [1, 4], out
    assert float(rows[1][-1]) > 3 and float(rows[1][3]) > 12, out


@pytest.mark.slow
def test_bench_unet_widths(tmp_path):
    """docs/checkpoints.md's cost table: the shipped network first, at 1.00x of itself, then the recipes."""
    out = _run(tmp_path, _bench("bench_unet_widths.py"), "--threads", "1", "--n", "2", "--steps", "2",
               "--repeats", "1")
    header, rows = _table(out, "architecture")
    assert header[-1] == "vs shipped" and len(rows) >= 3
    assert rows[0][0].startswith("shipped mnist-unet") and rows[0][-1] == "1.00x"


@pytest.mark.slow
def test_bench_train(tmp_path, require):
    """The README's throughput figures: both UNets timed per mode, and the ours / diffusers ratio."""
    require("diffusers", "bench_train.py compares our UNet with diffusers' UNet2DModel")
    out = _run(tmp_path, _bench("bench_train.py"), "--batch", "2", "--steps", "1", "--warmup", "0",
               "--modes", "fp32")
    timed = [line for line in out.splitlines() if re.match(r"(ours|diffusers) .* fp32 +[\d.]+ +[\d.]+", line)]
    assert len(timed) == 2, out
    assert re.search(r"^fp32 +ours / diffusers = [\d.]+x$", out, re.M), out


@pytest.mark.slow
def test_bench_sampling(tmp_path):
    """`make bench`'s sampling figures: the four DDIM rows, the two extrapolated DDPM rows and the ratios."""
    out = _run(tmp_path, _bench("bench_sampling.py"), "--n", "2", "--ddpm-steps", "2")
    for label in ("DDIM 50, fp32, no_grad only", "DDIM 50, fp32 ", "DDIM 50, bf16 autocast",
                  "DDIM 50, bf16 + channels_last", "DDPM 1000, fp32", "DDPM 1000, bf16 autocast"):
        assert re.search(rf"^{re.escape(label)} *[\d.]+ s", out, re.M), (label, out)
    assert "EXTRAPOLATED: 2 steps timed" in out and "DDPM 1000 / DDIM 50: fp32" in out


@pytest.mark.slow
def test_bench_grading(tmp_path):
    """The grading figures of the README and docs/grading.md: every submission scored as expected, exit 0."""
    out = _run(tmp_path, _bench("bench_grading.py"), "--n", "2", "--workers", "1", "--json", "g.json")
    figures = json.loads((tmp_path / "g.json").read_text())
    assert [r["points_as_expected"] for r in figures["runs"]["current"]] == [2], figures
    assert figures["command"] == "python bench/bench_grading.py --n 2 --workers 1"     # the run's own options
    assert "current: round 1:" in out


@pytest.mark.slow
def test_diagnose_confidence(tmp_path, mnist):
    """docs/checkpoints.md's diagnosis: the judge's calibration, the four DDIM grids and the PNG of failures."""
    out = _run(tmp_path, _bench("diagnose_confidence.py"), "--n", "2", "--grid-dir", "grids")
    assert re.search(r"^1\. judge .* temperature [\d.]+", out, re.M), out
    for grid in ("uniform", "trailing", "linspace", "quadratic"):
        assert re.search(rf"^   {grid} +\d+ steps, .*confident [\d.]+", out, re.M), (grid, out)
    assert (tmp_path / "grids" / "diagnose_lowest_confidence.png").is_file()


@pytest.mark.slow
def test_lab_sweep(tmp_path, mnist):
    """docs/lab_sweep.md's rows: one per weights and DDIM steps at each evaluation, also in the JSON lines."""
    out = _run(tmp_path, _bench("lab_sweep.py"), "--configs", "size16-base16", "--eval-images", "64", "--n", "2",
               "--sampling-steps", "2", "--decays", "0.995", "--json", "rows.jsonl")
    header, rows = _table(out, "config")
    assert len(header) == 10 and header[5] == "weights"
    assert [(r[0], r[5], r[6]) for r in rows] == [("size16-base16", "raw", "2"), ("size16-base16", "ema 0.995", "2")]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_lab_sweep_throughput(tmp_path):
    """docs/performance.md's throughput ratio: each config in each dtype, the first at 1.0 of itself."""
    out = _run(tmp_path, _bench("lab_sweep.py"), "--configs", "size16-base16", "size16-base16-m124-noattn-cosine1M",
               "--throughput", "0.001")
    header, rows = _table(out, "config")
    assert header[1] == "dtype" and header[5] == "ratio to the first"
    assert [(r[0], r[1]) for r in rows] == [("size16-base16", "float32"),
                                            ("size16-base16-m124-noattn-cosine1M", "float32"),
                                            ("size16-base16", "bfloat16"),
                                            ("size16-base16-m124-noattn-cosine1M", "bfloat16")]
    assert rows[0][5] == rows[2][5] == "1.0"


@pytest.mark.slow
def test_moons_reference(tmp_path):
    """docs/lab_sweep.md section 5: a row per config and the figure. Its configs train 3,000+ steps, so this
    runs the script's own main on one tiny config added to CONFIGS."""
    driver = ("import sys; sys.path.insert(0, sys.argv[1]); import moons_reference as m; "
              "m.CONFIGS = {'tiny': (16, 2, 1e-3, 100, 0.99)}; raise SystemExit(m.main(sys.argv[2:]))")
    out = _run(tmp_path, "-c", driver, str(ROOT / "bench"), "--png", "moons.png")
    header, rows = _table(out, "config")
    assert header == ["config", "train s", "loss (last 100)", "live: on the moons", "EMA: on the moons"]
    assert [r[0] for r in rows] == ["tiny"] and (tmp_path / "moons.png").is_file()
    assert re.search(r"^data: on the moons 0\.9\d\d$", out, re.M), out


def test_lab_sweep_refuses_minutes_beside_evaluation_points():
    """--minutes was silently ignored beside --eval-at or --eval-images (the last evaluation ends the run)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        lab_sweep = importlib.import_module("lab_sweep")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for extra in (["--eval-at", "5"], ["--eval-images", "1000"]):
        with pytest.raises(SystemExit) as exit:
            lab_sweep.main(["--configs", "size16-base16", "--minutes", "15", *extra])
        assert exit.value.code == 2, extra


@pytest.mark.slow
def test_bench_gradescope_memory(tmp_path):
    """The memory figures of docs/grading.md's Gradescope section: the bundle grades the solution (8 points), and
    the process that waits for course-grade holds no torch (under 100 MB; it held 515 to 524 MB when it did)."""
    out = _run(tmp_path, _bench("bench_gradescope_memory.py"))
    row = next(line for line in out.splitlines() if line.startswith("current"))
    waiting, course_grade, together, score = row.split()[1:5]
    assert score == "8.0" and 0 < int(waiting) < 100 and int(course_grade) > 100, out
    assert int(together) >= int(course_grade), out
