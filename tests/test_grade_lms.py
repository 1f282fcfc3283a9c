"""`course-grade export-lms`: grades.csv as the CSV Canvas or Moodle imports (course_utils/grade_lms.py).

The grades.csv comes from ``grade_feedback.write_reports`` on results written here (no kernel runs)."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest

from course_utils import grade, grade_feedback, grade_lms

WS = "01_schedules"


def _result(student: str, linear: float, cosine: float, summary_status: str = "manual") -> dict:
    rows = [{"grade_id": "test_linear", "points": linear, "max_points": 1, "status": "pass" if linear else "fail",
             "message": "m"},
            {"grade_id": "test_cosine", "points": cosine, "max_points": 2, "status": "pass" if cosine else "fail",
             "message": "m"},
            {"grade_id": "summary", "points": "" if summary_status == "manual" else 0, "max_points": 2,
             "status": summary_status, "message": "to be graded by the instructor"}]
    return {"student": student, "worksheet": WS, "status": "graded", "message": "", "rows": rows,
            "source_sha256": "ab" * 32}


@pytest.fixture
def graded(tmp_path):
    for r in (_result("alice", 1, 2), _result("bob", 0, 2), _result("carol", 0, 0, "not_implemented")):
        path = tmp_path / "results" / WS / f"{r['student']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    grade_feedback.write_reports(tmp_path)
    _type_alice_s_summary(tmp_path, "1.5")     # the instructor grades alice's written answer by hand, in grades.csv
    return tmp_path


def _type_alice_s_summary(folder, points: str) -> None:
    text = (folder / "grades.csv").read_text()
    (folder / "grades.csv").write_text(text.replace("alice,01_schedules,summary,,2,manual",
                                                    f"alice,01_schedules,summary,{points},2,manual"))


PENDING_BOB = ("1 answer(s) still to grade by hand, exported empty and counted 0 in the totals: bob (01_schedules: "
               "summary) (type their points into grades.csv, then export again)")


def _table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_canvas_columns_points_possible_and_rows(graded):
    text, warnings = grade_lms.export(graded, "canvas")
    rows = _table(text)
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{WS}: test_linear",
                       f"{WS}: test_cosine", f"{WS}: summary", WS]
    assert rows[1] == ["Points Possible", "", "", "", "", "1", "2", "2", "5"]
    assert rows[2:] == [["alice", "", "", "alice", "", "1", "2", "1.5", "4.5"],      # the hand-graded 1.5 counts
                        ["bob", "", "", "bob", "", "0", "2", "", "2"],               # still to grade: empty
                        ["carol", "", "", "carol", "", "0", "0", "0", "0"]]
    assert warnings == [PENDING_BOB], warnings      # bob's answer: still to grade, 0 in the total


def test_canvas_with_a_roster_and_an_assignment_id(graded, tmp_path):
    roster = tmp_path / "canvas_export.csv"        # Canvas's own gradebook export, used as it is
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Old quiz (77)\n"
                      "    Points Possible,,,,,10\n"
                      '"Liddell, Alice",1001,S-1,alice,Sec A,9\n"Builder, Bob",1002,S-2,bob,Sec B,8\n')
    text, warnings = grade_lms.export(graded, "canvas", roster=roster, total_only=True, canvas_ids={WS: "4321"})
    rows = _table(text)
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{WS} (4321)"]
    assert rows[2] == ["Liddell, Alice", "1001", "S-1", "alice", "Sec A", "4.5"]
    assert rows[3] == ["Builder, Bob", "1002", "S-2", "bob", "Sec B", "2"]
    assert rows[4][:4] == ["carol", "", "", "carol"]
    assert warnings == ["carol: not in the roster; exported under the name course-grade gave it", PENDING_BOB]


def test_canvas_s_student_column_beside_the_column_student_an_instructor_added(graded, tmp_path):
    """Canvas's export has "Student" (display names); the docs say to add "student" (course-grade's name) for a
    student the roster cannot find. Both folded to one key: the export's Student column went blank for everyone
    but the one row with a "student", the Points Possible row was "a row without a name", and the absent students'
    "Last, First" names were joined with ", " (six names read as twelve). An instructor's grading pass."""
    roster = tmp_path / "canvas_export.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,student\n"
                      "    Points Possible,,,,,\n"
                      '"Liddell, Alice",1001,S-1,alice,Sec A,\n"Builder, Bob",1002,S-2,bbuilder,Sec B,bob\n'
                      '"Davis, Dave",1004,S-4,dave,Sec A,\n"Frank, Frank",1005,S-5,frank,Sec B,\n')
    text, warnings = grade_lms.export(graded, "canvas", roster=roster, total_only=True)
    rows = _table(text)
    assert rows[2] == ["Liddell, Alice", "1001", "S-1", "alice", "Sec A", "4.5"]
    assert rows[3] == ["Builder, Bob", "1002", "S-2", "bbuilder", "Sec B", "2"]          # found by "student"
    assert warnings[-2] == ("2 student(s) of the roster have no grades here (no submission?), and no row in the "
                            "export: Davis, Dave; Frank, Frank"), warnings


