"""DIR/report.html, what the class got wrong (course_utils/grade_report.py).

The fast tests build results by hand (the messages the grader writes, with the catalogue's hints); the slow ones
read the report of the session's small class (tests/grading_small_class.py), graded by the real CLI.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from course_utils import grade_report
from course_utils.checks import CHECKS, MISTAKES

import grading_small_class as small



def external(page: str) -> list[str]:
    """What in ``page`` could load something (a tag that fetches, an attribute with an address, CSS url())."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "link", "iframe", "object", "embed", "base", "img", "image", "use", "form"):
                found.append(tag)
            found.extend(f"{tag} {name}" for name, _ in attrs if name in ("src", "href", "xlink:href", "srcset",
                                                                        "action", "background", "poster"))
    Parser().feed(page)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    found += [s for s in styles if "url(" in s or "@import" in s or "@font-face" in s]
    return found + re.findall(r"https?://", page)


def _needle(check: str, mistake: str) -> str:
    return next(needle for mid, _, needle in MISTAKES[check] if mid == mistake)


def _result(student: str, rows: list[tuple[str, str, str]], status: str = "graded", message: str = "") -> dict:
    return {"student": student, "worksheet": "01_schedules", "status": status, "message": message,
            "rows": [{"grade_id": gid, "points": 1 if st == "pass" else "" if st == "manual" else 0, "max_points": 1,
                      "status": st,
                      "message": msg} for gid, st, msg in rows]}


def _class() -> list[dict]:
    t = CHECKS["linear_beta_schedule"].target
    last = f"❌ {t}: the {_needle('linear_beta_schedule', 'misses the last value')} (evenly spaced)"
    alpha = f"❌ {t}: you returned alphas: {_needle('linear_beta_schedule', 'alphas instead of betas')} confused"
    ok = ("test_cosine", "pass", "✅ cosine_beta_schedule: correct")
    return [
        _result("ann_secret", [("test_linear", "fail", last), ok]),
        _result("bob_secret", [("test_linear", "fail", last + " [before it, your cell raised X: y]"), ok]),
        _result("cy_secret", [("test_linear", "fail", last), ok]),
        _result("dee_secret", [("test_linear", "fail", alpha), ok]),
        _result("eve_secret", [("test_linear", "pass", f"✅ {t}: correct"),
                               ("test_cosine", "error", "❌ cosine_beta_schedule: raised ValueError: "
                                '<script>alert("eve_secret")</script> (line 3)')]),
        _result("<img src=x onerror=alert(1)>", [("test_linear", "not_implemented", f"⏳ {t}: not implemented yet"),
                                                 ("test_cosine", "not_implemented", "⏳ cosine: not implemented yet")]),
        _result("zed_secret", [("test_linear", "not_a_notebook", "not a notebook: <b>bold</b>"),
                               ("test_cosine", "not_a_notebook", "not a notebook")], "not_a_notebook", "<i>x</i>"),
    ]


def _ranking(page: str, gid: str) -> list[tuple[str, int]]:
    section = page.split(f"<h4><code>{gid}</code></h4>", 1)[1].split("</ol>", 1)[0]
    return [(html_label, int(n)) for html_label, n in re.findall(r"<b>(.*?)</b>: (\d+) student", section)]


def test_mistakes_are_ranked_by_how_many_students_made_them():
    page = grade_report.render(_class())
    ranking = _ranking(page, "test_linear")
    assert ranking[0] == ("misses the last value", 3), ranking
    assert ("alphas instead of betas", 1) in ranking and ("not implemented", 1) in ranking, ranking
    assert [n for _, n in ranking] == sorted((n for _, n in ranking), reverse=True)
    # ties by name; a file not graded at all is no mistake of a TODO (it is listed once, with the attention)
    assert _ranking(page, "test_cosine") == [("not implemented", 1), ("raised ValueError", 1)]


def test_each_todo_has_its_pass_rate_and_the_scores_a_histogram():
    page = grade_report.render(_class())
    assert "1 / 7 (14%)" in page and "4 / 7 (57%)" in page       # test_linear, test_cosine
    assert page.count("<svg class=\"histogram\"") == 1 and page.count("<rect") == 3      # 0, 1, 2 points


