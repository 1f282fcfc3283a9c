"""What the class got wrong: DIR/report.html, one self-contained page written with grades.csv.

For each worksheet in DIR/results/: the distribution of the students' scores (a histogram), each TODO's pass
rate, each TODO's mistakes ranked by how many students made them, the cells that raised outside the graded TODOs
(``cell_errors``: one error in most of the class points at the grader's setup), the students who need
attention and those with the lowest scores.

- **Mistakes come from the verdicts already in the results**, never from rerunning anything: a failed TODO's
  message is "❌ <target>: <hint>", and the hint is matched against the catalogue (``checks.MISTAKES``: each
  catalogued mistake names a substring its hint contains), so a mistake is named as docs/mistakes.md names it.
  A wrong answer that matches no catalogued hint is "another wrong answer"; an error is grouped by the
  exception it raised; not implemented, timeouts, crashes and missing cells are groups of their own.
- **Examples are anonymised**: each group shows its messages, the students called "student A", "student B"
  (letters given in alphabetical order of the names, the same across the page), with the name removed from the
  text. Only the lists of students who need attention and of the lowest scores name them: the instructor has to
  act on them.
- **A failure beside a failing TODO it calls** (the message ends "[it calls your ddim_step, which fails its own
  check ...]") is a group of its own, not a mistake of the loop. The grader graded it again with the course's
  step in place of the student's (``grade_callees``): a right loop passed that run and has its points (the TODO's
  row counts them, "2 with the course's ddim_step"); what is in the group failed with the course's step too.
- **Examples are one per distinct message** (up to six), so a new mistake among "another wrong answer" shows.
- **Everything from a submission is escaped** (``html.escape``, quotes included): names, messages, hints, file
  names. The page loads nothing: inline CSS, inline SVG, no script, no font, no link to any URL; it is
  deterministic (no date, no timing), so merged shards write the same page as one run.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from .exercises import ANSWER_STUB
from .grade_callees import AGAIN, FAILED_TOO

PASSED, PENDING = "pass", "manual"
NOT_ANSWERED = "not answered"          # how grade.py's message for a written answer left as given begins
ANSWER_CELL_MISSING = "the answer cell "    # ... and for a written answer whose cell was deleted
ATTENTION = {"error": "raised an error", "timeout": "ran out of time", "crashed": "crashed",
             "grader_error": "grader error (retried on the next run)", "missing": "a graded cell was deleted"}
GROUPS = {     # status -> (label, what it means), for failures that are not wrong answers
    "not_implemented": ("not implemented", "the TODO is untouched: its stub still raises NotImplementedError"),
    "timeout": ("ran out of time", "an infinite loop, or far too slow on the test cases"),
    "crashed": ("the kernel died", "os._exit, a crash, or the memory limit"),
    "missing": ("graded cell deleted", "the test cell was deleted (or its metadata removed): copy it back"),
    "grader_error": ("grader error", "a bug of the grader, or a sandbox it could not set up on this machine; "
                                     "retried on the next run"),
}
CSS = """body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1,h2,h3{line-height:1.2}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
.bar{background:#eee;width:12em;height:.9em;display:inline-block}.bar span{background:#2a7;height:100%;display:block}
.num{text-align:right}.ex{font:13px ui-monospace,monospace;color:#555;word-break:break-word}
.mistake{margin:.2em 0 1em}.muted{color:#777}svg text{font:11px system-ui,sans-serif;fill:#333}"""


def _e(text) -> str:
    """Text from a submission (or a result file), safe anywhere in HTML: everything escaped, quotes included."""
    return html.escape(str(text), quote=True)


def _points(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def letter(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: anonymous names for examples."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


# ------------------------------------------------------------------ naming a failure
_TARGET = re.compile(r"^\W*\s*([\w.]+):\s*(.*)$", re.S)


_CALLS = re.compile(r" \[it calls your (.+?), which fails? (?:its|their) own checks?")   # checks.framework.depends_note


def _hint(message: str) -> tuple[str | None, str]:
    """'❌ target: hint [before it, ...]' -> (target, hint)."""
    message = str(message).split(" [before it, ")[0].strip()
    m = _TARGET.match(message)
    return (m.group(1), m.group(2).strip()) if m else (None, message)


def _catalogue() -> dict[str, list[tuple[str, str]]]:
    """target -> [(mistake id, substring of its hint)] from checks.MISTAKES, in catalogue order."""
    from .checks import CHECKS, MISTAKES
    table: dict[str, list[tuple[str, str]]] = {}
    for name, mistakes in MISTAKES.items():
        table.setdefault(CHECKS[name].target, []).extend(
            (mid, needle) for mid, _, needle in mistakes if mid != "not implemented")
    return table


def classify(row: dict, catalogue: dict) -> tuple[str, str, str] | None:
    """(group key, label, hint) of a row that lost points; None for a pass or a row to grade by hand."""
    status, message = str(row.get("status")), str(row.get("message", ""))
    if status in (PASSED, PENDING) or status not in GROUPS and status not in ("fail", "error"):
        return None     # a pass, an answer to grade by hand, or a file not graded at all (counted once, apart)
    target, hint = _hint(message)
    calls = _CALLS.search(message)
    if calls and status in ("fail", "error"):      # the verdict may come from the TODO it calls: not its own mistake
        deps = calls.group(1)
        if AGAIN in message and FAILED_TOO in message:      # graded again with the course's: it failed there too
            return (f"calls:{deps}", f"failed beside a failing {deps} (which it calls), and with the course's",
                    f"it calls the student's {deps}, which fails its own check; graded again with the course's "
                    f"{deps} in its place, it failed too: a mistake of its own as well")
        return (f"calls:{deps}", f"failed beside a failing {deps} (which it calls)",   # a result of an older grader
                f"it calls the student's {deps}, which fails its own check, so this verdict may come from there: "
                "a right one scores 0 here (read its code; credit it in overrides.csv)")
    # the catalogued mistake whose needle the hint holds; when several do, the longest needle (the most specific:
    # "arcsin instead of arccos" over "swapped"); mistakes that share that needle give the same hint, and are
    # named together
    found = [(needle, mid) for mid, needle in catalogue.get(target, []) if needle.lower() in hint.lower()]
    if found:
        needle = max(found, key=lambda f: len(f[0]))[0]
        mids = list(dict.fromkeys(mid for n, mid in found if n.lower() == needle.lower()))
        return f"mistake:{needle.lower()}", " / ".join(mids), hint
    if status == "fail":
        return "fail:other", "another wrong answer (not in the catalogue)", "see the examples: no catalogued hint"
    if status == "error":
        raised = re.match(r"raised (\w+)", hint)
        if raised:
            return f"error:{raised.group(1)}", f"raised {raised.group(1)}", "the code raised an exception"
        return "error:other", "error", "its outputs could not be collected or judged"
    if status == "not_implemented" and message.startswith(NOT_ANSWERED):     # a written answer, not code
        return "not_answered", "not answered", f"the written answer is empty or still reads {ANSWER_STUB}"
    return status, *GROUPS[status]


# ------------------------------------------------------------------ the page
def _histogram(totals: list[float], maximum: float) -> str:
    """An inline SVG bar chart of the scores (one bar per point when the maximum is at most 20, else 10 bins).
    Per point, a fractional score (an override of 1.5, a TODO worth half a point) falls in the bar of the whole
    points below it, so those bars' titles name a range, "7 to <8" (under each bar, its first score)."""
    per_point = maximum <= 20 and maximum == int(maximum)
    whole = all(float(t).is_integer() for t in totals)
    bins, width = (int(maximum) + 1, 1.0) if per_point else (10, maximum / 10 or 1.0)
    counts = [0] * bins
    for t in totals:
        counts[max(0, min(bins - 1, int(t / width + 1e-9)))] += 1
    top, w, h, left, bottom = max(counts + [1]), 480, 180, 30, 30
    bar = (w - left) / bins
    parts = [f'<svg class="histogram" width="{w}" height="{h + bottom}" '
             f'role="img" aria-label="histogram of the scores">',
             f'<line x1="{left}" y1="{h}" x2="{w}" y2="{h}" stroke="#999"/>',
             f'<text x="0" y="12">{top}</text><text x="0" y="{h}">0</text>']
    for i, c in enumerate(counts):
        lo = i * width
        label = (f"{lo:g}" if per_point and (whole or i == bins - 1) else f"{lo:g} to <{lo + 1:g}" if per_point
                 else f"{lo:.3g}-{lo + width:.3g}")
        bh = (h - 10) * c / top
        x = left + i * bar
        parts.append(f'<rect x="{x + 2:.1f}" y="{h - bh:.1f}" width="{bar - 4:.1f}" height="{bh:.1f}" fill="#2a7">'
                     f'<title>{_e(label)} points: {c} student(s)</title></rect>')
        if bins <= 21:
            tick = f"{lo:g}" if per_point else label        # the bar's first score: short enough for 21 bars
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{h + 14}" text-anchor="middle">{_e(tick)}</text>')
    parts.append(f'<text x="{left + (w - left) / 2}" y="{h + 28}" text-anchor="middle">points (of {maximum:g})</text>')
    return "".join(parts) + "</svg>"


def _anonymise(text: str, student: str, label: str) -> str:
    """The message without the student's name (as a word, in any case: "ann" leaves "channels" alone), nor the
    verdict's leading mark (emoji fonts are not everywhere)."""
    text = re.sub(r"^[✅❌⏳]\s*", "", text)
    if not student:
        return text
    return re.sub(rf"(?<![^\W_]){re.escape(student)}(?![^\W_])", lambda _: label, text, flags=re.IGNORECASE)


def _worksheet(ws: str, results: list[dict], names: dict[str, str], catalogue: dict) -> list[str]:
    out = [f"<h2>Worksheet <code>{_e(ws)}</code>: {len(results)} students</h2>"]
    totals = [sum(_points(r["points"]) for r in res["rows"]) for res in results]
    maximum = max((sum(_points(r["max_points"]) for r in res["rows"]) for res in results), default=0.0)
    mean = sum(totals) / len(totals) if totals else 0.0
    out += ["<h3>Scores</h3>", _histogram(totals, maximum),
            f'<p class="muted">mean {mean:.3g} of {maximum:g} points (the automatic points, those typed into '
            "grades.csv for the answers graded by hand and those set in overrides.csv; an answer still to grade "
            "counts 0)</p>"]
    order: list[str] = []
    rows_by: dict[str, list[tuple[str, dict]]] = {}
    for res in results:
        for row in res["rows"]:
            gid = str(row.get("grade_id"))
            if gid not in rows_by:
                order.append(gid)
            rows_by.setdefault(gid, []).append((res["student"], row))
    out += ["<h3>Each TODO</h3>", "<table><tr><th>TODO</th><th>points</th><th>passed</th><th></th></tr>"]
    unread_by = {res["student"] for res in results if res.get("status") not in (None, "graded")}
    for gid in order:
        rows = rows_by[gid]
        manual = [r for _, r in rows if r.get("status") == PENDING]
        pending = sum(r.get("points") == "" for r in manual)      # a hand-graded row carries its typed points
        passed = sum(r.get("status") == PASSED for _, r in rows)
        rate = passed / len(rows) if rows else 0.0
        if manual:
            rate = sum(_points(r.get("points")) for r in manual) / max(
                sum(_points(r.get("max_points")) for r in manual), 1e-9)
        shown = (f"{pending} to grade by hand" if pending else
                 f"graded by hand: {rate:.0%} of the points" if manual else f"{passed} / {len(rows)} ({rate:.0%})")
        unread = sum(student in unread_by for student, _ in rows)
        if unread and not manual:   # counted as not passed, though "what went wrong" leaves them out (below)
            shown += f", of which {unread} file(s) not graded"
        lent: dict[str, int] = {}   # passes graded with the course's answer to a TODO it calls (grade_callees)
        for _, r in rows:
            if r.get("status") == PASSED and isinstance(r.get("course_answers"), list):
                callees = " and ".join(map(str, r["course_answers"]))
                lent[callees] = lent.get(callees, 0) + 1
        shown += "".join(f"; {n} with the course's {callees}" for callees, n in sorted(lent.items()))
        overridden = sum("override" in r for _, r in rows)
        if overridden:          # the pass rate and the mistakes below are the grader's verdicts
            shown += f"; {overridden} grade(s) set by the instructor"
        out.append(f"<tr><td><code>{_e(gid)}</code></td><td class='num'>{_points(rows[0][1].get('max_points')):g}"
                   f"</td><td class='num'>{_e(shown)}</td><td><span class='bar'><span style='width:{rate * 100:.0f}%'>"
                   "</span></span></td></tr>")
    out.append("</table>")
    out.append("<h3>What went wrong, by TODO</h3>")
    unread = sum(res.get("status") not in (None, "graded") for res in results)
    if unread:
        out.append(f"<p class='muted'>{unread} file(s) could not be graded at all (not a notebook, empty, another "
                   "worksheet...): they score 0 everywhere and are listed with the students who need attention, "
                   "not below.</p>")
    for gid in order:
        groups: dict[str, dict] = {}
        for student, row in rows_by[gid]:
            named = classify(row, catalogue)
            if named:
                g = groups.setdefault(named[0], {"label": named[1], "who": [],
                                                 "hint": _anonymise(named[2], student, names[student])})
                g["who"].append((student, str(row.get("message", ""))))
        if not groups:
            continue
        ranked = sorted(groups.values(), key=lambda g: (-len(g["who"]), g["label"]))
        out.append(f"<h4><code>{_e(gid)}</code></h4><ol>")
        for g in ranked:
            examples = "".join(f"<li class='ex'>{_e(who)}: {_e(said)}</li>" for who, said in _examples(g["who"], names))
            out.append(f"<li class='mistake'><b>{_e(g['label'])}</b>: {len(g['who'])} student(s). "
                       f"<span class='muted'>Hint: {_e(g['hint'])}</span><ul>{examples}</ul></li>")
        out.append("</ol>")
    return out + _cell_errors(results, names)


def _examples(who: list[tuple[str, str]], names: dict[str, str], most: int = 6) -> list[tuple[str, str]]:
    """A group's examples: one per distinct message (anonymised), the most frequent first, each with the students
    who got it ("student C, student D"); ``most`` of them, then a count of the others. A group of "another wrong
    answer" holds different mistakes: two examples of the same message hid a third student's new one."""
    by_text: dict[str, list[str]] = {}
    for student, message in sorted(who):
        by_text.setdefault(_anonymise(message, student, names[student]), []).append(names[student])
    ranked = sorted(by_text.items(), key=lambda kv: -len(kv[1]))          # ties: the first student's letter
    shown = [(", ".join(letters[:3]) + (f" and {len(letters) - 3} more" if len(letters) > 3 else ""), text)
             for text, letters in ranked[:most]]
    if len(ranked) > most:
        rest = sum(len(letters) for _, letters in ranked[most:])
        shown.append((f"{rest} more student(s)", f"{len(ranked) - most} other message(s)"))
    return shown


def _cell_errors(results: list[dict], names: dict[str, str]) -> list[str]:
    """The cells that raised outside the graded TODOs (``cell_errors`` of each result), grouped by cell and error.

    One error in most of the class (in the students' own cells, two of them at least) says more about the
    grader's setup (its data root, its packages) than about the students: said in bold. Not a
    NotImplementedError: a cell that calls an unfinished TODO raises it in a class that has not started.
    """
    groups: dict[tuple[str, str, str], dict] = {}
    for res in results:
        student = res["student"]
        for e in res.get("cell_errors") or []:
            if not isinstance(e, dict):
                continue
            cell = re.sub(r"^your cell", "a student's cell", str(e.get("cell")))
            key = (str(e.get("role")), _anonymise(cell, student, names[student]), str(e.get("ename")))
            g = groups.setdefault(key, {"who": set(), "example": ""})
            g["who"].add(student)
            g["example"] = g["example"] or _anonymise(str(e.get("evalue", "")), student, names[student])
    if not groups:
        return []
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]["who"]))   # ties: the first student's cell order
    out = ["<h3>Cells that raised outside the graded TODOs</h3>",
           "<p class='muted'>Not graded themselves, but the cells after them ran without what they define.</p>"]
    setup = [(k, g) for k, g in ranked      # most of the class: two students at least, unless not their own code
             if 2 * len(g["who"]) > len(results) and (len(g["who"]) >= 2 or k[0] != "student")
             and k[2] != "NotImplementedError"]
    if setup:
        out.append("<p><b>Check the grader's setup</b> (data root, packages, limits): "
                   + "; ".join(f"{_e(k[2])} in {_e(k[1])} for {len(g['who'])} of {len(results)} students"
                               for k, g in setup[:3]) + ".</p>")
    out.append("<table><tr><th>cell</th><th>error</th><th>students</th></tr>")
    out += [f"<tr><td class='ex'>{_e(k[1])}</td><td class='ex'>{_e(k[2])}: {_e(g['example'])}</td>"
            f"<td class='num'>{len(g['who'])}</td></tr>" for k, g in ranked[:10]]
    if len(ranked) > 10:
        out.append(f"<tr><td colspan='3' class='muted'>{len(ranked) - 10} more</td></tr>")
    out.append("</table>")
    return out


def waiting_alone(result) -> bool:
    """A result still to be graded again alone: course-grade writes ``beside_others`` only for a submission that
    ran out of time while another was graded beside it, without a CPU share of its own, and ``graded_alone``
    once it has graded it again alone (``grade.grade_class``); a run stopped in between leaves the first."""
    return isinstance(result, dict) and result.get("beside_others") is True and not result.get("graded_alone")


def attention(res: dict) -> list[str]:
    """Why a student's result needs the instructor's eyes (empty when it does not)."""
    why = []
    if res.get("status") not in (None, "graded"):       # "not a notebook: ...", not "not_a_notebook: not a ..."
        label, message = str(res.get("status")), str(res.get("message", ""))
        why.append(message if message.startswith(label.replace("_", " ")) else f"{label}: {message}")
    statuses = [str(r.get("status")) for r in res["rows"]]
    for status, what in ATTENTION.items():
        n = statuses.count(status)
        if n and res.get("status") in (None, "graded"):
            which = [f"{r.get('grade_id')}" + (f" ({m.group(1)})" if (m := re.search(
                r"raised (\w+)", str(r.get("message", "")))) else "") for r in res["rows"] if r.get("status") == status]
            why.append(f"{n} TODO(s) {what}: " + ", ".join(which[:4]) + (", ..." if len(which) > 4 else ""))
    if res.get("solution_markers"):
        why.append("the notebook holds the solutions' markers (" + ", ".join(map(str, res["solution_markers"]))
                   + "): a copy of the instructor's notebook?")
    own = [e for e in res.get("cell_errors") or [] if isinstance(e, dict) and e.get("role") == "student"
           and e.get("ename") == "CellTimeoutError"]
    if own:
        why.append(f"{len(own)} cell(s) of its own ran past the limit per cell (an infinite loop?), costing the "
                   "grader that time: " + ", ".join(re.sub(r"^your cell", "the cell", str(e.get("cell")))
                                                    for e in own[:3]))
    if waiting_alone(res):
        why.append("ran out of time while another submission was graded beside it, without a CPU share of its own, "
                   "and the run stopped before grading it again alone: run course-grade again")
    alone = res.get("graded_alone")
    if isinstance(alone, dict):
        first, now = alone.get("points_beside_others"), sum(_points(r.get("points")) for r in res["rows"]
                                                            if r.get("status") != PENDING)
        if isinstance(first, (int, float)) and first != now:
            why.append(f"graded again alone after running out of time beside another submission (no CPU share of "
                       f"its own): {first:g} -> {now:g} automatic points; a classmate's processes may have taken "
                       "the CPU from it")
    late = res.get("second_run_timeouts")
    if isinstance(late, list) and late and not waiting_alone(res):
        why.append("graded again with the course's answer to a failing TODO it calls, and that run ran out of "
                   "time (or did not start: the first run left too little of --timeout): "
                   f"{', '.join(map(str, late[:4]))}{', ...' if len(late) > 4 else ''} (a rerun with a larger "
                   "--timeout grades it again and may credit it)")
    changed = [str(f.get("what")) for f in res.get("monkeypatches") or [] if isinstance(f, dict)]
    if changed:
        why.append("its code changes what the grader relies on, or was too large to read: "
                   + ", ".join(dict.fromkeys(changed)))
    graded = [s for s in statuses if s != PENDING]
    if graded and all(s == "not_implemented" for s in graded):
        why.append("untouched: no TODO attempted")
    return why


def written_answer(row: dict) -> bool:
    """A written answer's row, by what grade.py writes in it: to be graded by hand, not answered, or its cell
    deleted (the last two get 0 at once). ``gradescope.to_results`` reads it for bundles without ``written``."""
    message = str(row.get("message", ""))
    return row.get("status") == PENDING or (row.get("status") == "not_implemented" and message.startswith(
        NOT_ANSWERED)) or (row.get("status") == "missing" and message.startswith(ANSWER_CELL_MISSING))


def _lowest(results: list[dict]) -> list[str]:
    """The students with under half of a worksheet's automatic points, named, with the TODOs they lost: whom to
    help (wrong answers are no trouble for the grader, so "need attention" does not list them; files that could
    not be graded are listed there, not here). Written answers aside, answered or not: a blank summary counted
    its 3 points, so the lab's students read "2 / 10" or "2 / 7" by their summary (an instructor's pass)."""
    rows = []
    for r in results:
        auto = [row for row in r["rows"] if not written_answer(row)]
        got, best = sum(_points(x.get("points")) for x in auto), sum(_points(x.get("max_points")) for x in auto)
        lost = [str(x.get("grade_id")) for x in auto if x.get("status") != PASSED]
        if r.get("status") in (None, "graded") and best and got < best / 2 and lost:
            rows.append((got, best, r, lost))
    if not rows:
        return []
    rows.sort(key=lambda g: (str(g[2].get("worksheet")), g[0], g[2]["student"]))
    out = ["<h2>Lowest scores</h2>", "<p class='muted'>Under half of a worksheet's automatic points (the written "
           "answers aside): whom to help first. Each TODO's verdict is in the student's feedback.</p>",
           "<table><tr><th>student</th><th>worksheet</th><th>points</th><th>TODOs not passed</th></tr>"]
    for got, best, r, lost in rows:
        out.append(f"<tr><td>{_e(r['student'])}</td><td><code>{_e(r.get('worksheet'))}</code></td>"
                   f"<td class='num'>{got:g} / {best:g}</td><td>{_e(', '.join(lost))}</td></tr>")
    return out + ["</table>"]


def render(results: list[dict]) -> str:
    """The page for results (validated dicts of course-grade, any worksheets), as a string."""
    catalogue = _catalogue()
    students = sorted({r["student"] for r in results})
    names = {s: f"student {letter(i)}" for i, s in enumerate(students)}
    by_ws: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: (str(r.get("worksheet")), r["student"])):
        by_ws.setdefault(str(r.get("worksheet")), []).append(r)
    body = [f"<h1>What the class got wrong</h1><p>{len(students)} students, {len(by_ws)} worksheet(s). Examples are "
            "anonymised (student A, B, ...); the last two sections name the students who need attention and those with "
            "the lowest scores.</p>"]
    for ws, rs in by_ws.items():
        body += _worksheet(ws, rs, names, catalogue)
    body.append("<h2>Students who need attention</h2>")
    flagged = [(r, attention(r)) for r in sorted(results, key=lambda r: (r["student"], str(r.get("worksheet"))))]
    flagged = [(r, why) for r, why in flagged if why]
    if flagged:
        body.append("<table><tr><th>student</th><th>worksheet</th><th>why</th></tr>")
        body += [f"<tr><td>{_e(r['student'])}</td><td><code>{_e(r.get('worksheet'))}</code></td>"
                 f"<td>{'<br>'.join(_e(w) for w in why)}</td></tr>" for r, why in flagged]
        body.append("</table>")
    else:
        body.append("<p>None: every submission ran, and none is untouched.</p>")
    body += _lowest(results)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\"><title>What the class got wrong</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write(out: Path, results: list[dict]) -> Path:
    """DIR/report.html from the results (written atomically, like grades.csv)."""
    from .grade_feedback import write_atomic
    path = Path(out) / "report.html"
    write_atomic(path, render(results))
    return path
