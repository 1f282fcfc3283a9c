"""`course-grade --shard K/N` and `course-grade merge` (course_utils/grade_shards.py).

The slow tests grade the session's small class (tests/grading_small_class.py) once in one run and once in three
shards, merge the shards, and compare the two outputs file by file. The refusals are checked on copies of the
shards with one thing changed, and on shard folders built here from results and manifests (no kernel runs for
those).
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

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


# ------------------------------------------------------------------ grade_shards: choosing a shard's students
def test_shard_of_reads_the_first_8_bytes_of_sha256_big_endian():
    """The slice must stay the same across machines and course versions (a shard graded by an older install must
    slice as the others do): the first 16 hex digits of sha256(name), as one number, mod N, plus 1."""
    for n in (2, 3, 7):
        for name in [f"student{i}" for i in range(50)]:
            expected = int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) % n + 1
            assert grade_shards.shard_of(name, n) == expected, (name, n)


def test_select_keeps_the_students_of_its_shard_only():
    # test_shard_of_depends_on_the_name_only pins shard_of(.., 3): correct -> 3, wrong_other -> 1, wrong_same_2 -> 2
    subs = [SimpleNamespace(student=s) for s in ("correct", "wrong_other", "wrong_same_2")]
    assert [[s.student for s in grade_shards.select(subs, (k, 3))] for k in (1, 2, 3)] == [
        ["wrong_other"], ["wrong_same_2"], ["correct"]]


def test_a_shard_of_zero_shards_is_refused_with_a_shard_one_could_write():
    # "1/0": the advice must be a valid K/N (1/1), not the same impossible "1/0"
    with pytest.raises(ValueError, match=r"e\.g\. --shard 1/1$"):
        grade_shards.parse_shard("1/0")


def test_class_digest_ignores_the_order_and_sees_every_name():
    """Every shard of one class computes the same digest, whatever order its listing came in; two classes
    whose names only differ in where one name ends and the next begins are two classes."""
    assert grade_shards.class_digest(["b", "a", "c"]) == grade_shards.class_digest(["a", "b", "c"])
    assert grade_shards.class_digest(["ab", "c"]) != grade_shards.class_digest(["a", "bc"])


def test_the_manifest_says_which_run_and_shard_it_belongs_to(tmp_path):
    everyone, mine = ["carol", "alice", "bob", "dave"], ["dave", "alice"]
    grade_shards.write_manifest(tmp_path, worksheet=WS, source_sha256=SHA, shard=(2, 5), everyone=everyone,
                                mine=mine)
    manifest = json.loads((tmp_path / "shards" / f"{WS}.json").read_text())
    assert manifest == {"worksheet": WS, "source_sha256": SHA, "shard": 2, "shards": 5, "class_size": 4,
                        "class_sha256": hashlib.sha256(b"alice\nbob\ncarol\ndave").hexdigest(),
                        "students": ["alice", "dave"], "grader_sha256": None, "limits": None}


# ------------------------------------------------------------------ grade_shards: merge, on folders built here
WS = "01_schedules"
SHA = hashlib.sha256(b"the solution notebook").hexdigest()
CLASS = [f"student{i:02d}" for i in range(12)]


def _fake_result(student: str, ws: str = WS, sha: str | None = SHA) -> dict:
    """A result as course-grade writes it (the fields write_reports reads)."""
    return {"student": student, "worksheet": ws, "file": f"/submissions/{student}/{ws}.ipynb", "source_sha256": sha,
            "status": "graded", "message": "", "notes": [], "answers": {},
            "rows": [{"grade_id": "test_linear_beta_schedule", "points": 1, "max_points": 1, "status": "pass",
                      "message": ""}]}


def _write_result(folder: Path, result: dict, name: str | None = None) -> Path:
    path = folder / "results" / WS / f"{name or result['student']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path


def _fake_shards(root: Path, n: int, students: list[str] = CLASS, sha: str = SHA) -> list[Path]:
    """The N folders of ``course-grade ... --shard K/N``: each student's result in its shard, and the manifests."""
    folders = []
    for k in range(1, n + 1):
        folder = root / f"shard{k}"
        folder.mkdir(parents=True)
        mine = [s for s in students if grade_shards.shard_of(s, n) == k]
        for s in mine:
            _write_result(folder, _fake_result(s, sha=sha))
        grade_shards.write_manifest(folder, worksheet=WS, source_sha256=sha, shard=(k, n), everyone=students,
                                    mine=mine)
        folders.append(folder)
    return folders