def test_canvas_reads_a_roster_whose_headers_are_in_another_case(graded, tmp_path):
    """docs/grading.md: column names are matched in any case. Canvas's identifiers were read with exact keys, so a
    roster headed 'sis login id,id' exported Alice without her login and ID, and without a warning."""
    roster = tmp_path / "roster.csv"
    roster.write_text("student,sis login id,id,SECTION\nalice,aliddell,1001,Sec A\n")
    rows = _table(grade_lms.export(graded, "canvas", roster=roster, total_only=True)[0])
    assert rows[2] == ["alice", "1001", "", "aliddell", "Sec A", "4.5"]


def test_a_login_is_not_a_classmates_canvas_id(tmp_path):
    """The red team's second pass: course-grade's "1002" (a login) matched Alice by her Canvas ID 1002, row by row,
    so Alice got two rows (0 and 8) and Bob, whose login is 1002, none, without a warning. The most specific column
    decides; a row claimed twice, or a name two rows share in one column, stops the export."""
    for r in (_result("1002", 0, 0), _result("alice", 1, 2)):
        path = tmp_path / "results" / WS / f"{r['student']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    grade_feedback.write_reports(tmp_path)
    roster = tmp_path / "canvas_export.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section\n"Liddell, Alice",1002,S-1,alice,Sec A\n'
                      '"Builder, Bob",2001,S-2,1002,Sec B\n')
    rows = _table(grade_lms.export(tmp_path, "canvas", roster=roster, total_only=True)[0])
    assert rows[2:] == [["Builder, Bob", "2001", "S-2", "1002", "Sec B", "0"],
                        ["Liddell, Alice", "1002", "S-1", "alice", "Sec A", "3"]]
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section\n"Liddell, Alice",1002,S-1,alice,Sec A\n')
    with pytest.raises(grade_lms.ExportError, match="matches both 1002 and alice"):
        grade_lms.export(tmp_path, "canvas", roster=roster)         # by ID, then by login: one row, two students
    roster.write_text("student,email\nalice,a@uni.example\nalice,b@uni.example\n")
    with pytest.raises(grade_lms.ExportError, match="2 rows of the roster match it by 'student'"):
        grade_lms.export(tmp_path, "moodle", roster=roster)


def test_moodle_columns_and_rows(graded):
    rows = _table(grade_lms.export(graded, "moodle")[0])
    assert rows[0] == ["username", f"{WS}: test_linear", f"{WS}: test_cosine", f"{WS}: summary", WS]
    assert rows[1:] == [["alice", "1", "2", "1.5", "4.5"], ["bob", "0", "2", "", "2"], ["carol", "0", "0", "0", "0"]]


def test_moodle_with_a_roster_of_emails(graded, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email,idnumber\nalice,alice@uni.example,A1\nbob,bob@uni.example,B2\n"
                      "carol,carol@uni.example,C3\n")
    rows = _table(grade_lms.export(graded, "moodle", roster=roster, total_only=True)[0])
    assert rows == [["email", "idnumber", WS], ["alice@uni.example", "A1", "4.5"], ["bob@uni.example", "B2", "2"],
                    ["carol@uni.example", "C3", "0"]]


def test_a_roster_header_in_any_case_and_a_student_it_does_not_know(graded, tmp_path):
    """Column names are matched whatever their case (Moodle's export says "Email address", a hand-made roster
    "Username"); a student the roster does not know is exported under course-grade's name in the first identifier
    column, as the warning says, not with an empty identifier."""
    roster = tmp_path / "roster.csv"
    roster.write_text("Username,Email address\nalice,alice@uni.example\nbob,bob@uni.example\n")
    text, warnings = grade_lms.export(graded, "moodle", roster=roster, total_only=True)
    assert _table(text) == [["username", "email", WS], ["alice", "alice@uni.example", "4.5"],
                            ["bob", "bob@uni.example", "2"], ["carol", "", "0"]]
    roster.write_text("Email\nalice@uni.example\nbob@uni.example\n")
    text, warnings = grade_lms.export(graded, "moodle", roster=roster, total_only=True)
    assert _table(text) == [["email", WS], ["alice@uni.example", "4.5"], ["bob@uni.example", "2"], ["carol", "0"]]
    assert warnings == ["carol: not in the roster; exported under the name course-grade gave it", PENDING_BOB]


