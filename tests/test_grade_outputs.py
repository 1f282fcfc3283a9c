"""What people read of a graded class, checked where a mutation audit found it unchecked.

grades.csv and the feedback files (course_utils/grade_feedback.py), report.html (course_utils/grade_report.py) and
the Canvas/Moodle exports (course_utils/grade_lms.py), built from result records like those of
tests/test_grade_lms.py and tests/test_grade_report.py (their helpers are reused); no kernel runs.
"""
from __future__ import annotations

import csv
import io
import json

from course_utils import grade_feedback, grade_lms, grade_report
from course_utils.checks import CHECKS, MISTAKES

from test_grade_lms import WS, _result, _table, _totals, _write
from test_grade_report import _class
from test_grade_report import _result as _report_result


def _rows(folder) -> list[dict[str, str]]:
    with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _feedback(folder, student: str) -> str:
    return (folder / "feedback" / f"{student}.md").read_text(encoding="utf-8")


def _todo_line(text: str, gid: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"- **{gid}**"))


def _misses_the_last_value() -> tuple[str, str]:
    """linear_beta_schedule's TODO name and the needle of its catalogued mistake "misses the last value"."""
    needle = next(n for mid, _, n in MISTAKES["linear_beta_schedule"] if mid == "misses the last value")
    return CHECKS["linear_beta_schedule"].target, needle


def _in_a_second_worksheet(folder, result: dict) -> None:
    """Writes ``result`` as the student's result of a second worksheet, 02_forward."""
    path = folder / "results" / "02_forward" / f"{result['student']}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dict(result, worksheet="02_forward")))


# ------------------------------------------------------------------ feedback files and grades.csv
def test_each_feedback_file_holds_only_its_own_students_results(tmp_path):
    """A student's feedback must never show a classmate's answers or messages."""
    alice, bob = _result("alice", 1, 2), _result("bob", 0, 0)
    alice["answers"], bob["answers"] = {"summary": "alice wrote this"}, {"summary": "bob wrote that"}
    bob["rows"][0]["message"] = "bob's own hint"
    _write(tmp_path, alice, bob)
    text = _feedback(tmp_path, "alice")
    assert "alice wrote this" in text and "bob wrote that" not in text and "bob's own hint" not in text
    assert text.count("## Worksheet") == 1
    assert "bob wrote that" in _feedback(tmp_path, "bob") and "alice wrote this" not in _feedback(tmp_path, "bob")


def test_feedback_states_each_todos_status_and_points(tmp_path):
    """A failed or erroring TODO reads "not passed", a hand-graded one "to be graded by hand" with "?" points."""
    r = _result("dan", 1, 0)
    r["rows"].append({"grade_id": "test_error", "points": 0, "max_points": 1, "status": "error", "message": "boom"})
    _write(tmp_path, r)
    text = _feedback(tmp_path, "dan")
    assert _todo_line(text, "test_linear").startswith("- **test_linear** (1 / 1): passed. ")
    # a pass with the check's bare verdict says "passed." alone, not "passed. linear_beta_schedule: correct"
    r["rows"][0]["message"] = "✅ linear_beta_schedule: correct"
    _write(tmp_path, r)
    assert _todo_line(_feedback(tmp_path, "dan"), "test_linear") == "- **test_linear** (1 / 1): passed."
    assert "(0 / 2): not passed." in _todo_line(text, "test_cosine")
    assert "(0 / 1): not passed." in _todo_line(text, "test_error")
    assert _todo_line(text, "summary") == "- **summary** (? / 2): to be graded by hand."     # said once
    assert f"## Worksheet `{WS}`: 1 / 6 points" in text


def test_feedback_shows_the_results_message_and_notes(tmp_path):
    """What the grader says about a whole submission (its message, its notes) reaches the student."""
    r = _result("erin", 1, 2)
    r["message"] = "graded with a cell deleted"
    r["notes"] = ["your cell starting `x = 1` raised NameError"]
    _write(tmp_path, r)
    text = _feedback(tmp_path, "erin")
    assert "**graded with a cell deleted**" in text
    assert "_Note: your cell starting \\`x = 1\\` raised NameError_" in text


def test_a_file_not_graded_keeps_its_status_and_message_in_the_total_row(tmp_path):
    """grades.csv's TOTAL row says why a file scored nothing (not a notebook), not a plain "graded"."""
    r = _result("fay", 0, 0, "not_a_notebook")
    r.update(status="not_a_notebook", message="not a notebook: invalid JSON")
    _write(tmp_path, r)
    total = _totals(tmp_path)["fay"]
    assert (total["status"], total["message"]) == ("not_a_notebook", "not a notebook: invalid JSON")