def _merge(capsys, *args) -> tuple[int, str, str]:
    """``course-grade merge ARGS``: exit code, stdout, stderr."""
    code = grade_shards.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _totals(out: Path) -> list[str]:
    """The students of grades.csv's TOTAL rows, one row per student and worksheet."""
    with (out / "grades.csv").open() as f:
        return sorted(r["student"] for r in csv.DictReader(f) if r["grade_id"] == "TOTAL")


def test_merged_shards_grade_every_student_once(tmp_path, capsys):
    folders = _fake_shards(tmp_path, 3)
    code, out, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 0, err
    assert f"3 folders, {len(CLASS)} results of {len(CLASS)} students" in out
    assert _totals(tmp_path / "m") == CLASS
    assert (tmp_path / "m" / "report.html").is_file()


def test_merge_can_be_run_again_into_its_own_output(tmp_path, capsys):
    """A job that merges again (retried by the scheduler) finds its own results in --out: those are not stale."""
    folders = _fake_shards(tmp_path, 3)
    assert _merge(capsys, *folders, "--out", tmp_path / "m")[0] == 0
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 0, err
    assert _totals(tmp_path / "m") == CLASS


@pytest.mark.parametrize("content, message", [
    ("[]", "is not a result of course-grade"),                                      # JSON, not an object
    ("{not json", "cannot read"),
    (json.dumps({k: v for k, v in _fake_result("student00").items() if k != "student"}), "no student or worksheet"),
    (json.dumps({k: v for k, v in _fake_result("student00").items() if k != "worksheet"}), "no student or worksheet"),
])
def test_merge_refuses_a_file_that_is_not_a_result(tmp_path, capsys, content, message):
    """A damaged result is refused with exit code 2 and a reason, not a traceback nor a student lost silently."""
    folders = _fake_shards(tmp_path, 3)
    path = next((folders[0] / "results" / WS).glob("*.json"))
    path.write_text(content)
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 2 and message in err, err
    assert not (tmp_path / "m" / "grades.csv").exists()


def test_merge_refuses_a_folder_that_is_missing_or_empty(tmp_path, capsys):
    """A mistyped or empty folder among the shards is named, not merged as 'nothing to add'."""
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "typo", "is not a folder"), (tmp_path / "empty", "holds no results")):
        code, _, err = _merge(capsys, folder, "--out", tmp_path / "m")
        assert code == 2 and message in err, err


def test_merge_of_folders_graded_without_shard(tmp_path, capsys):
    """Two runs over halves of a class (no --shard) merge: only the overlap and SOURCE checks apply; a student
    graded in both folders is refused rather than one result overwriting the other."""
    a, b = tmp_path / "a", tmp_path / "b"
    for s in CLASS[:5]:
        _write_result(a, _fake_result(s))
    for s in CLASS[5:]:
        _write_result(b, _fake_result(s))
    code, _, err = _merge(capsys, a, b, "--out", tmp_path / "m")
    assert code == 0, err
    assert _totals(tmp_path / "m") == CLASS
    _write_result(b, _fake_result(CLASS[0]))
    code, _, err = _merge(capsys, a, b, "--out", tmp_path / "m2")
    assert code == 2 and f"student {CLASS[0]!r} was graded in both" in err, err


def test_merge_refuses_a_plain_folder_among_shards(tmp_path, capsys):
    folders = _fake_shards(tmp_path / "run", 2)
    plain = tmp_path / "plain"
    _write_result(plain, _fake_result("latecomer"))
    code, _, err = _merge(capsys, *folders, plain, "--out", tmp_path / "m")
    assert code == 2 and "was not graded with --shard" in err, err