def test_the_cli(graded, tmp_path, capsys):
    out = tmp_path / "moodle.csv"
    assert grade.main(["export-lms", str(graded), "--format", "moodle", "--out", str(out)]) == 0
    assert _table(out.read_text())[0][0] == "username"
    assert grade.main(["export-lms", str(tmp_path / "nothing"), "--format", "canvas", "--out", str(out)]) == 2
    assert "grades.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        grade.main(["export-lms", str(graded), "--format", "blackboard", "--out", str(out)])
    assert exit_.value.code == 2


def _summary_points(folder) -> dict[str, str]:
    with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
        return {r["student"]: r["points"] for r in csv.DictReader(f) if r["grade_id"] == "summary"}


def test_points_typed_by_hand_survive_a_rerun_and_a_spreadsheet(graded, capsys):
    """A later run rebuilds grades.csv from the results: alice's hand-graded 1.5 is kept (her submission was not
    graded again), also after a spreadsheet saved the file with a byte-order mark."""
    text = (graded / "grades.csv").read_text(encoding="utf-8")
    (graded / "grades.csv").write_text("\ufeff" + text.replace("\n", "\r\n"), encoding="utf-8")
    grade_feedback.write_reports(graded)
    assert _summary_points(graded) == {"alice": "1.5", "bob": "", "carol": "0"}
    total = next(r for r in csv.DictReader(io.StringIO((graded / "grades.csv").read_text()))
                 if r["student"] == "alice" and r["grade_id"] == "TOTAL")
    assert total["message"] == ""                           # nothing left to grade by hand
    # the summary's own row says it is graded (it kept "to be graded by the instructor": an instructor's pass)
    messages = {r["student"]: r["message"] for r in csv.DictReader(io.StringIO((graded / "grades.csv").read_text()))
                if r["grade_id"] == "summary"}
    assert messages["alice"] == grade_feedback.HAND_GRADED and messages["bob"] != grade_feedback.HAND_GRADED
    assert "dropped" not in capsys.readouterr().err
    assert grade_lms.export(graded, "moodle")[0].splitlines()[1] == "alice,1,2,1.5,4.5"


def test_points_typed_by_hand_are_dropped_for_a_resubmission(graded, capsys):
    import os
    import time
    result = graded / "results" / WS / "alice.json"
    later = time.time() + 5                                 # regraded after the instructor's edit
    os.utime(result, (later, later))
    grade_feedback.write_reports(graded)
    assert _summary_points(graded)["alice"] == ""
    err = capsys.readouterr().err
    assert "dropped" in err and "alice (01_schedules: summary, 1.5 points)" in err


def test_points_typed_by_hand_survive_a_result_as_old_as_grades_csv(graded, capsys):
    """Only a result newer than grades.csv was graded again. On a file system that keeps whole seconds (FAT, some
    network shares) a result and grades.csv can carry the same time: the instructor's typed points are kept then,
    not silently dropped."""
    import os
    stamp = (graded / "grades.csv").stat().st_mtime_ns
    os.utime(graded / "results" / WS / "alice.json", ns=(stamp, stamp))
    grade_feedback.write_reports(graded)
    assert _summary_points(graded)["alice"] == "1.5"
    assert "dropped" not in capsys.readouterr().err


def _totals(folder) -> dict[str, dict[str, str]]:
    with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
        return {r["student"]: r for r in csv.DictReader(f) if r["grade_id"] == "TOTAL"}


def test_the_total_counts_the_answers_still_to_grade_by_hand(graded):
    """A worksheet's TOTAL row is out of every point of the worksheet, the written answer still to grade included:
    bob's 2 are out of 5, not out of 3 (a score that would look like 67% before the instructor has graded)."""
    totals = _totals(graded)
    assert {s: (t["points"], t["max_points"]) for s, t in totals.items()} == {
        "alice": ("3", "5"), "bob": ("2", "5"), "carol": ("0", "5")}
    assert totals["bob"]["message"] == "2 points to grade by hand"


def _write(folder, *results) -> None:
    for r in results:
        path = folder / "results" / WS / f"{r['student']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    grade_feedback.write_reports(folder)


def test_fractional_points_count_in_the_total(tmp_path):
    """A TODO that gives part of its points (0.5 of 1) counts in grades.csv's TOTAL as 0.5, not as nothing."""
    _write(tmp_path, _result("dan", 0.5, 1))
    assert _totals(tmp_path)["dan"]["points"] == "1.5"


def test_fractional_points_are_shown_exactly_in_the_feedback(tmp_path):
    """The student's feedback file states the score grades.csv holds: 2.5 / 5, not a rounded 2 / 5 that the
    student would dispute against the gradebook."""
    _write(tmp_path, _result("dan", 0.5, 2))
    text = (tmp_path / "feedback" / "dan.md").read_text(encoding="utf-8")
    assert f"## Worksheet `{WS}`: 2.5 / 5 points" in text, text


