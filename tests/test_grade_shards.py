"""`course-grade --shard K/N` and `course-grade merge` (course_utils/grade_shards.py).

The slow tests grade the session's small class (tests/grading_small_class.py) once in one run and once in three
shards, merge the shards, and compare the two outputs file by file. The refusals are checked on copies of the
shards with one thing changed (no kernel runs for those).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from course_utils import grade_shards

import grading_small_class as small


# ------------------------------------------------------------------ fast: K/N, the hash
@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("2/3", (2, 3)), ("8/8", (8, 8))])
def test_parse_shard_accepts_k_of_n(text, expected):
    assert grade_shards.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/2/3", ""])
def test_parse_shard_refuses_with_a_clear_message(text):
    with pytest.raises(ValueError, match="--shard"):
        grade_shards.parse_shard(text)


def test_the_cli_refuses_a_bad_shard_before_grading(tmp_path):
    proc = small.grade(tmp_path / "none.ipynb", tmp_path, "--out", tmp_path / "out", "--shard", "4/3", "--allow-root")
    assert proc.returncode == 2 and "1 <= K <= N" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_shard_of_depends_on_the_name_only():
    # pinned: the same on every machine and Python version (sha256 of the name, not hash() or the order)
    assert [grade_shards.shard_of(n, 3) for n in ("correct", "wrong_other", "wrong_same_2")] == [3, 1, 2]
    counts = [0] * 8
    for i in range(4000):
        counts[grade_shards.shard_of(f"student{i}", 8) - 1] += 1
    assert min(counts) > 400, counts        # about 500 each


# ------------------------------------------------------------------ slow: three shards merged = one run
@pytest.fixture(scope="module")
def shards(small_class):
    assert small_class["proc"].returncode == 0, small_class["proc"].stderr[-3000:]
    root = small_class["root"]
    folders = [root / f"shard{k}" for k in (1, 2, 3)]
    procs = [small.grade(small_class["solution"], small_class["subs"], "--out", d, "--shard", f"{k}/3", *small.ARGS,
                         env=small_class["env"]) for k, d in enumerate(folders, 1)]
    merged = root / "merged"
    merge = small.grade("merge", *folders, "--out", merged)
    return dict(folders=folders, procs=procs, merged=merged, merge=merge, single=small_class["out"],
                ws=small_class["worksheet"])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _result(data: bytes) -> dict:
    r = json.loads(data)
    r.pop("seconds", None)          # wall-clock time of a run: the only field two runs may differ in
    return r


@pytest.mark.slow
def test_every_student_is_graded_by_exactly_one_shard(shards):
    for proc in shards["procs"]:
        assert proc.returncode == 0, proc.stderr[-3000:]
    seen = []
    for d in shards["folders"]:
        manifest = json.loads((d / "shards" / f"{shards['ws']}.json").read_text())
        results = sorted(p.stem for p in (d / "results" / shards["ws"]).glob("*.json"))
        assert results == manifest["students"] and results, d       # each shard of this class has students
        seen += results
    single = sorted(p.stem for p in (shards["single"] / "results" / shards["ws"]).glob("*.json"))
    assert sorted(seen) == single and len(single) == 8


@pytest.mark.slow
def test_three_shards_merged_equal_one_run(shards):
    assert shards["merge"].returncode == 0, shards["merge"].stderr
    merged, single = _files(shards["merged"]), _files(shards["single"])
    assert set(merged) == set(single), set(merged) ^ set(single)
    assert sorted(merged["grades.csv"].splitlines()) == sorted(single["grades.csv"].splitlines())
    for name in merged:
        if name.startswith("results/"):
            assert _result(merged[name]) == _result(single[name]), name
        else:       # grades.csv, feedback/*.md, report.html
            assert merged[name] == single[name], name


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
def test_merge_refuses_a_missing_shard(shards):
    one, two, _ = shards["folders"]
    proc = small.grade("merge", one, two, "--out", one.parent / "m-missing")
    assert proc.returncode == 2 and "3/3 missing" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_merge_refuses_overlapping_students(shards):
    one, two, three = shards["folders"]
    again = _copy(one, one.parent / "shard1-again")
    proc = small.grade("merge", one, two, three, again, "--out", one.parent / "m-overlap")
    assert proc.returncode == 2 and "graded in both" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_merge_refuses_shards_of_different_sources(shards, tmp_path):
    one, two, three = shards["folders"]
    other = _copy(two, tmp_path / "shard2-other-source")
    path = next((other / "results" / shards["ws"]).glob("*.json"))
    r = json.loads(path.read_text())
    r["source_sha256"] = "0" * 64       # graded against another version of the solution
    path.write_text(json.dumps(r))
    proc = small.grade("merge", one, other, three, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "different SOURCEs" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_merge_refuses_different_worksheets(shards, tmp_path):
    one, two, three = shards["folders"]
    other = _copy(three, tmp_path / "shard3-other-worksheet")
    (other / "results" / shards["ws"]).rename(other / "results" / "02_forward")
    (other / "shards" / f"{shards['ws']}.json").rename(other / "shards" / "02_forward.json")
    for path in [*(other / "results" / "02_forward").glob("*.json"), other / "shards" / "02_forward.json"]:
        r = json.loads(path.read_text())
        r["worksheet"] = "02_forward"
        path.write_text(json.dumps(r))
    proc = small.grade("merge", one, two, other, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "different worksheets" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_merge_refuses_an_unfinished_shard(shards, tmp_path):
    one, two, three = shards["folders"]
    cut = _copy(three, tmp_path / "shard3-cut")
    next((cut / "results" / shards["ws"]).glob("*.json")).unlink()
    proc = small.grade("merge", one, two, cut, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "did not finish" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_merge_refuses_when_the_first_shard_is_missing(shards, tmp_path):
    """Shard 1/N counts like any other: merging 2/3 and 3/3 alone would publish a grades.csv without a third of
    the class, and the students of shard 1 would get no grade and no feedback, without a word."""
    _, two, three = shards["folders"]
    proc = small.grade("merge", two, three, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "shard(s) 1/3 missing" in proc.stderr, proc.stderr
    assert not (tmp_path / "m" / "grades.csv").exists()


@pytest.mark.slow
def test_merge_refuses_shards_of_different_runs(shards, tmp_path):
    """A shard of a run with another N (its students were sliced differently), or of another class (a submission
    added or renamed between the runs), does not complete the others: merged, some students would be graded twice
    or not at all. The manifest says which run a shard belongs to."""
    one, two, three = shards["folders"]
    for key, value in (("shards", 4), ("class_sha256", "0" * 64)):
        other = _copy(three, tmp_path / f"shard3-other-{key}")
        path = other / "shards" / f"{shards['ws']}.json"
        manifest = json.loads(path.read_text())
        manifest[key] = value
        path.write_text(json.dumps(manifest))
        proc = small.grade("merge", one, two, other, "--out", tmp_path / f"m-{key}")
        assert proc.returncode == 2 and "different runs" in proc.stderr, (key, proc.stderr)


@pytest.mark.slow
def test_merge_refuses_an_out_folder_with_results_of_other_students(shards, tmp_path):
    """grades.csv is rebuilt from every result in --out/results: a result left there by an earlier run (a student
    who since dropped the course, a folder renamed) would be graded along with the shards' students."""
    one, two, three = shards["folders"]
    out = tmp_path / "m"
    stale = out / "results" / shards["ws"] / "left_over.json"
    stale.parent.mkdir(parents=True)
    r = json.loads(next((one / "results" / shards["ws"]).glob("*.json")).read_text())
    r["student"] = "left_over"
    stale.write_text(json.dumps(r))
    proc = small.grade("merge", one, two, three, "--out", out)
    assert proc.returncode == 2 and "already holds results" in proc.stderr and "left_over" in proc.stderr, proc.stderr
    assert not (out / "grades.csv").exists()


@pytest.mark.slow
def test_merge_refuses_a_result_that_does_not_say_its_source(shards, tmp_path):
    """A result without source_sha256 (written by hand, or by another tool) cannot show it was graded against the
    same solution as the others: it is refused like a result of another SOURCE, not merged on trust."""
    one, two, three = shards["folders"]
    other = _copy(two, tmp_path / "shard2-no-source")
    path = next((other / "results" / shards["ws"]).glob("*.json"))
    r = json.loads(path.read_text())
    del r["source_sha256"]
    path.write_text(json.dumps(r))
    proc = small.grade("merge", one, other, three, "--out", tmp_path / "m")
    assert proc.returncode == 2 and "different SOURCEs" in proc.stderr, proc.stderr