def test_a_fractional_score_is_not_shown_as_whole_points():
    """Per point, 7.5 falls in the bar of 7: that bar must say it holds 7 to under 8, not "7"."""
    whole, fractional = grade_report._histogram([7.0, 8.0], 8), grade_report._histogram([7.5, 8.0], 8)
    assert "<title>7 points: 1 student(s)</title>" in whole and "to &lt;" not in whole
    assert "<title>7 to &lt;8 points: 1 student(s)</title>" in fractional
    assert "<title>8 points: 1 student(s)</title>" in fractional          # the maximum is a score of its own


def test_examples_are_anonymised_and_everything_is_escaped():
    page = grade_report.render(_class())
    wrong = page.split("<h2>Students who need attention</h2>")[0]
    assert "secret" not in wrong, "a student's name in the anonymised examples"
    assert "student A" in wrong
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page and "<i>x" not in page
    assert "&lt;script&gt;alert(&quot;student F&quot;)&lt;/script&gt;" in wrong      # eve (F: "<img" sorts first)
    assert not external(page)


def test_the_students_who_need_attention():
    page = grade_report.render(_class())
    attention = page.split("<h2>Students who need attention</h2>")[1]
    for name in ("eve_secret", "&lt;img src=x onerror=alert(1)&gt;", "zed_secret"):
        assert name in attention, name
    for name in ("ann_secret", "bob_secret", "dee_secret"):      # wrong answers, not trouble
        assert name not in attention, name
    assert "untouched" in attention and "1 TODO(s) raised an error" in attention


def _raised(result: dict, role: str, cell: str, ename: str, evalue: str) -> dict:
    result.setdefault("cell_errors", []).append({"role": role, "cell": cell, "ename": ename, "evalue": evalue})
    return result


def test_cells_that_raised_outside_the_todos():
    """A cell that raised in most of the class, or in the worksheet's own code, points at the grader's setup; one
    student's own error is listed without the alarm. Anonymised and escaped like the rest."""
    results = _class()[:5]
    data = "the worksheet's locked cell 'data' starting `train = load_mnist()`"
    for r in results[:3]:
        _raised(r, "locked", data, "DatasetNotFoundError", "MNIST is not in /data")
    _raised(results[4], "student", "your cell starting `print('eve_secret')`", "<b>Oops</b>", "eve_secret's bug")
    page = grade_report.render(results)
    section = page.split("<h3>Cells that raised outside the graded TODOs</h3>")[1].split("<h2>")[0]
    assert "<b>Check the grader's setup</b>" in section
    assert "DatasetNotFoundError in the worksheet&#x27;s locked cell" in section and "3 of 5 students" in section
    assert "secret" not in section and "&lt;b&gt;Oops&lt;/b&gt;: student" in section
    counts = re.findall(r"<td class='num'>(\d+)</td></tr>", section)
    assert counts == ["3", "1"], counts
    # one student's own error, alone: listed, no alarm
    alone = grade_report.render([_raised(_class()[0], "student", "your cell starting `x = 1/0`",
                                         "ZeroDivisionError", "division by zero"), *_class()[1:5]])
    assert "ZeroDivisionError" in alone and "Check the grader's setup" not in alone
    # the same error in most students' own copy of a cell: the alarm
    most = [_raised(r, "student", "your cell starting `train = load_mnist()`", "DatasetNotFoundError", "no")
            for r in _class()[:3]] + _class()[3:5]
    assert "Check the grader's setup" in grade_report.render(most)
    # ... unless it is an unfinished TODO's NotImplementedError (a locked cell that calls it, in a class that has
    # not started): listed, no alarm
    todo = [_raised(r, "locked", "the worksheet's locked cell 'demo' starting `show(q_sample(x, t))`",
                    "NotImplementedError", "q_sample: your code here") for r in _class()[:4]] + _class()[4:5]
    assert "NotImplementedError" in grade_report.render(todo)
    assert "Check the grader's setup" not in grade_report.render(todo)
    # the worksheet's own cell failing for one student of five (who broke what it needs): listed, no alarm;
    # for the only student of a class of one: the alarm
    one = [_raised(_class()[0], "locked", data, "NameError", "name 'x' is not defined"), *_class()[1:5]]
    assert "NameError" in grade_report.render(one) and "Check the grader's setup" not in grade_report.render(one)
    assert "Check the grader's setup" in grade_report.render(one[:1])
    alone = [_raised(_class()[0], "student", "your cell", "E", "")]
    assert "Check the grader's setup" not in grade_report.render(alone)
    assert "Cells that raised" not in grade_report.render(_class())
    # a name is replaced as a word only: student "ann" leaves torch's "channels" alone
    ann = _raised(_result("ann", [("test_linear", "pass", "✅ ok")]), "student", "your cell starting `c = channels`",
                  "NameError", "name 'channels' is not defined (ann's cell, Ann's)")
    page = grade_report.render([ann, _result("bob", [("test_linear", "pass", "✅ ok")])])
    assert "a student&#x27;s cell starting `c = channels`" in page
    assert "name &#x27;channels&#x27; is not defined (student A&#x27;s cell, student A&#x27;s)" in page


