"""A TODO that failed beside a failing TODO it calls, graded again with the course's answer in its place.

Some TODOs call others by name (``Check.calls``): the lab's ``reverse_diffusion`` calls the student's
``denoise`` and ``diffusion_schedule``, worksheet 3's ``SmallUNet`` builds the student's ``ResBlock`` and
``SinusoidalTimeEmbedding``, worksheet 5's ``ddim_sample_loop`` calls ``ddim_step``. A right ``reverse_diffusion``
beside a wrong ``denoise`` fails every case, and scored 0 until an instructor credited it by hand.

So ``course-grade`` runs such a submission again for each such TODO (``grade.with_course_answers``): the same
notebook and cases, and before the TODO's graded cell a cell that runs SOURCE's answer (its solution cell's code)
to each failing TODO it calls, directly or through another (``SmallUNet`` -> ``SinusoidalTimeEmbedding`` ->
``sinusoidal_embedding``); the run ends with that graded cell, whose verdict is the only one it gives. A TODO
that passes then gets its points, and its message says with which of the course's answers; one that fails again
keeps its first verdict, which says that it failed with the course's answer too.

One run per TODO, ended at its graded cell, because the student's code runs beside the course's answers there
and can keep them: a UNet that stored the course's time embedding (in ``builtins``), and a later cell of the
student's that bound it as their own embedding, whose graded cell they had moved after the UNet's, had the
embedding graded as the course's own in a single second run for both (tests/test_grade_callees.py), even with
the student's definitions put back after each graded cell.

What a second run gives away: the student's code runs beside the course's answer to the TODO it calls, and can
read it. Nothing of that run reaches the student or the result but how the TODO graded again ended (passed,
failed, or no verdict): no message, output, figure, error or note; under 2 bits per TODO and submission, in a TODO
whose callee already failed. And the run's length: the result records it for the instructor
(``second_run_seconds``) and Gradescope's results leave it out of the time they show, but a Gradescope result
appears that much later (a red team's loop slept by the course's code and read about 10 bits per run so).

Which TODOs: those whose first verdict is a wrong value or an error, or "not implemented" whose own cell no
longer reaches a ``raise NotImplementedError`` (``unfinished``: a callee's ``NotImplementedError`` propagates
through a finished caller), with at least one failing TODO they call that SOURCE has an answer for. A TODO
that ran out of time is run again only when a TODO it calls ran out of time too, whose loop is then most likely
what held it (a right ``reverse_diffusion`` beside a ``while True`` in ``denoise`` scored 0 as a timeout, found by
an instructor's pass of 2026-12-08); any other timeout is not run twice (it would cost its limit again, with
nothing to blame).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

AGAIN = " [graded again with the course's "       # how a TODO's message says what the second run gave it
FAILED_TOO = "it did not pass either"               # ... when that run's verdict was a fail too
RERUN_STATUSES = ("fail", "error", "not_implemented")


@dataclass(frozen=True)
class Answer:
    """SOURCE's answer to a TODO: its solution cell's code and the names the cell binds at its top level."""
    code: str
    names: tuple[str, ...]


def answers(cells: list[tuple[str, str]]) -> dict[str, Answer]:
    """name -> Answer for each name a solution cell defines (``cells``: (grade_id, code) of SOURCE's solution
    cells, in order); a cell that does not parse defines nothing."""
    found: dict[str, Answer] = {}
    for _, code in cells:
        try:
            body = ast.parse(code).body
        except SyntaxError:
            continue
        names = tuple(dict.fromkeys(_bound(body)))
        for name in names:
            found.setdefault(name, Answer(code, names))
    return found


def _bound(body: list[ast.stmt]):
    """The names a module's top-level statements bind (defs, classes, plain assignments, imports)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                yield from (n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from ((a.asname or a.name).split(".")[0] for a in node.names)


def to_replace(graded, rows: list[dict], course: dict[str, Answer], calls: dict[str, tuple[str, ...]],
               student_cells: dict[str, str]) -> dict[str, list[str]]:
    """grade_id -> the TODOs (targets) whose course answers a second run puts in place of the student's, for
    each TODO to grade again (see the module's docstring). ``graded``: SOURCE's graded checks (grade_id, check,
    target); ``rows``: their first verdicts; ``calls``: check -> the targets it calls; ``student_cells``:
    grade_id -> the code of the student's cell of that grade_id (to tell an untouched stub: a TODO's own cell has
    the TODO's name as its grade_id, as nbgrader's solution cells of the worksheets do)."""
    status = {g.target: r.get("status") for g in graded for r in rows if r.get("grade_id") == g.grade_id}
    check_of = {g.target: g.check for g in graded}

    def failing(name: str) -> bool:
        return status.get(name, "pass") != "pass" and name in course

    out = {}
    for g in graded:
        first = status.get(g.target)
        if first == "timeout":          # only beside a callee that ran out of time too (the module's docstring)
            if not any(status.get(d) == "timeout" and d in course for d in calls.get(g.check, ())):
                continue
        elif first not in RERUN_STATUSES:
            continue
        if first == "not_implemented" and unfinished(student_cells.get(g.target)):
            continue                    # its own stub: nothing of the student's to grade
        names, todo = [], [d for d in calls.get(g.check, ()) if failing(d)]
        while todo:                     # what the replaced ones call, when it fails too
            name = todo.pop(0)
            if name not in names and g.target not in course[name].names:     # never the TODO's own name
                names.append(name)
                todo += [d for d in calls.get(check_of.get(name), ()) if failing(d)]
        if names:
            out[g.grade_id] = names
    return out


