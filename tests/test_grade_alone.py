"""A submission that ran out of time beside another, where the grader could not give each its own share of the CPU,
is graded again alone (grade.beside_without_cpu, grade_report.waiting_alone).

The third red team's submission of 200 busy ``setsid`` processes left two honest classmates graded beside it 0/7
each on worksheet 4. A cgroup's ``cpu`` controller mends that (sandbox/cgroups.py); an unprivileged grader without
one could only be told to use ``--workers 1``. Now such a timeout is graded once more with nothing beside it, and
that run's verdict is the one kept. These tests drive ``grade_class`` with a stand-in for ``grade_submission``
that times out whenever another submission is graded at the same moment: what is under test is the class run's
bookkeeping (who is graded again, when, how often, what the result and the feedback say), not the sandbox.
"""
from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from course_utils import grade

SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "01_schedules.ipynb"
CPU = {"cpu": "cgroup v2: the same share of the CPU as each other submission graded at once"}


class Stand_in:
    """``grade_submission`` for students whose verdict depends on company: ``crowded`` time out when another job
    runs at any moment of theirs, ``looping`` always; the others pass. ``with_cpu`` had a cpu cgroup."""

    def __init__(self, crowded=(), looping=(), with_cpu=(), second=()):
        self.crowded, self.looping, self.with_cpu = set(crowded), set(looping), set(with_cpu)
        self.second = set(second)       # crowded in a second run only: a fail, with ``second_run_timeouts``
        self.lock, self.now, self.calls = threading.Lock(), set(), []

    def __call__(self, source, sub, opts):
        with self.lock:
            self.now.add(sub.student)
            company = len(self.now) > 1
        for _ in range(10):         # 0.3 s, watching for company
            time.sleep(0.03)
            with self.lock:
                company = company or len(self.now) > 1
        with self.lock:
            self.now.discard(sub.student)
            self.calls.append((sub.student, company))
        late = sub.student in self.looping or (sub.student in self.crowded and company)
        rows = [{"grade_id": g.grade_id, "max_points": g.points, "points": 0 if late else g.points,
                 "status": "timeout" if late else "pass", "message": "ran past the limit" if late else "passed"}
                for g in source.graded]
        extra = {}
        if sub.student in self.second and company:      # its first run in time, a TODO's second run not
            rows[-1].update(points=0, status="fail", message="wrong [... that run ended before its verdict]")
            extra["second_run_timeouts"] = [rows[-1]["grade_id"]]
        return {**extra, "student": sub.student, "submitted_as": sub.submitted_as or sub.student,
                "worksheet": source.worksheet, "file": str(sub.path),
                "sha256": grade._fingerprint(sub, opts.max_notebook_mb), "source_sha256": source.sha256,
                "grader_sha256": grade.grader_sha256(), "limits": opts.graded_under(), "notes": [],
                "protections": dict(CPU) if sub.student in self.with_cpu else {}, "cell_errors": [],
                "seconds": 0.3, "rows": rows, "answers": {}, "status": "graded", "message": ""}


@pytest.fixture
def cheap_run(monkeypatch):
    """grade_class without the kernel's package or zygotes: the stand-in grades."""
    monkeypatch.setattr(grade, "kernel_package", lambda source, scratch, private: None)
    monkeypatch.setattr(grade.subprocess, "run", lambda *a, **k: None)    # matplotlib's font cache

    def run(subs: Path, out: Path, stand_in: Stand_in, workers: int = 2) -> dict:
        monkeypatch.setattr(grade, "grade_submission", stand_in)
        return grade.grade_class(SOLUTION, [str(subs)], out, workers=workers, opts=grade.Options(pool=False),
                                 progress=False, allow_root=True)
    return run


def _class(tmp_path: Path, *students: str) -> Path:
    subs = tmp_path / "subs"
    subs.mkdir()
    for s in students:
        shutil.copy(SOLUTION, subs / f"{s}.ipynb")
    return subs


def _result(out: Path, student: str) -> dict:
    return json.loads((out / "results" / "01_schedules" / f"{student}.json").read_text())