def test_a_message_is_one_line_of_text_in_grades_csv(tmp_path):
    """A message with line breaks and the verdict's mark (❌, ⏳) is one plain line in its cell (one row each)."""
    r = _result("gil", 1, 2)
    r["rows"][1]["message"] = "❌ cosine_beta_schedule: raised ValueError:\r\nline two\u202e"
    r["rows"][0]["message"] = "⏳ linear_beta_schedule: not implemented yet"
    _write(tmp_path, r)
    assert (tmp_path / "grades.csv").read_text(encoding="utf-8").count("\n") == 1 + 4
    row = next(r for r in _rows(tmp_path) if r["grade_id"] == "test_cosine")
    assert row["message"] == "cosine_beta_schedule: raised ValueError: line two"
    assert _rows(tmp_path)[0]["message"] == "linear_beta_schedule: not implemented yet"     # no leading mark


def test_outputs_are_valid_utf8_whatever_a_result_holds(tmp_path):
    """A lone surrogate in a result (valid JSON, invalid Unicode) is written as U+FFFD, never as raw bytes."""
    r = _result("hal", 0, 0)
    r["rows"][1].update(status="error", message="cosine_beta_schedule: raised ValueError: \udcff \ud800")
    _write(tmp_path, r)
    for name in ("grades.csv", "report.html", "feedback/hal.md"):
        text = (tmp_path / name).read_bytes().decode("utf-8")      # strict: raises on a raw byte
        assert "\ufffd" in text, name


def test_write_reports_counts_results_and_students(tmp_path):
    """The summary course-grade prints counts submissions and students apart (two worksheets, one student)."""
    _in_a_second_worksheet(tmp_path, _result("ivy", 1, 2))
    _write(tmp_path, _result("ivy", 0, 2))
    assert grade_feedback.write_reports(tmp_path) == (2, 1)


# ------------------------------------------------------------------ report.html
def _two_students(rows_a, rows_b) -> list[dict]:
    return [_report_result("ann", rows_a), _report_result("bob", rows_b)]


def test_a_full_score_out_of_more_than_twenty_points_is_drawn(tmp_path):
    """A worksheet worth over 20 points is drawn in 10 bins; a full score lands in the last, the page is written."""
    rows = [(f"test_{i}", "pass", "✅ ok") for i in range(25)]
    page = grade_report.render(_two_students(rows, rows[:5] + [(g, "fail", "❌ x: no") for g, _, _ in rows[5:]]))
    assert page.count("<rect") == 10 and "points (of 25)" in page
    assert "<title>22.5-25 points: 1 student(s)</title>" in page


def test_an_untouched_worksheet_with_a_written_answer_needs_attention():
    """Every TODO still not implemented and only a written answer left to grade by hand: untouched."""
    r = _report_result("kim", [("test_linear", "not_implemented", "⏳ not implemented"), ("summary", "manual", "")])
    assert grade_report.attention(r) == ["untouched: no TODO attempted"]


def test_one_todo_left_is_not_untouched():
    """A student who did one TODO and left another is not "untouched" (that would send the instructor after them)."""
    r = _report_result("lea", [("test_linear", "pass", "✅ ok"), ("test_cosine", "not_implemented", "⏳ not yet")])
    assert grade_report.attention(r) == []


def test_a_name_joined_to_a_word_by_an_underscore_is_anonymised():
    """The name in "ann_model" is the student's name as a word: the anonymised example must not show it."""
    page = grade_report.render(_two_students([("test_linear", "fail", "❌ linear: ann_model is wrong")],
                                             [("test_linear", "fail", "❌ linear: still wrong")]))
    wrong = page.split("<h2>Students who need attention</h2>")[0]
    assert "ann_model" not in wrong and "student A_model is wrong" in wrong


def test_the_page_forbids_loading_anything():
    """The Content-Security-Policy stops a browser from loading anything a missed escape could smuggle in."""
    page = grade_report.render(_class())
    assert "Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"" in page


# ------------------------------------------------------------------ Canvas and Moodle exports
def _graded(tmp_path):
    _write(tmp_path, _result("alice", 1, 2), _result("bob", 0, 2))
    return tmp_path