def test_canvas_leaves_the_login_empty_when_the_roster_gives_an_id(graded, tmp_path):
    """A roster with Canvas IDs but no logins: the row carries the ID, and an empty SIS Login ID. The folder's
    name as a login would be a guess, and Canvas could match it to another person whose login it happens to be."""
    roster = tmp_path / "roster.csv"
    roster.write_text("student,ID\nalice,1001\n")
    rows = _table(grade_lms.export(graded, "canvas", roster=roster, total_only=True)[0])
    assert rows[2] == ["alice", "1001", "", "", "", "4.5"]


def test_a_roster_login_matches_whatever_its_case(graded, tmp_path):
    """Canvas's export may write a login "Alice" where course-grade's folder is "alice": it is the same student,
    found by login, and her grade lands on her row (not in an extra row Canvas cannot match)."""
    roster = tmp_path / "canvas_export.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section\n"Liddell, Alice",1001,S-1,Alice,Sec A\n')
    text, warnings = grade_lms.export(graded, "canvas", roster=roster, total_only=True)
    assert _table(text)[2] == ["Liddell, Alice", "1001", "S-1", "Alice", "Sec A", "4.5"]
    assert not any(w.startswith("alice:") for w in warnings), warnings


@pytest.mark.parametrize("typed, why", [("2,5", "'2,5' is not a number from 0 to 2"),
                                        ("7", "'7' is not a number from 0 to 2"),
                                        ("-1", "'-1' is not a number"), ("nan", "'nan' is not a number")])
def test_points_typed_by_hand_that_are_not_points_stop_the_export(graded, tmp_path, capsys, typed, why):
    """A European decimal comma, points over the TODO's maximum, a negative or NaN: each was exported silently
    (as 0, or as 7 of 2) before; now the export stops, naming the cell (an instructor's report)."""
    text = (graded / "grades.csv").read_text()
    (graded / "grades.csv").write_text(text.replace("bob,01_schedules,summary,,2,manual",
                                                    f'bob,01_schedules,summary,"{typed}",2,manual'))
    with pytest.raises(grade_lms.ExportError, match="1 cell") as err:
        grade_lms.export(graded, "canvas")
    assert f"bob 01_schedules summary: {why}" in str(err.value)
    out = tmp_path / "c.csv"
    assert grade.main(["export-lms", str(graded), "--format", "canvas", "--out", str(out)]) == 2
    assert "bob 01_schedules summary" in capsys.readouterr().err and not out.exists()