def test_letters():
    assert [grade_report.letter(i) for i in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]


# ------------------------------------------------------------------ slow: the report of a real class
@pytest.mark.slow
def test_the_report_of_a_graded_class(small_class):
    assert small_class["proc"].returncode == 0, small_class["proc"].stderr[-3000:]
    page = (small_class["out"] / "report.html").read_text(encoding="utf-8")
    assert not external(page)
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in page     # script_error's exception
    ranking = _ranking(page, small_class["first"])
    assert ranking[0] == (small.SAME, 2), ranking
    assert (small.OTHER, 1) in ranking and ("not implemented", 1) in ranking, ranking
    assert sum(n for _, n in ranking) == 4, ranking     # and two files were not notebooks (not a TODO's mistake)
    attention = page.split("<h2>Students who need attention</h2>")[1]
    for name in ("untouched", "script_error", "not_json", "empty_notebook"):
        assert f"<td>{name}</td>" in attention, name
    for name in ("correct", "wrong_same_1", "wrong_other"):
        assert f"<td>{name}</td>" not in attention, name


def test_a_deleted_graded_cell_needs_attention():
    """A graded cell deleted from a submission scores 0 without a wrong answer: the instructor must see it (the
    student copies the cell back, or is told why it matters), so the student is listed, with the reason."""
    t = CHECKS["linear_beta_schedule"].target
    r = _result("fay_secret", [("test_linear", "pass", f"✅ {t}: correct"), ("test_cosine", "missing", "deleted")])
    assert grade_report.attention(r) == ["1 TODO(s) a graded cell was deleted: test_cosine"]
    attention = grade_report.render([r]).split("<h2>Students who need attention</h2>")[1]
    assert "<td>fay_secret</td>" in attention and "a graded cell was deleted" in attention


def test_a_student_who_failed_every_todo_is_not_untouched():
    """"Untouched" means nothing attempted (every TODO still not implemented). A student who tried everything and
    got it all wrong did the work: calling them untouched would mislead the instructor, and wrong answers alone
    need no attention."""
    t = CHECKS["linear_beta_schedule"].target
    r = _result("gus_secret", [("test_linear", "fail", f"❌ {t}: wrong"), ("test_cosine", "fail", "❌ cosine: wrong")])
    assert grade_report.attention(r) == []
    page = grade_report.render([r])
    attention, lowest = page.split("<h2>Students who need attention</h2>")[1].split("<h2>Lowest scores</h2>")
    assert "<td>gus_secret</td>" not in attention
    # but whom to help first: an instructor's report (two students with 0 of 8 were named nowhere)
    assert "<td>gus_secret</td>" in lowest and "0 / 2" in lowest and "test_linear, test_cosine" in lowest, lowest