def test_merge_refuses_a_shard_holding_students_outside_its_slice(tmp_path, capsys):
    """A result left in a shard's folder by an earlier run (a student since renamed or dropped) would be graded
    along with the class: the manifest says who the shard graded."""
    folders = _fake_shards(tmp_path, 3)
    _write_result(folders[0], _fake_result("left_over"))
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 2 and "outside its shard 1/3" in err and "left_over" in err, err


def test_merge_refuses_to_write_into_one_of_its_shards(tmp_path, capsys):
    folders = _fake_shards(tmp_path, 3)
    before = sorted(p.name for p in (folders[0] / "results" / WS).glob("*.json"))
    code, _, err = _merge(capsys, *folders, "--out", folders[0])
    assert code == 2 and "is one of the folders to merge" in err, err
    assert sorted(p.name for p in (folders[0] / "results" / WS).glob("*.json")) == before     # nothing copied in


def test_merge_refuses_an_empty_shard_of_another_source(tmp_path, capsys):
    """With 3 students and 5 shards at least 2 shards are empty (pigeonhole): such a shard has no result to say
    its SOURCE, only its manifest, and a manifest of another SOURCE is refused like a result of one."""
    n, students = 5, CLASS[:3]
    folders = _fake_shards(tmp_path, n, students)
    empty = next(k for k in range(1, n + 1) if all(grade_shards.shard_of(s, n) != k for s in students))
    other = hashlib.sha256(b"another version of the solution").hexdigest()
    grade_shards.write_manifest(folders[empty - 1], worksheet=WS, source_sha256=other, shard=(empty, n),
                                everyone=students, mine=[])
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 2 and "different SOURCEs" in err, err


def test_merge_refuses_shards_graded_by_different_course_utils_or_limits(tmp_path, capsys):
    """Shards graded on machines with two versions of course_utils (a check fixed on one), or with --timeout 400
    on one and 900 on the other, merged into one grades.csv of two standards: refused, naming what differs."""
    grader, limits = "a" * 64, {"cell_timeout": 120, "timeout": 900}

    def shards(root, n=2):
        folders = _fake_shards(root, n)
        for k, folder in enumerate(folders, 1):
            for path in (folder / "results" / WS).glob("*.json"):
                path.write_text(json.dumps(json.loads(path.read_text()) | {"grader_sha256": grader}))
            grade_shards.write_manifest(folder, worksheet=WS, source_sha256=SHA, shard=(k, n), everyone=CLASS,
                                        mine=[s for s in CLASS if grade_shards.shard_of(s, n) == k],
                                        grader_sha256=grader, limits=limits)
        return folders
    folders = shards(tmp_path / "same")
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m1")
    assert code == 0, err
    folders = shards(tmp_path / "version")
    path = next((folders[1] / "results" / WS).glob("*.json"))
    path.write_text(json.dumps(json.loads(path.read_text()) | {"grader_sha256": "b" * 64}))
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m2")
    assert code == 2 and "graded by different versions of course_utils, or of Python or a library it grades with " \
        "(grader_sha256 aaaaaaaaaaaa, bbbbbbbbbbbb...; each result's graded_with names the versions)" in err, err
    folders = shards(tmp_path / "limits")
    manifest = folders[1] / "shards" / f"{WS}.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"limits": limits | {"timeout": 400}}))
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m3")
    assert code == 2 and ("the shards were graded under different limits (--timeout 900 (shard 1/2), 400 (shard "
                          "2/2)): run each shard again with the same limits") in err, err