def test_a_roster_that_names_nobody_stops_the_export(graded, tmp_path, capsys):
    """A roster whose columns name no student (name, mail) made every student 'not in the roster', exit code 0."""
    roster = tmp_path / "r.csv"
    roster.write_text("name,mail\nAlice,alice@x.org\n")
    with pytest.raises(grade_lms.ExportError, match="none of the columns that name a student.*its columns: name, mail"):
        grade_lms.export(graded, "moodle", roster=roster)
    roster.write_bytes("student,username\nalice,al\n".encode("utf-16"))      # Excel's "Unicode text"
    assert grade.main(["export-lms", str(graded), "--format", "moodle", "--out", str(tmp_path / "m.csv"),
                       "--roster", str(roster)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8 text" in err and "Traceback" not in err


def test_a_canvas_id_must_name_a_worksheet_and_be_a_number(graded, tmp_path, capsys):
    """A typo in the worksheet's name was ignored (the column then becomes a new assignment in Canvas), and any
    text was accepted as an id."""
    out = tmp_path / "c.csv"
    assert grade.main(["export-lms", str(graded), "--format", "canvas", "--out", str(out),
                       "--canvas-id", "01schedules=12"]) == 2
    assert "--canvas-id names 01schedules, which" in capsys.readouterr().err and not out.exists()
    for bad in (["--format", "canvas", "--canvas-id", f"{WS}=abc"], ["--format", "moodle", "--canvas-id", f"{WS}=12"]):
        with pytest.raises(SystemExit) as exit_:
            grade.main(["export-lms", str(graded), "--out", str(out), *bad])
        assert exit_.value.code == 2


def test_an_output_that_cannot_be_written_is_one_line(graded, tmp_path, capsys):
    for out in (tmp_path / "no" / "such" / "folder.csv", tmp_path):
        assert grade.main(["export-lms", str(graded), "--format", "canvas", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "cannot write" in err and "Traceback" not in err


def test_the_export_names_who_it_exports_as_zero_and_who_it_leaves_out(graded, tmp_path):
    """A student whose file could not be graded is exported with 0 points, and a student of the roster without
    grades gets no row: both silently before."""
    _write(graded, {"student": "dan", "worksheet": WS, "status": "not_a_notebook", "message": "not a notebook",
                    "source_sha256": "ab" * 32,
                    "rows": [{"grade_id": g, "points": 0, "max_points": m, "status": "not_a_notebook",
                              "message": "not a notebook"} for g, m in (("test_linear", 1), ("test_cosine", 2))]})
    roster = tmp_path / "r.csv"
    roster.write_text("Student,SIS Login ID\n    Points Possible,\nAlice A,alice\nBob B,bob\nCarol C,carol\n"
                      "Dan D,dan\nOlga O,olga\n")
    _, warnings = grade_lms.export(graded, "canvas", roster=roster)
    assert "dan: 01_schedules could not be graded (not_a_notebook): exported with 0 points" in warnings
    assert "1 student(s) of the roster have no grades here (no submission?), and no row in the export: Olga O" in \
        warnings
    # an instructor who set dan's points in overrides.csv (he emailed the notebook) was told "0 points" while the
    # export carried the override's
    _overrides(graded, f"student,worksheet,grade_id,points,reason\ndan,{WS},test_cosine,2,emailed\n")
    grade_feedback.write_reports(graded)
    _, warnings = grade_lms.export(graded, "canvas", roster=roster)
    assert ("dan: 01_schedules could not be graded (not_a_notebook): exported with 2 points, set in overrides.csv"
            in warnings), warnings


def test_points_typed_by_hand_reach_the_feedback_the_total_and_the_report(graded, capsys):
    """alice's summary, graded 1.5 by hand in grades.csv: after the next run (here write_reports) her feedback
    said 3 / 5 and '? / 2: to be graded by hand', grades.csv's TOTAL 3 and report.html '2 to grade by hand',
    while the LMS got 4.5 (an instructor's report). bob's is still to grade."""
    grade_feedback.write_reports(graded)
    alice = (graded / "feedback" / "alice.md").read_text(encoding="utf-8")
    assert f"## Worksheet `{WS}`: 4.5 / 5 points" in alice, alice
    assert "- **summary** (1.5 / 2): graded by hand." in alice, alice
    assert "- **summary** (? / 2): to be graded by hand." in (graded / "feedback" / "bob.md").read_text()
    totals = _totals(graded)
    assert totals["alice"]["points"] == "4.5" and totals["bob"]["points"] == "2"
    assert totals["bob"]["message"] == "2 points to grade by hand" and totals["alice"]["message"] == ""
    assert "<td class='num'>1 to grade by hand</td>" in (graded / "report.html").read_text(encoding="utf-8")
    text = (graded / "grades.csv").read_text()
    (graded / "grades.csv").write_text(text.replace("bob,01_schedules,summary,,2,manual",
                                                    "bob,01_schedules,summary,0.5,2,manual"))
    grade_feedback.write_reports(graded)
    assert "graded by hand: 50% of the points" in (graded / "report.html").read_text(encoding="utf-8")
    # typed as text: kept in grades.csv as typed (export-lms names it), counted nowhere, said on stderr
    text = (graded / "grades.csv").read_text()
    (graded / "grades.csv").write_text(text.replace("bob,01_schedules,summary,0.5,2,manual",
                                                    'bob,01_schedules,summary,"0,5",2,manual'))
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    assert "not numbers (write 2.5, not 2,5) are kept as typed but counted nowhere: bob (01_schedules: summary, " \
        "'0,5')" in capsys.readouterr().err
    assert _summary_points(graded)["bob"] == "0,5" and _totals(graded)["bob"]["points"] == "2"
    # and its row in grades.csv says so: it said "graded by hand: the points typed in grades.csv" (an instructor's
    # pass of 2026-12-08), beside a TOTAL that still waits for them
    with open(graded / "grades.csv", newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["student"] == "bob" and r["grade_id"] == "summary")
    assert row["message"] == grade_feedback.NOT_A_NUMBER, row


def test_points_typed_over_an_automatic_grade_are_named_when_a_run_replaces_them(graded, capsys):
    """bob's test_linear typed from 0 to 1: the next run rewrote it from the result without a word (an
    instructor's report); it still does (the automatic grade is the grader's), and says so on stderr."""
    text = (graded / "grades.csv").read_text()
    (graded / "grades.csv").write_text(text.replace("bob,01_schedules,test_linear,0,1,fail",
                                                    "bob,01_schedules,test_linear,1,1,fail"))
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    err = capsys.readouterr().err
    assert "over automatic grades were replaced by the grader's" in err, err
    assert "bob (01_schedules: test_linear, '1' -> 0)" in err, err
    grade_feedback.write_reports(graded)                # nothing typed over any more: nothing said
    assert "over automatic grades" not in capsys.readouterr().err


def test_a_canvas_download_sorted_into_folders_by_user_id_is_found_by_id(tmp_path):
    """docs/grading.md's recipe for Canvas's "Download Submissions": folders named by the user id in the file
    names; the gradebook export as the roster then finds each student by its ID column."""
    _write(tmp_path, _result("1001", 1, 2), _result("1002", 0, 2))
    roster = tmp_path / "gradebook.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
                      '"Liddell, Alice",1001,S-1,alice,A\n"Builder, Bob",1002,S-2,bob,B\n')
    text, warnings = grade_lms.export(tmp_path, "canvas", roster=roster, total_only=True)
    assert _table(text)[2:] == [["Liddell, Alice", "1001", "S-1", "alice", "A", "3"],
                                ["Builder, Bob", "1002", "S-2", "bob", "B", "2"]], text
    assert [w for w in warnings if "still to grade by hand" not in w] == [], warnings


def _overrides(out, text: str) -> None:
    (out / "overrides.csv").write_text(text, encoding="utf-8")


def test_an_override_sets_an_automatic_grade_at_every_run_and_says_so(graded, capsys):
    """An instructor's report: an automatic grade (an appeal, a check judged too strict) could only be changed in
    the LMS after each export, since points typed over it in grades.csv were replaced by the next run.
    DIR/overrides.csv sets it: grades.csv, TOTAL, the feedback, the report and export-lms use it, the grader's
    verdict is kept beside it, and every later run applies it again."""
    _overrides(graded, "student,worksheet,grade_id,points,reason\n"
                       f"bob,{WS},test_linear,1,appeal: the check's tolerance was too tight\n")
    capsys.readouterr()
    for _ in range(2):
        grade_feedback.write_reports(graded)
        err = capsys.readouterr().err
        assert f"1 grade(s) set by {graded / 'overrides.csv'}" in err, err
        assert "over automatic grades" not in err, err
        rows = {(r["student"], r["grade_id"]): r for r in csv.DictReader(io.StringIO((graded / "grades.csv")
                                                                                       .read_text()))}
        linear = rows[("bob", "test_linear")]
        assert (linear["points"], linear["status"]) == ("1", "fail")
        assert linear["message"] == ("set to 1 by the instructor in overrides.csv (appeal: the check's tolerance "
                                     "was too tight); the grader: fail: m"), linear
        assert rows[("bob", "TOTAL")]["points"] == "3"
        bob = (graded / "feedback" / "bob.md").read_text(encoding="utf-8")
        assert f"## Worksheet `{WS}`: 3 / 5 points" in bob, bob
        assert ("- **test_linear** (1 / 1): set by the instructor (appeal: the check's tolerance was too tight). "
                "The grader: fail: m") in bob, bob
    assert _table(grade_lms.export(graded, "canvas")[0])[3] == ["bob", "", "", "bob", "", "1", "2", "", "3"]
    # a written answer too: the override wins over points typed into grades.csv
    _overrides(graded, f"student,worksheet,grade_id,points,reason\nalice,{WS},summary,2,\n")
    grade_feedback.write_reports(graded)
    assert "- **summary** (2 / 2): set by the instructor. The grader: manual: to be graded by the instructor" in \
        (graded / "feedback" / "alice.md").read_text(encoding="utf-8")
    assert _totals(graded)["alice"]["points"] == "5"
    (graded / "overrides.csv").unlink()         # undone: the grader's points again, and not taken as typed over
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    assert _totals(graded)["bob"]["points"] == "2" and capsys.readouterr().err == ""
    assert _summary_points(graded)["alice"] == ""       # an override's points are not taken for typed ones


@pytest.mark.parametrize("text, said", [
    ("student,worksheet,grade_id,points,reason\nbob,{ws},test_linear,2,\n",
     "line 2: bob 01_schedules test_linear: '2' is not a number from 0 to 1, not applied"),
    ("student,worksheet,grade_id,points,reason\nbob,{ws},test_linear,\"0,5\",\n",
     "line 2: bob 01_schedules test_linear: '0,5' is not a number from 0 to 1, not applied"),
    ("student,worksheet,grade_id,points,reason\nbob,{ws},test_linear,-1,\n",
     "'-1' is not a number from 0 to 1, not applied"),
    ("student,worksheet,grade_id,points,reason\nBob,{ws},test_linear,1,\n",
     "line 2: Bob 01_schedules test_linear: no student 'Bob' in the results (names are matched as written: bob?)"),
    ("student,worksheet,grade_id,points,reason\nbob,{ws},linear,1,\n",
     "no TODO 'linear' in that worksheet (its grade_ids: test_linear)"),
    ("student,worksheet,points\nbob,{ws},1\n", "has no column grade_id: none of its grades applied (its first "
     "line must be student,worksheet,grade_id,points,reason)"),
    ("student,worksheet,grade_id,points,reason\nbob,{ws},test_linear,0.5,\nbob,{ws},test_linear,1,\n",
     "line 3 sets bob 01_schedules test_linear again: the last line counts"),
    # an instructor's report: unquoted commas gave bob 1 point for "1,5" and 0 for "0,5", and cut a reason, silently
    ("student,worksheet,grade_id,points,reason\nbob,{ws},test_linear,1,5,partial credit\n",
     "line 2 has 6 fields, the header 5: not applied (write 1.5, not 1,5"),
    ("student,worksheet,grade_id,points,reason\nbob,{ws},test_linear,1,right idea, off by one\n",
     "line 2 has 6 fields, the header 5: not applied"),
])
def test_an_override_that_cannot_apply_is_named_and_not_applied(graded, capsys, text, said):
    _overrides(graded, text.format(ws=WS))
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    err = capsys.readouterr().err
    assert said in err, err
    totals = _totals(graded)
    if "again" in said:         # the last line counts
        assert totals["bob"]["points"] == "3" and "1 grade(s) set" in err
    else:
        assert totals["bob"]["points"] == "2" and "0 grade(s) set" in err, err


def test_the_problems_of_an_override_file_are_told_by_line_number(graded, capsys):
    """An instructor's report: the problems came in the order of the results (lines 6, 9, 7, 4, 5), while the docs
    say "one per line and by line number"."""
    _overrides(graded, "student,worksheet,grade_id,points,reason\n"
                       f"zed,{WS},test_linear,1,\n"            # line 2: no such student (found after the others)
                       f"bob,{WS},test_linear,1,5,x\n"         # line 3: a field too many (found while reading)
                       f"carol,{WS},test_linear,7,\n"          # line 4: more than the TODO's maximum
                       f"alice,{WS},linear,1,\n")              # line 5: no such grade_id
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    lines = [int(m.group(1)) for m in re.finditer(r"^  line (\d+)", capsys.readouterr().err, re.M)]
    assert lines == [2, 3, 4, 5], lines


def test_an_override_file_saved_with_semicolons_is_read(graded, capsys):
    """A spreadsheet in a decimal-comma locale saves CSV with semicolons: read as such (the header was 'missing
    every column' before), and its decimal comma named."""
    _overrides(graded, "student;worksheet;grade_id;points;reason\n"
                       f"bob;{WS};test_linear;1;appeal, accepted\nalice;{WS};summary;1,5;\n")
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    err = capsys.readouterr().err
    assert "1 grade(s) set" in err and "'1,5' is not a number from 0 to 2" in err, err
    assert _totals(graded)["bob"]["points"] == "3"


def test_an_override_below_what_a_resubmission_now_scores_is_named(graded, capsys):
    """An instructor's report: bob got 0.5 for a wrong TODO, resubmitted a right one, and kept 0.5 without a word
    (points typed by hand are dropped and named in that case). The override still holds, and stderr says so."""
    _overrides(graded, f"student,worksheet,grade_id,points,reason\nbob,{WS},test_linear,0.5,half\n")
    grade_feedback.write_reports(graded)
    path = graded / "results" / WS / "bob.json"
    path.write_text(json.dumps(_result("bob", 1, 2)))           # the resubmission passes
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    err = capsys.readouterr().err
    assert "line 2: bob 01_schedules test_linear now scores 1 by the grader (pass), more than the 0.5 set there" \
        in err, err
    assert _totals(graded)["bob"]["points"] == "2.5"
    # and the export says so too: it exported 2.5 of the grader's 3 without a word (an instructor's pass)
    _, warnings = grade_lms.export(graded, "moodle", total_only=True)
    assert ("1 grade(s) set in overrides.csv below the full points of a TODO the grader now passes (an override "
            "older than a resubmission?): bob (01_schedules: test_linear, 0.5 of 1) (delete those lines if they no "
            "longer apply, run course-grade again, then export)") in warnings, warnings


def test_export_stops_when_grades_csv_does_not_show_the_overrides(graded):
    """An instructor's report: an override added after the last run was exported as the old grade, silently.
    Judged by content: an older overrides.csv put back (its older time kept, as cp -p or a backup restore does)
    was exported with the grades of the other one when the rule compared the files' times."""
    import os
    header = "student,worksheet,grade_id,points,reason\n"
    _overrides(graded, header + f"bob,{WS},test_linear,1,\n")
    with pytest.raises(grade_lms.ExportError, match=r"line 2 sets bob 01_schedules test_linear to 1, grades.csv has "
                       r"0 from the grader.* Run course-grade once more"):
        grade_lms.export(graded, "canvas")
    grade_feedback.write_reports(graded)
    assert _table(grade_lms.export(graded, "canvas")[0])[3][5] == "1"
    # the older file put back, with a time before grades.csv's: bob's override is gone from it
    _overrides(graded, header)
    past = (graded / "grades.csv").stat().st_mtime - 60
    os.utime(graded / "overrides.csv", (past, past))
    with pytest.raises(grade_lms.ExportError, match="shows bob 01_schedules test_linear set by the instructor, "
                       "overrides.csv no longer sets it"):
        grade_lms.export(graded, "canvas")
    # a saved but unchanged file (a newer time, the same content) exports
    _overrides(graded, header + f"bob,{WS},test_linear,1,\n")
    grade_feedback.write_reports(graded)
    _overrides(graded, header + f"bob,{WS},test_linear,1.0,\n")
    future = (graded / "grades.csv").stat().st_mtime + 60
    os.utime(graded / "overrides.csv", (future, future))
    assert _table(grade_lms.export(graded, "canvas")[0])[3][5] == "1"


def test_the_report_files_an_overridden_answer_by_the_grader_s_verdict(tmp_path):
    """An instructor's report: carol's cosine, set to full points, moved from its catalogued mistake to 'another
    wrong answer' in report.html (the message read was the override's). The mistake stays, the TODO says how many
    grades the instructor set."""
    from course_utils.checks import MISTAKES
    from course_utils.checks.framework import run_check
    name, wrong, _ = MISTAKES["cosine_beta_schedule"][0]
    message = run_check("cosine_beta_schedule", wrong).message
    rows = [{"grade_id": "test_cosine", "points": 0, "max_points": 2, "status": "fail",
             "message": message.replace("cosine_beta_schedule", "cosine_beta_schedule", 1)}]
    r = {"student": "carol", "worksheet": WS, "status": "graded", "message": "", "rows": rows,
         "source_sha256": "ab" * 32}
    _write(tmp_path, r)
    _overrides(tmp_path, f"student,worksheet,grade_id,points,reason\ncarol,{WS},test_cosine,2,appeal\n")
    grade_feedback.write_reports(tmp_path)
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"<b>{name}</b>" in report, report[report.find("What went wrong"):][:1500]
    assert "1 grade(s) set by the instructor" in report


def test_an_override_file_that_is_not_utf8_is_named(graded, capsys):
    (graded / "overrides.csv").write_bytes("student,worksheet,grade_id,points,reason\n".encode("utf-16"))
    capsys.readouterr()
    grade_feedback.write_reports(graded)
    err = capsys.readouterr().err
    assert "overrides.csv (UnicodeDecodeError" in err and "none of its grades applied" in err, err
    assert _totals(graded)["bob"]["points"] == "2"


def test_points_typed_by_hand_survive_a_regrade_that_leaves_the_answer_as_it_was(graded, capsys):
    """A new SOURCE (a typo fixed in the solution) or --force grades every submission again: the points typed for
    a written answer whose text did not change are kept; a resubmission that changed it drops them."""
    import os
    import time
    path = graded / "results" / WS / "alice.json"

    def regrade(answer: str, seconds: int) -> None:
        result = json.loads(path.read_text())
        result["answers"] = {"summary": answer}
        path.write_text(json.dumps(result))
        os.utime(path, (time.time() + seconds, time.time() + seconds))
        grade_feedback.write_reports(graded)

    regrade("The loss falls, then the samples sharpen.", 5)        # the answer the instructor then grades
    _type_alice_s_summary(graded, "1.5")
    capsys.readouterr()
    regrade("The loss falls, then the samples sharpen.", 10)       # graded again, the same text
    assert _summary_points(graded)["alice"] == "1.5" and "dropped" not in capsys.readouterr().err
    regrade("A new answer.", 15)                                    # a resubmission with another text
    assert _summary_points(graded)["alice"] == ""
    assert "alice (01_schedules: summary, 1.5 points)" in capsys.readouterr().err


def test_the_console_script_exports_without_torch(graded, tmp_path):
    """`course-grade export-lms` reads and writes CSV and JSON: the console script (pyproject's course-grade,
    course_utils.grade_cli) hands it over before anything imports torch (through course_utils.grade it took
    about 4.6 s to start, 0.07 s now). `merge` and `export-gradescope` still import it, for report.html's
    catalogue of mistakes and for reading the solution's checks."""
    from conftest import pyproject
    scripts = pyproject()["project"]["scripts"]
    assert scripts["course-grade"] == "course_utils.grade_cli:main"
    code = ("import sys\nfrom course_utils.grade_cli import main\nrc = main(sys.argv[1:])\n"
            "print('torch' in sys.modules, rc)\n")
    args = ["export-lms", str(graded), "--format", "canvas", "--out", str(tmp_path / "canvas.csv")]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-2:] == ["False", "0"], (done.stdout, done.stderr)
    assert _table((tmp_path / "canvas.csv").read_text())[0][:2] == ["Student", "ID"]