def test_the_lowest_scores_leave_every_written_answer_aside():
    """"Under half of a worksheet's automatic points (the written answers aside)" counted a blank summary: an
    instructor's pass read the lab's students as "2 / 10" beside "2 / 7", and whether a student was listed
    depended on the written answer. Answered (to grade by hand) or blank, it is left out."""
    fail, ok, ok_c = ("test_a", "fail", "❌ a: wrong"), ("test_b", "pass", "✅ b: ok"), ("test_c", "pass", "✅ c: ok")
    blank = ("summary", "not_implemented", f"{grade_report.NOT_ANSWERED}: the answer still reads YOUR ANSWER HERE")
    deleted = ("summary", "missing", "the answer cell 'summary' is missing: 0 points")
    rows = [_result("blank", [fail, ok, ok_c, blank]), _result("wrote", [fail, ok, ok_c, ("summary", "manual", "")]),
            _result("deleted", [fail, ok, ok_c, deleted]),
            _result("low_blank", [fail, ("test_b", "fail", "❌ b: wrong"), ok_c, blank])]
    for r in rows:
        r["rows"][-1]["max_points"] = 3     # (counted, the written answer would put 2 of 3 under half: 2 of 6)
    lowest = grade_report.render(rows).split("<h2>Lowest scores</h2>")[1]
    assert "<td>blank</td>" not in lowest and "<td>wrote</td>" not in lowest, lowest
    assert "<td>deleted</td>" not in lowest, lowest
    assert "<td>low_blank</td>" in lowest and "1 / 3" in lowest and "test_a, test_b<" in lowest, lowest
    assert "summary" not in lowest.split("</table>")[0], lowest


def test_a_copy_of_the_solutions_and_an_own_cell_that_loops_need_attention():
    """A student who handed in solutions/01_schedules.ipynb (nbgrader's markers, the hidden tests) scored full
    marks unflagged; a cell of the student's own that ran past the limit per cell cost the grader minutes and
    showed only as a count (an instructor's report)."""
    copy = {**_result("rita", [("test_linear", "pass", "✅ ok")]),
            "solution_markers": ["### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"]}
    loop = {**_result("grace", [("test_linear", "pass", "✅ ok")]),
            "cell_errors": [{"cell": "your cell starting `while True:`", "role": "student",
                             "ename": "CellTimeoutError", "evalue": "120 s"}]}
    assert "a copy of the instructor's notebook?" in " ".join(grade_report.attention(copy))
    said = " ".join(grade_report.attention(loop))
    assert "1 cell(s) of its own ran past the limit per cell (an infinite loop?)" in said
    assert "the cell starting `while True:`" in said and "your cell" not in said      # the instructor reads it
    assert not grade_report.attention(_result("ann", [("test_linear", "pass", "✅ ok")]))


def test_a_timeout_beside_others_and_a_grading_alone_that_moved_points_need_attention():
    """Without a CPU share per job, a timeout beside another submission is graded again alone
    (grade_report.waiting_alone): the instructor sees one whose run stopped before that (rerun), and one whose
    points moved alone (whose processes took the CPU?); one graded alone to the same points needs nothing."""
    waiting = {**_result("bob", [("test_linear", "timeout", "ran past")]), "beside_others": True}
    moved = {**_result("carol", [("test_linear", "pass", "✅ ok")]), "graded_alone": {"points_beside_others": 0}}
    same = {**_result("dave", [("test_linear", "timeout", "ran past")]), "graded_alone": {"points_beside_others": 0}}
    assert any("the run stopped before grading it again alone: run course-grade again" in w
               for w in grade_report.attention(waiting))
    assert "graded again alone after running out of time beside another submission (no CPU share of its own): " \
        "0 -> 1 automatic points" in " ".join(grade_report.attention(moved))
    assert not any("alone" in w for w in grade_report.attention(same))