def test_a_timeout_beside_another_without_a_cpu_share_is_graded_again_alone(tmp_path, cheap_run, capsys):
    subs, out = _class(tmp_path, "amy", "bob", "carol", "dave"), tmp_path / "out"
    # bob is slowed by company; carol too, but she had a cpu cgroup (her timeout is hers); dave loops anyway
    stand_in = Stand_in(crowded={"bob", "carol"}, looping={"dave"}, with_cpu={"carol"})
    stats = cheap_run(subs, out, stand_in)
    err = capsys.readouterr().err
    full = sum(g.points for g in grade.load_source(SOLUTION).graded)
    bob = _result(out, "bob")
    assert bob["graded_alone"] == {"points_beside_others": 0, "seconds_beside_others": 0.3}
    assert grade._points(bob) == full and "beside_others" not in bob
    assert bob["notes"][0].startswith("This notebook ran past a time limit while another submission was graded")
    assert "(beside others: 0 points)" in bob["notes"][0]
    assert "graded again with nothing beside it" in (out / "feedback" / "bob.md").read_text()
    # each graded alone exactly once more, and with no one beside it then; carol (a cpu share) and amy never
    again = [s for s, company in stand_in.calls[4:]]
    assert sorted(again) == ["bob", "dave"] and not any(company for _, company in stand_in.calls[4:])
    assert [s for s, _ in stand_in.calls].count("carol") == 1
    assert _points_of(out, "carol") == 0 and not {"graded_alone", "beside_others"} & set(_result(out, "carol"))
    assert _points_of(out, "dave") == 0 and _result(out, "dave")["graded_alone"]["points_beside_others"] == 0
    assert ("2 submission(s) of 01_schedules ran past a time limit while graded beside another, and the grader "
            "could not give each its own share of the CPU (no cgroup cpu controller): graded again one at a time, "
            "at most 30 min (--timeout each; Ctrl-C leaves them to the next run): bob, dave") in err, err
    assert f"course-grade: graded alone: 2, of whom 1 with other automatic points: bob 0 -> {full:g}\n" in err, err
    assert stats["graded"] == 4
    # a rerun keeps all four: what was graded alone is not graded alone again
    stand_in2 = Stand_in(crowded={"bob", "carol"}, looping={"dave"}, with_cpu={"carol"})
    assert cheap_run(subs, out, stand_in2)["graded"] == 0 and stand_in2.calls == []


def test_a_second_run_out_of_time_beside_another_is_graded_again_alone(tmp_path, cheap_run, capsys):
    """A TODO graded again with the course's answer to a TODO it calls (grade_callees), whose second run ran out
    of time beside another submission without a CPU share: the row keeps its first fail, and was kept for good.
    ``second_run_timeouts`` makes it one to grade again alone, as a first run's timeout is."""
    subs, out = _class(tmp_path, "amy", "erin"), tmp_path / "out"
    stand_in = Stand_in(second={"erin"})
    cheap_run(subs, out, stand_in)
    full = sum(g.points for g in grade.load_source(SOLUTION).graded)
    erin = _result(out, "erin")
    assert erin["graded_alone"]["points_beside_others"] == full - grade.load_source(SOLUTION).graded[-1].points
    assert grade._points(erin) == full and "second_run_timeouts" not in erin
    assert [s for s, _ in stand_in.calls[2:]] == ["erin"] and "graded alone: 1" in capsys.readouterr().err
    assert "graded_alone" not in _result(out, "amy")


class Not_set_up(Stand_in):
    """``unset`` maps a student to how many of their gradings find no sandbox (grade.SandboxNotSetUp)."""

    def __init__(self, unset: dict[str, int]):
        super().__init__()
        self.unset = dict(unset)

    def __call__(self, source, sub, opts):
        if sub.student.startswith("file_"):         # a file that is no notebook: a status, but no run
            result = super().__call__(source, sub, opts)
            return {**result, "status": "not_a_notebook", "message": "not a notebook"}
        if self.unset.get(sub.student, 0) > 0:
            self.unset[sub.student] -= 1
            with self.lock:
                self.calls.append((sub.student, "not set up"))
            raise grade.SandboxNotSetUp("OSError: [Errno 28] No space left on device")
        return super().__call__(source, sub, opts)


def test_a_sandbox_not_set_up_is_tried_once_more_at_the_end_of_the_run(tmp_path, cheap_run, capsys):
    """The fifth red team spent the user's epoll watches while classmates were graded: two sandboxes could not be
    set up (grader errors, left to the next run). Now each is tried once more at the end of the run, one at a
    time, when the run graded anyone; one that fails again is left to the next run, as before."""
    subs, out = _class(tmp_path, "amy", "bob", "carl"), tmp_path / "out"
    stand_in = Not_set_up({"bob": 1, "carl": 2})
    stats = cheap_run(subs, out, stand_in)
    err = capsys.readouterr().err
    full = sum(g.points for g in grade.load_source(SOLUTION).graded)
    assert _result(out, "bob")["status"] == "graded" and _points_of(out, "bob") == full
    carl = _result(out, "carl")
    assert carl["status"] == "grader_error" and carl["message"] == grade.NOT_SET_UP
    assert [s for s, what in stand_in.calls[-2:]] == ["bob", "carl"]       # the second tries, after the others
    assert ("course-grade: 2 sandbox(es) of 01_schedules could not be set up: graded again one at a time: bob, carl"
            in err), err
    assert "carl: the sandbox could not be set up (OSError: [Errno 28] No space left on device): graded again by " \
           "the next run" in err
    assert "graded at the second try, once their sandboxes could be set up: 1 (bob)" in err
    assert stats["not_gradable"] == ["carl (grader_error)"] and stats["grader_errors"] == [grade.NOT_SET_UP]