def test_merge_refuses_a_result_still_to_be_graded_alone(tmp_path, capsys):
    """A shard (or a plain run) stopped after a timeout beside another job without a CPU share of its own, before
    grading it again alone: merging it would publish a 0 that a classmate's busy processes may have caused. The
    merge names it and says to run that folder's command again; once graded alone, it merges."""
    folders = _fake_shards(tmp_path, 2)
    path = next((folders[1] / "results" / WS).glob("*.json"))
    path.write_text(json.dumps(json.loads(path.read_text()) | {"beside_others": True}))
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 2 and f"{folders[1]}: 1 result(s) of worksheet {WS!r} still to be graded alone ({path.stem}: " \
        in err and "run that folder's course-grade command again" in err, err
    path.write_text(json.dumps(json.loads(path.read_text()) | {"graded_alone": {"points_beside_others": 0}}))
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 0, err


def test_merge_refuses_a_manifest_course_grade_did_not_write(tmp_path, capsys):
    """A manifest without N (edited, or cut short) is named, not a TypeError traceback from int(None)."""
    folders = _fake_shards(tmp_path, 3)
    path = folders[1] / "shards" / f"{WS}.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "shards"}))
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 2 and "a manifest of worksheet '01_schedules' that course-grade did not write" in err, err


def test_merge_refuses_shards_whose_students_are_not_the_class(tmp_path, capsys):
    """Two versions of the grader slicing the class differently (here: shard 1's students by another hash) can
    leave a student in no shard while each shard is complete and none overlaps: the union must be the class."""
    folders = _fake_shards(tmp_path, 2)
    mine = sorted(p.stem for p in (folders[0] / "results" / WS).glob("*.json"))
    lost = mine.pop()                       # shard 1 of another version: one student fewer, graded nowhere
    (folders[0] / "results" / WS / f"{lost}.json").unlink()
    grade_shards.write_manifest(folders[0], worksheet=WS, source_sha256=SHA, shard=(1, 2), everyone=CLASS, mine=mine)
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "m")
    assert code == 2 and f"the shards' students ({len(CLASS) - 1}) are not the class each shard listed " \
        f"({len(CLASS)})" in err, err


def test_merge_refuses_an_empty_shard_given_twice(tmp_path, capsys):
    # an empty shard has no students to overlap: only its manifest's K says it was given twice
    n, students = 5, CLASS[:3]
    folders = _fake_shards(tmp_path, n, students)
    empty = next(k for k in range(1, n + 1) if all(grade_shards.shard_of(s, n) != k for s in students))
    again = tmp_path / "again"                       # another folder with the same shard (the same one twice is
    shutil.copytree(folders[empty - 1], again)       # refused by its path, test_two_shards_in_one_folder_...)
    code, _, err = _merge(capsys, *folders, again, "--out", tmp_path / "m")
    assert code == 2 and f"shard {empty}/{n} is given twice" in err, err


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


def test_two_shards_in_one_folder_a_folder_given_twice_and_an_output_file_are_refused(tmp_path, capsys):
    """Two shard jobs given one --out: the second overwrote the first's manifest and merge then said a shard was
    missing; a folder given twice read 'graded in both X and X'; --out naming a file gave a traceback (an
    instructor's report)."""
    grade_shards.write_manifest(tmp_path, worksheet=WS, source_sha256=SHA, shard=(1, 2), everyone=CLASS, mine=[])
    with pytest.raises(ValueError, match="already holds shard 1/2 of 01_schedules: give each shard its own --out"):
        grade_shards.write_manifest(tmp_path, worksheet=WS, source_sha256=SHA, shard=(2, 2), everyone=CLASS, mine=[])
    grade_shards.write_manifest(tmp_path, worksheet=WS, source_sha256=SHA, shard=(1, 2), everyone=CLASS, mine=[])
    folders = _fake_shards(tmp_path / "run", 2)
    code, _, err = _merge(capsys, folders[0], folders[0], folders[1], "--out", tmp_path / "merged")
    assert code == 2 and "is given twice" in err, err
    (tmp_path / "afile").write_text("")
    code, _, err = _merge(capsys, *folders, "--out", tmp_path / "afile")
    assert code == 2 and "is a file: choose a folder" in err and "Traceback" not in err, err