def unfinished(code: str | None) -> bool:
    """Whether a TODO's cell still holds a stub: a function in it whose body reaches ``raise NotImplementedError``
    before any ``return`` (the worksheets' stub replaces the solution at the top of a body: a ``raise`` left
    after a finished body's ``return``, or in a comment, is not one). No cell, or one that does not parse: True."""
    if code is None:
        return True
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.Return):
                break
            if isinstance(stmt, ast.Raise) and stmt.exc is not None and "NotImplementedError" in {
                    n.id for n in ast.walk(stmt.exc) if isinstance(n, ast.Name)}:
                return True
    return False


def before_cell(names: list[str], course: dict[str, Answer], target: str) -> str:
    """The cell a second run puts before ``target``'s graded cell, the last cell it runs: the course's answers."""
    codes = list(dict.fromkeys(course[name].code for name in names))
    return (f"# Added by course-grade for a second run: the course's {' and '.join(names)} in place of yours while "
            f"the next cell grades\n# your {target}, the last cell of this run. Only whether {target} passes is "
            "kept from it.\n" + "\n\n".join(code.strip() for code in codes) + "\n")


def credit(graded, rows: list[dict], again: list[dict], replaced: dict[str, list[str]], max_message: int
           ) -> list[dict]:
    """``rows`` with each TODO graded again (``replaced``) that passed the second run (``again``'s rows) given
    its points; one that did not keeps its verdict, with a note that says whether that run failed it too, ended
    before its verdict (out of the submission's time, a crash) or did not start (``"started": False``: the first
    run left too little of the time limit); its hint is shortened to keep the message within ``max_message``
    characters with both notes whole. Nothing else is read of ``again``."""
    from .checks import PASS
    from .checks.framework import failing_words
    target = {g.grade_id: g.target for g in graded}
    status = {r.get("grade_id"): r.get("status") for r in again}
    unstarted = {r.get("grade_id") for r in again if r.get("started") is False}
    final = {target.get(r.get("grade_id")): "pass" if status.get(r.get("grade_id")) == "pass" else r.get("status")
             for r in rows}
    for row in rows:
        names = replaced.get(row.get("grade_id"))
        if not names:
            continue
        yours = " and ".join(names)
        row["course_answers"] = list(names)
        if status.get(row["grade_id"]) == "pass":
            # the fault is in those that still fail: a callee credited itself (worksheet 3's time embedding beside
            # a wrong sinusoidal_embedding) is not named as failing
            faulty, own, fix, _ = failing_words([n for n in names if final.get(n) != "pass"] or names)
            row.update(points=row["max_points"], status="pass", message=(
                f"{PASS} {target[row['grade_id']]}: correct with the course's {yours} in place of yours, so it has "
                f"its points; your {faulty} {own}: fix {fix} and it passes as it is"))
        else:
            # (the hint before the notes came from the student's callee; only the status of this run is read, so
            # the instant check, with the course's answers in the package, gives the one with a right callee)
            note = (f"{FAILED_TOO}: look at {target[row['grade_id']]} itself too; its check in your notebook gives "
                    f"its hint with a right {yours}"
                    if status.get(row["grade_id"]) in RERUN_STATUSES else
                    "that run did not start: your notebook's first run left too little of its time limit"
                    if row["grade_id"] in unstarted else
                    "that run ended before its verdict (out of time, or a crash)")
            row["message"] = fit(str(row["message"]), f"{AGAIN}{yours} in place of yours, {note}]", max_message)
    return rows


def fit(message: str, note: str, max_message: int) -> str:
    """``message`` + ``note`` in at most ``max_message`` characters: the hint before the first note ("[it calls
    your ...") is shortened, so that the notes, which the report groups by, stay whole."""
    cut = message.find(" [it calls your ")
    head, tail = (message, "") if cut < 0 else (message[:cut], message[cut:])
    room = max_message - len(tail) - len(note)
    if len(head) > room:
        head = head[:max(room - 1, 0)] + "…"
    return head + tail + note