def test_what_the_run_says_meanwhile_is_not_glued_to_its_progress_bar(tmp_path, cheap_run, monkeypatch, capsys):
    """Lines said while the bar runs (a sandbox not set up, its second try) began where the bar's text ended,
    "... 20.43s/notebook]    course-grade: 2 sandbox(es) ..." (the fifth red team's stderr): tqdm.write puts
    each on a line of its own."""
    import re
    subs, out = _class(tmp_path, "amy", "bob"), tmp_path / "out"
    monkeypatch.setattr(grade, "grade_submission", Not_set_up({"bob": 1}))
    grade.grade_class(SOLUTION, [str(subs)], out, workers=2, opts=grade.Options(pool=False), progress=True,
                      allow_root=True)
    err = capsys.readouterr().err
    said = [m.start() for m in re.finditer("course-grade: ", err)]
    assert len(said) >= 3 and "grading 01_schedules" in err, err
    assert all(i == 0 or err[i - 1] in "\r\n" for i in said), err


def test_sandboxes_never_set_up_are_not_tried_again_in_the_same_run(tmp_path, cheap_run, capsys):
    """No sandbox of the run could be set up: the machine is at fault, and a second try for each would only make
    the class wait; each is left to the next run (and the run exits 3, grade.EXIT_NO_VERDICT)."""
    subs, out = _class(tmp_path, "amy", "bob", "file_cy"), tmp_path / "out"     # (a file that ran nothing)
    stand_in = Not_set_up({"amy": 5, "bob": 5})
    stats = cheap_run(subs, out, stand_in)
    assert len(stand_in.calls) == 3 and stats["grader_errors"] == [grade.NOT_SET_UP] * 2
    assert "graded again one at a time" not in capsys.readouterr().err


def _points_of(out: Path, student: str) -> float:
    return grade._points(_result(out, student))


def test_one_worker_or_no_company_grades_once(tmp_path, cheap_run):
    subs, out = _class(tmp_path, "bob", "dave"), tmp_path / "out"
    stand_in = Stand_in(crowded={"bob"}, looping={"dave"})
    cheap_run(subs, out, stand_in, workers=1)
    assert sorted(s for s, _ in stand_in.calls) == ["bob", "dave"]       # dave's loop is his own: once
    assert "beside_others" not in _result(out, "dave") and "graded_alone" not in _result(out, "dave")
    # what passed beside others, or had its own share of the CPU, does not record its company (results of two
    # runs stay equal)
    cheap_run(subs, tmp_path / "out2", Stand_in(crowded={"carol"}, with_cpu={"carol"}))
    assert not any("beside_others" in _result(tmp_path / "out2", s) for s in ("bob", "dave"))


def test_a_run_stopped_before_the_second_chance_gives_it_on_the_next_run(tmp_path, cheap_run, capsys):
    """A result written beside others that wants grading alone (the run was interrupted before it) is graded
    alone by the next run, after the others and beside none of them, not in the pool again."""
    subs, out = _class(tmp_path, "amy", "bob", "cy"), tmp_path / "out"
    cheap_run(subs, out, Stand_in())
    path = out / "results" / "01_schedules" / "bob.json"
    bob = json.loads(path.read_text())
    for row in bob["rows"]:
        row.update(points=0, status="timeout")
    path.write_text(json.dumps(bob | {"beside_others": True}))
    (out / "results" / "01_schedules" / "amy.json").unlink()            # one new result for the pool as well
    (out / "results" / "01_schedules" / "cy.json").unlink()
    stand_in = Stand_in(crowded={"bob"})
    cheap_run(subs, out, stand_in)
    assert stand_in.calls[-1] == ("bob", False) and len(stand_in.calls) == 3
    assert _result(out, "bob")["graded_alone"]["points_beside_others"] == 0
    assert "bob 0 -> " in capsys.readouterr().err


def test_ctrl_c_while_graded_alone_leaves_it_to_the_next_run(tmp_path, cheap_run):
    """Ctrl-C (or SIGTERM, which course-grade turns into it) while a submission is graded alone: the run stops as
    it does in the pool, the result graded beside others stays, and the next run grades it alone. The signal lands
    on the worker thread here, as it once did in CI: the main thread sees it at its next poll, 2 s at most (a
    plain wait on the job's future saw it only once the job was done, and the job's verdict was written)."""
    subs, out = _class(tmp_path, "amy", "bob"), tmp_path / "out"

    class Interrupting(Stand_in):
        cancelled = None        # whether the run's cancel was set within 10 s of the signal

        def __call__(self, source, sub, opts):
            if [s for s, _ in self.calls].count(sub.student) == 1:      # its second run: alone
                # to this worker thread, not the main one that waits on it: the worse case, which CI once met
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                self.cancelled = opts.cancel.wait(10)
            return super().__call__(source, sub, opts)
    interrupting = Interrupting(crowded={"bob"})
    try:
        with pytest.raises(grade.Interrupted):
            cheap_run(subs, out, interrupting)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while a submission was graded alone escaped grade_class")
    bob = _result(out, "bob")
    assert interrupting.cancelled, "the run's cancel was not set within 10 s of Ctrl-C"
    assert bob.get("beside_others") is True and "graded_alone" not in bob and grade._points(bob) == 0, bob
    stand_in = Stand_in(crowded={"bob"})
    cheap_run(subs, out, stand_in)
    assert stand_in.calls == [("bob", False)] and _result(out, "bob")["graded_alone"]["points_beside_others"] == 0