def test_a_grades_csv_saved_by_a_spreadsheet_exports(tmp_path):
    """A spreadsheet saves grades.csv with a byte-order mark and CRLF after the instructor typed points: it exports."""
    folder = _graded(tmp_path)
    text = (folder / "grades.csv").read_text(encoding="utf-8").replace(
        "alice,01_schedules,summary,,2,manual", "alice,01_schedules,summary,1.5,2,manual")
    (folder / "grades.csv").write_text("\ufeff" + text.replace("\n", "\r\n"), encoding="utf-8")
    assert _table(grade_lms.export(folder, "moodle", total_only=True)[0]) == [
        ["username", WS], ["alice", "4.5"], ["bob", "2"]]


def _roster_warnings(warnings: list[str]) -> list[str]:
    """export-lms's warnings but the one on answers still to grade by hand (these classes leave them all)."""
    return [w for w in warnings if "still to grade by hand" not in w]


def test_a_roster_with_a_byte_order_mark_and_padded_cells(tmp_path):
    """Canvas's export (or Excel's) starts with a byte-order mark and may pad cells: names and ids still land."""
    folder = _graded(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text('\ufeffStudent,ID,SIS User ID,SIS Login ID,Section\r\n"Liddell, Alice" , 1001 ,S-1, alice ,A\r\n',
                      encoding="utf-8")
    text, warnings = grade_lms.export(folder, "canvas", roster=roster, total_only=True)
    assert _table(text)[2] == ["Liddell, Alice", "1001", "S-1", "alice", "A", "3"]
    assert _roster_warnings(warnings) == ["bob: not in the roster; exported under the name course-grade gave it"]


def test_canvas_leaves_the_login_empty_when_the_roster_gives_an_sis_user_id(tmp_path):
    """A roster with SIS User IDs but no logins: the folder's name is no login (it could be someone else's)."""
    folder = _graded(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text("student,SIS User ID\nalice,S-1\n")
    rows = _table(grade_lms.export(folder, "canvas", roster=roster, total_only=True)[0])
    assert rows[2] == ["alice", "", "S-1", "", "", "3"]


def test_a_worksheet_a_student_did_not_submit_stays_empty(tmp_path):
    """No submission is no grade: an empty cell (the platform keeps what it has), not a 0 that overwrites it."""
    _in_a_second_worksheet(tmp_path, _result("alice", 1, 1))
    folder = _graded(tmp_path)
    rows = _table(grade_lms.export(folder, "moodle", total_only=True)[0])
    assert rows == [["username", WS, "02_forward"], ["alice", "3", "2"], ["bob", "2", ""]]


def test_points_are_exported_exactly(tmp_path):
    """Partial points keep their digits in each cell and the total (10.375 is not 10.38, 0 is "0", not empty)."""
    r = _result("alice", 0.375, 10)
    bob = _result("bob", 0, 0)
    r["rows"][1]["max_points"] = bob["rows"][1]["max_points"] = 10
    _write(tmp_path, r, bob)
    rows = _table(grade_lms.export(tmp_path, "canvas")[0])
    assert rows[1][5:] == ["1", "10", "2", "13"]
    assert rows[2][5:] == ["0.375", "10", "", "10.375"]
    assert rows[3][5:] == ["0", "0", "", "0"]


def test_points_keep_every_digit_a_course_can_give(tmp_path):
    """An instructor's weights may give 1234.5678 points or a million; six significant digits (``:g``) wrote them
    as 1234.57 and 1e+06. A sum's binary round-off stays out: 0.1 + 0.2 is 0.3, not 0.30000000000000004."""
    carol, dave = _result("carol", 1234.5678, 1e6), _result("dave", 0.1, 0.2)
    for r in (carol, dave):                     # the weights: up to 2,000 and 1,000,000 points
        r["rows"][0]["max_points"], r["rows"][1]["max_points"] = 2000, 1e6
    _write(tmp_path, carol, dave)
    rows = _table(grade_lms.export(tmp_path, "canvas")[0])
    assert rows[2][5:7] == ["1234.5678", "1000000"] and rows[2][-1] == "1001234.5678"
    assert rows[3][5:7] == ["0.1", "0.2"] and rows[3][-1] == "0.3"


def test_moodle_columns_ignore_canvas_ids(tmp_path):
    """--canvas-id names Canvas's assignment columns only; a Moodle grade column keeps the worksheet's name."""
    folder = _graded(tmp_path)
    text = grade_lms.export(folder, "moodle", total_only=True, canvas_ids={WS: "1234"})[0]
    assert _table(text)[0] == ["username", WS]


def test_grades_csv_and_the_export_agree_row_by_row(tmp_path):
    """Each student's export total is the sum of their own TODO cells in grades.csv, the hand-graded ones included."""
    folder = _graded(tmp_path)
    text = (folder / "grades.csv").read_text(encoding="utf-8").replace(
        "bob,01_schedules,summary,,2,manual", "bob,01_schedules,summary,0.5,2,manual")
    (folder / "grades.csv").write_text(text, encoding="utf-8")
    sums: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["grade_id"] != "TOTAL":
            sums[row["student"]] = sums.get(row["student"], 0.0) + float(row["points"] or 0)
    rows = _table(grade_lms.export(folder, "moodle", total_only=True)[0])
    assert {r[0]: float(r[1]) for r in rows[1:]} == sums == {"alice": 3.0, "bob": 2.5}


def test_a_feedback_file_stays_in_the_feedback_folder(tmp_path):
    """A result whose student name holds a path (a hand-edited or foreign result) is written under feedback/."""
    r = _result("x/../../evil", 1, 2)
    (tmp_path / "results" / WS).mkdir(parents=True)
    (tmp_path / "results" / WS / "evil.json").write_text(json.dumps(r))
    grade_feedback.write_reports(tmp_path)
    assert [p.name for p in (tmp_path / "feedback").iterdir()] == ["x_.._.._evil.md"]
    assert not (tmp_path / "evil.md").exists()


def test_the_feedback_names_the_file_without_the_graders_folders(tmp_path):
    """The student sees their notebook's name, not where the instructor keeps the class's submissions."""
    r = _result("jo", 1, 2)
    r["file"] = "/srv/prof/course/submissions/jo/01_schedules.ipynb"
    _write(tmp_path, r)
    text = _feedback(tmp_path, "jo")
    assert "File: 01\\_schedules.ipynb" in text or "File: 01_schedules.ipynb" in text
    assert "/srv" not in text and "prof" not in text


def test_the_feedback_names_a_folder_without_a_notebook_as_a_folder(tmp_path):
    """A student's folder in which no notebook was graded: "Folder: frank/", not "File: frank"."""
    (tmp_path / "subs" / "frank").mkdir(parents=True)
    r = {**_result("frank", 0, 2), "file": str(tmp_path / "subs" / "frank")}
    _write(tmp_path, r)
    text = _feedback(tmp_path, "frank")
    assert "Folder: frank/" in text and "File:" not in text and str(tmp_path) not in text
    from course_utils.grade_feedback import _handed_in
    assert _handed_in("") == "File: "           # (a result without a path: not the current folder, "Folder: /")


def test_pass_rates_and_mean_of_a_small_class():
    """Each TODO's pass rate counts every student (the first included), a hand-graded TODO says it waits, and the
    mean is over the students."""
    results = [_report_result("ann", [("test_linear", "pass", "✅ ok"), ("summary", "manual", "")]),
               _report_result("bob", [("test_linear", "fail", "❌ linear: no"), ("summary", "manual", "")])]
    page = grade_report.render(results)
    assert "1 / 2 (50%)" in page and "2 to grade by hand" in page
    assert "mean 0.5 of 2 points" in page
    assert "<td><code>summary</code></td><td class='num'>1</td>" in page
    assert "1 file(s) could not be graded at all" in grade_report.render(_class())
    # a file not graded counts as not passed in the rate, and the rate says so (an instructor's pass read 4 / 8
    # beside a list of 2 mistakes)
    unread = {**_report_result("cy", [("test_linear", "not_a_notebook", "not a notebook"),
                                      ("summary", "not_a_notebook", "not a notebook")]),
              "status": "not_a_notebook", "message": "not a notebook"}
    page = grade_report.render(results + [unread])
    assert "1 / 3 (33%), of which 1 file(s) not graded" in page, page
    assert "1 / 2 (50%)," not in grade_report.render(results)


def test_a_catalogued_hint_is_named_whatever_its_case_and_its_hint_shows_no_cell():
    """The catalogue's needle matches whatever the case; the hint shown for a mistake stops before "[before it,"
    (the first student's own cell, not anonymised, follows it)."""
    t, needle = _misses_the_last_value()
    message = (f"❌ {t}: {needle.upper()} [before it, your cell starting `x = 'ann_secret'` raised NameError: y]")
    page = grade_report.render([_report_result("ann_secret", [("test_linear", "fail", message)]),
                                _report_result("bob_secret", [("test_linear", "pass", "✅ ok")])])
    wrong = page.split("<h2>Students who need attention</h2>")[0]
    assert "<b>misses the last value</b>: 1 student(s)" in wrong
    assert "secret" not in wrong


def test_a_catalogued_hint_shown_for_the_class_is_anonymised():
    """The group's hint is the first student's message: a name in it (a value or an exception text the check
    quotes) must be replaced like the examples' ("student A"), not shown to whoever reads the report."""
    t, needle = _misses_the_last_value()
    page = grade_report.render([_report_result("ann_secret", [("test_linear", "fail", f"❌ {t}: {needle} "
                                                               "(KeyError: 'ann_secret')")]),
                                _report_result("bob_secret", [("test_linear", "pass", "✅ ok")])])
    wrong = page.split("<h2>Students who need attention</h2>")[0]
    assert "<b>misses the last value</b>: 1 student(s)" in wrong and "secret" not in wrong


def test_every_student_who_needs_attention_is_listed_with_the_reason():
    """The attention list is the instructor's to-do: every flagged student, each with the grader's reason."""
    results = [_report_result(f"s{i}", [("test_linear", "not_a_notebook", "x")], "not_a_notebook",
                              f"not a notebook: reason {i}") for i in range(12)]
    attention = grade_report.render(results).split("<h2>Students who need attention</h2>")[1]
    for i in range(12):
        assert f"<td>s{i}</td>" in attention and f"<td>not a notebook: reason {i}</td>" in attention
        assert "not_a_notebook" not in attention         # the status, then the message that repeats it


def test_many_cells_that_raised_are_listed_ten_then_counted():
    """Ten kinds of cell errors are shown, the rest counted: none silently dropped."""
    r = _report_result("ann", [("test_linear", "pass", "✅ ok")])
    r["cell_errors"] = [{"role": "student", "cell": f"your cell {i}", "ename": f"E{i}", "evalue": ""}
                        for i in range(12)]
    section = grade_report.render([r]).split("<h3>Cells that raised outside the graded TODOs</h3>")[1]
    assert section.count("<td class='num'>1</td></tr>") == 10 and "2 more</td>" in section


def test_moodles_own_export_is_a_roster(tmp_path):
    """Moodle's participant export says "ID number" and "Email address": a student named by either is found."""
    _write(tmp_path, _result("alice", 1, 2), _result("20231002", 0, 2))
    roster = tmp_path / "roster.csv"
    roster.write_text("First name,Surname,ID number,Email address\nAlice,L,20231001,alice@uni.example\n"
                      "Bob,B,20231002,bob@uni.example\n")
    text, warnings = grade_lms.export(tmp_path, "moodle", roster=roster, total_only=True)
    assert _table(text) == [["email", "idnumber", WS], ["bob@uni.example", "20231002", "2"],
                            ["alice@uni.example", "20231001", "3"]]
    assert _roster_warnings(warnings) == []


def test_the_cli_writes_names_in_utf8(tmp_path):
    """A roster's "Zoë Ça" reaches the file Canvas imports as UTF-8, letter for letter (no "?"), under the
    assignment id given by --canvas-id."""
    from course_utils import grade
    _write(tmp_path, _result("zoe", 1, 2))
    roster = tmp_path / "roster.csv"
    roster.write_text("student,Student,SIS Login ID\nzoe,Zoë Ça,zoe\n", encoding="utf-8")
    out = tmp_path / "canvas.csv"
    assert grade.main(["export-lms", str(tmp_path), "--format", "canvas", "--out", str(out), "--roster", str(roster),
                       "--total-only", "--canvas-id", f"{WS}=1234"]) == 0
    rows = _table(out.read_text(encoding="utf-8"))
    assert rows[0][-1] == f"{WS} (1234)" and rows[2] == ["Zoë Ça", "", "", "zoe", "", "3"]


def test_a_file_that_could_not_be_graded_is_explained_once_in_its_feedback():
    """An instructor's report: a notebook cut off half-way got its JSON error four times, in bold and once per TODO
    ("not passed. not a notebook: ..."), in words a student cannot act on."""
    why = "not a notebook: the file is not valid JSON, as when it was cut off while saving or uploading"
    result = _report_result("leo", [("test_linear", "not_a_notebook", why), ("test_cosine", "not_a_notebook", why)],
                            "not_a_notebook", why)
    text = grade_feedback.feedback_markdown("leo", [{**result, "file": "leo.ipynb"}])
    assert text.count("cut off while saving") == 1, text
    assert "- **test_linear** (0 / 1): not graded (see above)." in text, text