def test_a_second_run_that_ran_out_of_time_needs_attention():
    """A TODO graded again with the course's answer to a failing TODO it calls (grade_callees), whose second run
    ran out of time, keeps its first fail: the instructor is told that a larger --timeout may credit it (a
    rerun with more generous limits grades it again: grade._why_regrade); while it waits to be graded alone,
    that line says it already."""
    late = {**_result("erin", [("test_loop", "fail", "❌ loop: wrong [... that run ended before its verdict]")]),
            "second_run_timeouts": ["test_loop"]}
    said = " ".join(grade_report.attention(late))
    assert "graded again with the course's answer to a failing TODO it calls, and that run ran out of time (or did " \
        "not start: the first run left too little of --timeout): test_loop (a rerun with a larger --timeout grades " \
        "it again and may credit it)" in said, said
    assert not any("course's answer" in w for w in grade_report.attention({**late, "beside_others": True}))
    assert not any("course's answer" in w for w in grade_report.attention({**late, "second_run_timeouts": []}))


def test_a_written_answer_left_as_given_is_not_called_a_stub_that_raises():
    """An untouched summary is a markdown cell: "its stub still raises NotImplementedError" was wrong for it."""
    message = "not answered (the cell is empty or still reads YOUR ANSWER HERE)"      # grade.py's, for a summary
    page = grade_report.render([_result("bob", [("summary", "not_implemented", message),
                                                ("test_linear", "not_implemented", "⏳ linear: not implemented yet")])])
    summary = page.split("<h4><code>summary</code></h4>", 1)[1].split("</ol>", 1)[0]
    assert "still reads YOUR ANSWER HERE" in summary and "NotImplementedError" not in summary
    linear = page.split("<h4><code>test_linear</code></h4>", 1)[1].split("</ol>", 1)[0]
    assert "NotImplementedError" in linear


def test_a_failure_beside_a_failing_todo_it_calls_is_a_group_of_its_own():
    """An instructor's report: right loops beside a wrong ddim_step were filed under the loop's mistakes, two
    under a false catalogue name ("reseeded from the generator's seed"), so the page said to re-teach seeding."""
    loop = CHECKS["ddim_sample_loop"].target
    hint = _needle("ddim_sample_loop", "reseeded from the generator's seed")
    note = " [it calls your ddim_step, which fails its own check: fix that first, this verdict may come from it]"
    results = [_result(f"s{i}", [("test_loop", "fail", f"❌ {loop}: {hint}{note if i else ''}")]) for i in range(3)]
    ranking = _ranking(grade_report.render(results), "test_loop")
    assert ("failed beside a failing ddim_step (which it calls)", 2) in ranking, ranking
    assert ("reseeded from the generator&#x27;s seed", 1) in ranking, ranking


def test_another_wrong_answer_shows_one_example_per_distinct_message():
    """Two identical examples hid a third student's new mistake (an instructor's report)."""
    t = CHECKS["linear_beta_schedule"].target
    results = [_result(n, [("test_linear", "fail", f"❌ {t}: {m}")]) for n, m in
               (("ann", "values differ A"), ("bob", "values differ A"), ("cy", "values differ B"))]
    section = grade_report.render(results).split("<h4><code>test_linear</code></h4>", 1)[1].split("</ol>", 1)[0]
    assert f"student A, student B: {t}: values differ A" in section and f"student C: {t}: values differ B" in section


def test_a_loop_graded_again_with_the_course_step_is_counted_and_grouped_apart():
    """The second run (grade_callees): a loop that passed with the course's ddim_step counts as a pass, named in its
    TODO's row; one that failed with it too is a group that says so."""
    loop = CHECKS["ddim_sample_loop"].target
    calls = " [it calls your ddim_step, which fails its own check: fix that first, this verdict may come from it]"
    again = (f" [graded again with the course's ddim_step in place of yours, it did not pass either: look at {loop} "
             "itself too]")
    credited = {"grade_id": "test_loop", "points": 3, "max_points": 3, "status": "pass",
                "course_answers": ["ddim_step"],
                "message": f"✅ {loop}: correct with the course's ddim_step in place of yours, so it has its points"}
    results = [_result("ann", [("test_loop", "fail", f"❌ {loop}: wrong{calls}{again}")]), _result("bob", [])]
    results[1]["rows"] = [credited]
    page = grade_report.render(results)
    assert "1 / 2 (50%); 1 with the course&#x27;s ddim_step" in page
    assert ("failed beside a failing ddim_step (which it calls), and with the course&#x27;s", 1) in _ranking(
        page, "test_loop")
