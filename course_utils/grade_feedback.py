"""What the grader writes for people, and the text it lets through: ``grades.csv`` and one markdown feedback file
per student, rebuilt from every result in DIR/results (``write_reports``; ``report.html`` is ``grade_report``'s).

Everything a submission controls (names, messages, written answers) passes through here on its way to a person:
``plain`` makes it one line of visible text (valid Unicode, no line break, control or invisible format character),
``md`` also escapes HTML and markdown (no link, image, emphasis or code of the student's in a feedback file),
``quoted`` shows a written answer exactly as typed, in a code block; ``safe_name`` makes a student's name a file
name; ``write_atomic`` writes every output file (a temporary file, then ``os.replace``).

The instructor's own word comes from two files of DIR: points typed into grades.csv for the answers graded by hand
(``typed_points``), and DIR/overrides.csv (``read_overrides``), the grade the instructor sets for any TODO, an
automatically graded one included (an appeal, a check judged too strict), which every later run applies.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import os
import re
import sys
import unicodedata
from pathlib import Path

from . import grade_report
from .grade_files import INVISIBLE, plain, valid_text, visible  # noqa: F401 (grade_feedback.X)

MAX_NAME_BYTES = 64                  # a student's name, in bytes of UTF-8 (file names allow 255)
CSV_FIELDS = ["student", "worksheet", "grade_id", "points", "max_points", "status", "message"]
OVERRIDE_FIELDS = ["student", "worksheet", "grade_id", "points", "reason"]
OVERRIDDEN = "by the instructor in overrides.csv"     # in grades.csv's message of a row overrides.csv set
HAND_GRADED = "graded by hand: the points typed in grades.csv"   # the message of a written answer with points
NOT_A_NUMBER = "the points typed in grades.csv are not a number (write 2.5, not 2,5): counted nowhere"


def safe_name(name: str) -> str:
    """A file-safe student name: word characters, dot and dash, at most MAX_NAME_BYTES bytes of UTF-8; none at
    either end but word characters (a leading '-' makes a spreadsheet read ``-A1-B1`` in grades.csv as a formula,
    and a command line read a file name as an option)."""
    name = re.sub(r"[^\w.-]", "_", unicodedata.normalize("NFC", valid_text(name))).strip("._-") or "student"
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = name.encode()[:MAX_NAME_BYTES - 9].decode("utf-8", "ignore") + "-" + digest
    return name


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
    tmp.write_text(valid_text(text), encoding="utf-8")
    os.replace(tmp, path)


# what makes markdown of text: links and images ([ ]), emphasis (* ~, and _ at a word's edge), code, escapes
MARKDOWN = re.compile(r"[\\`*\[\]~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


# what GitHub-flavoured renderers turn into links without any markup (extended autolinks): a scheme's "://",
# "www.", an e-mail address; written "[:]//", "www[.]", "[at]" (defanged), which no renderer links
AUTOLINKS = [(re.compile(r"://"), "[:]//"), (re.compile(r"(?i)www\."), lambda m: m.group(0)[:3] + "[.]"),
             (re.compile(r"(?<=[\w.+-])@(?=[\w-]+\.\w)"), "[at]")]


def md(text) -> str:
    """Text from a notebook, safe in a line of markdown: one line (no fake line can start), HTML escaped, and
    the characters of links, images, emphasis and code escaped (a student's message renders as the text it is:
    no remote image fetched on preview, no link, no bold "passed"); bare addresses defanged (``AUTOLINKS``)."""
    text = plain(text)
    for pattern, repl in AUTOLINKS:
        text = pattern.sub(repl, text)
    return MARKDOWN.sub(lambda m: "\\" + m.group(0), html.escape(text, quote=False))


def quoted(text: str) -> list[str]:
    """A written answer as a fenced code block: shown exactly as typed, nothing in it rendered."""
    lines = [visible(line).rstrip() for line in str(text).splitlines()]
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", "\n".join(lines))), default=0))
    return [fence + "text", *lines, fence]


# DIR/written-answers.json: {"student<TAB>worksheet<TAB>grade_id": sha256 of the written answer's text as grades.csv
# last showed it}. A submission graded again (a resubmission, --force, a new SOURCE) keeps the points typed for an
# answer whose text did not change.
ANSWERS_FILE = "written-answers.json"


def _answer_digests(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / ANSWERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(
        data, dict) else {}


def typed_points(out: Path) -> tuple[dict[tuple[str, str, str], str], float, dict[tuple[str, str, str], str]]:
    """The points an instructor typed into DIR/grades.csv for answers graded by hand (status ``manual``), keyed by
    (student, worksheet, grade_id), the file's modification time (0 when there is none), and the points of every
    other TODO row as the file holds them (to tell an instructor who typed over an automatic grade that a run
    rewrites it). Points that overrides.csv set are neither (removed from that file, they are gone)."""
    path = out / "grades.csv"
    try:
        mtime = path.stat().st_mtime
        with open(path, newline="", encoding="utf-8-sig") as f:     # -sig: a spreadsheet may add a BOM
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}, 0.0, {}
    key = lambda r: (r.get("student"), r.get("worksheet"), r.get("grade_id"))  # noqa: E731
    return ({key(r): (r.get("points") or "").strip() for r in rows if r.get("status") == "manual"
             and (r.get("points") or "").strip() and not _overridden(r)}, mtime,
            {key(r): (r.get("points") or "").strip() for r in rows
             if r.get("status") != "manual" and r.get("grade_id") != "TOTAL"
             and not _overridden(r)})


def read_overrides(out: Path) -> tuple[dict[tuple[str, str, str], dict[str, str]], list[str]]:
    """DIR/overrides.csv, written by the instructor (columns OVERRIDE_FIELDS; ``reason`` may be empty; separated by
    commas, or by semicolons as a spreadsheet in a decimal-comma locale saves it): {(student, worksheet, grade_id):
    {"points": as typed, "reason": ..., "line": its line}}, and what is wrong with the file, as sentences that
    name the line. A line with more fields than the header (an unquoted comma: ``1,5``, a reason "right idea, off
    by one") is not applied; a line given twice keeps its last. No file: nothing."""
    path = out / "overrides.csv"
    if not path.exists():
        return {}, []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:     # -sig: a spreadsheet may add a BOM
            text = f.read()
        first = text.split("\n", 1)[0]
        delimiter = ";" if first.count(";") > first.count(",") else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        rows, header = list(reader), reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return {}, [f"cannot read {path} ({type(err).__name__}: {err}): none of its grades applied; save it as "
                    "'CSV UTF-8'"]
    absent = [c for c in OVERRIDE_FIELDS[:4] if c not in [h.strip() for h in header]]
    if absent:
        return {}, [f"{path} has no column {', '.join(absent)}: none of its grades applied (its first line must be "
                    f"{','.join(OVERRIDE_FIELDS)})"]
    found, problems = {}, []
    for n, row in enumerate(rows, start=2):
        row = {(k or "").strip() if k is not None else None: v for k, v in row.items()}
        key = tuple((row.get(c) or "").strip() for c in OVERRIDE_FIELDS[:3])
        if not any(key) and not (row.get("points") or "").strip():
            continue                                                # an empty line
        if row.get(None):
            problems.append(f"line {n} has {len(header) + len(row[None])} fields, the header {len(header)}: not "
                            f"applied (write 1.5, not 1,5, and put a reason holding a {delimiter!r} in double "
                            "quotes; a spreadsheet saving 'CSV UTF-8' does both)")
            continue
        if key in found:
            problems.append(f"line {n} sets {key[0]} {key[1]} {key[2]} again: the last line counts")
        found[key] = {"points": (row.get("points") or "").strip(), "reason": (row.get("reason") or "").strip(),
                      "line": str(n)}
    return found, problems


def override_points(setting: dict[str, str], max_points: float) -> float | None:
    """The points a line of overrides.csv sets, or None when course-grade does not apply it (not a number from 0
    to the TODO's ``max_points``): what ``_override`` applies and export-lms expects in grades.csv."""
    value = _typed_number(setting["points"])
    return None if value is None or value > max_points + 1e-9 else value


def _override(row: dict, setting: dict[str, str]) -> tuple[dict | None, str]:
    """``row`` with the instructor's points of overrides.csv in place (``override``: the reason; ``grader_points``:
    what the grader gave), the grader's verdict kept (``status``, ``message``; ``verdict``: the two as one text),
    and the message grades.csv shows, which says so; (None, why) when the points are not a number from 0 to the
    TODO's maximum."""
    value = override_points(setting, row["max_points"])
    if value is None:
        return None, f"{setting['points']!r} is not a number from 0 to {row['max_points']:g}"
    value = int(value) if value.is_integer() else value      # grades.csv's "1", as the grader's own points
    why = f" ({setting['reason']})" if setting["reason"] else ""
    verdict = f"{row['status']}: {plain(row['message'])}" if row["message"] else row["status"]
    return ({**row, "points": value, "override": setting["reason"], "verdict": verdict,
             "grader_points": row["points"]}, f"set to {value:g} {OVERRIDDEN}{why}; the grader: {verdict}")


def _unknown(key: tuple[str, str, str], results: list[dict]) -> str:
    """Why overrides.csv's (student, worksheet, grade_id) names no graded TODO, with the nearest names that exist
    (another case of the student's name, the TODO's grade_id for the name the feedback shows)."""
    student, worksheet, gid = key
    students = {r["student"] for r in results}
    if student not in students:
        near = sorted(s for s in students if s.lower() == student.lower())
        return f"{student} {worksheet} {gid}: no student {student!r} in the results" + (
            f" (names are matched as written: {', '.join(near)}?)" if near else "")
    todos = {str(row["grade_id"]) for r in results if r["student"] == student and str(r.get("worksheet")) == worksheet
             for row in r["rows"]}
    if not todos:
        return f"{student} {worksheet} {gid}: {student} has no results of worksheet {worksheet!r}"
    near = sorted(t for t in todos if t.endswith(gid) or gid.lower() == t.lower())
    return (f"{student} {worksheet} {gid}: no TODO {gid!r} in that worksheet (its grade_ids: "
            f"{', '.join(near or sorted(todos))})")


def _overridden(row: dict) -> bool:
    """Whether a row of grades.csv holds points overrides.csv set (its message begins as _override writes it)."""
    return re.match(r"set to [0-9.e+-]+ " + re.escape(OVERRIDDEN), row.get("message") or "") is not None


def write_reports(out: Path) -> tuple[int, int]:
    """DIR/grades.csv and DIR/feedback/<student>.md from every result in DIR/results.

    Points typed into the old grades.csv for answers graded by hand are kept, unless that submission was graded
    again since the file was written (its result is newer) and that answer's text changed (``ANSWERS_FILE`` keeps
    a digest of each answer as grades.csv showed it): then they are dropped, and said so on stderr. The
    grades of DIR/overrides.csv replace the grader's (and the typed ones) at every run; what is wrong in that
    file (no such TODO, points out of range) is named on stderr and not applied.
    """
    typed, typed_at, automatic = typed_points(out)
    shown_answers = _answer_digests(out)          # the answers as the last grades.csv showed them
    digests = {}
    overrides, override_problems = read_overrides(out)
    applied, n_overridden = set(), 0
    results, newer = [], set()
    for f in sorted((out / "results").glob("*/*.json")):
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
            if not (isinstance(r, dict) and isinstance(r.get("student"), str) and isinstance(r.get("rows"), list)
                    and all(isinstance(row, dict) and {"grade_id", "points", "max_points", "status", "message"}
                            <= set(row) for row in r["rows"])):
                raise ValueError("not a result of course-grade")
            results.append(r)
            if f.stat().st_mtime > typed_at:        # graded again since grades.csv was saved
                newer.add((r["student"], str(r.get("worksheet"))))
        except (OSError, ValueError) as err:
            print(f"course-grade: skipped {f}: {err}", file=sys.stderr)
    results.sort(key=lambda r: (r["student"], str(r.get("worksheet", ""))))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    by_student: dict[str, list[dict]] = {}
    dropped, not_numbers, overwritten = [], [], []
    shown = []          # the results with the points typed by hand in place: what the feedback and report show
    for r in results:
        pending, rows = 0, []
        for row in r["rows"]:
            points = row["points"]
            key = (r["student"], str(r["worksheet"]), str(row["grade_id"]))
            answer = (r.get("answers") or {}).get(row["grade_id"]) if isinstance(r.get("answers"), dict) else None
            if row["status"] == "manual" and isinstance(answer, str):
                digests["\t".join(key)] = hashlib.sha256(answer.encode("utf-8", "replace")).hexdigest()
            if row["status"] == "manual" and points == "" and key in typed:
                now = digests.get("\t".join(key))
                if key[:2] in newer and (now is None or shown_answers.get("\t".join(key)) != now):
                    dropped.append(f"{key[0]} ({key[1]}: {key[2]}, {typed[key]} points)")
                else:           # not graded again, or graded again (a new SOURCE, --force) with the same answer
                    points = typed[key]
            # a written answer with points typed for it is graded: grades.csv no longer says "to be graded"
            csv_message = HAND_GRADED if row["status"] == "manual" and points != "" else row["message"]
            if key in overrides:
                setting = overrides[key]
                changed, why = _override(row, setting)
                if changed is None:
                    override_problems.append(f"line {setting['line']}: {key[0]} {key[1]} {key[2]}: {why}, not "
                                             "applied")
                else:
                    row, points, csv_message = changed, changed["points"], why
                    n_overridden += 1
                    given = row["grader_points"]
                    if isinstance(given, (int, float)) and given > points:
                        override_problems.append(
                            f"line {setting['line']}: {key[0]} {key[1]} {key[2]} now scores {given:g} by the grader "
                            f"({row['status']}), more than the {points:g} set there (a resubmission?): delete the "
                            "line if it no longer applies")
                applied.add(key)
            was = automatic.get(key)
            if row["status"] != "manual" and "override" not in row and was is not None and key[:2] not in newer and (
                    _typed_number(was) is None or abs(_typed_number(was) - float(points or 0)) > 1e-9):
                overwritten.append(f"{key[0]} ({key[1]}: {key[2]}, {was!r} -> {points})")
            number = (_typed_number(points) if row["status"] == "manual" and points != "" and "override" not in row
                      else points)
            if number is None:      # kept in grades.csv as typed (export-lms refuses it), counted nowhere
                not_numbers.append(f"{key[0]} ({key[1]}: {key[2]}, {points!r})")
                csv_message = NOT_A_NUMBER      # (it said "graded by hand", beside a TOTAL that waits for it)
            rows.append({**row, "points": "" if number is None else number})
            pending += row["max_points"] if number in ("", None) else 0
            writer.writerow({"student": r["student"], "worksheet": r["worksheet"],
                             **{k: row[k] for k in CSV_FIELDS[2:]}, "points": points,
                             "message": plain(csv_message)})
        r = {**r, "rows": rows}
        shown.append(r)
        by_student.setdefault(r["student"], []).append(r)
        scored = sum(row["points"] for row in rows if isinstance(row["points"], (int, float)))
        total = sum(row["max_points"] for row in rows)
        message = r.get("message") or (f"{pending:g} points to grade by hand" if pending else "")
        writer.writerow({"student": r["student"], "worksheet": r["worksheet"], "grade_id": "TOTAL",
                         "points": f"{scored:.15g}", "max_points": total, "status": r.get("status", "graded"),
                         "message": plain(message)})
    override_problems += [f"line {setting['line']}: {_unknown(key, results)}, not applied"
                          for key, setting in overrides.items() if key not in applied]
    if (out / "overrides.csv").exists():       # by line number, as the docs say (found in the order of results)
        override_problems.sort(key=lambda p: int(m.group(1)) if (m := re.match(r"line (\d+)", p)) else 0)
        print(f"course-grade: {n_overridden} grade(s) set by {out / 'overrides.csv'}"
              + "".join(f"\n  {p}" for p in override_problems), file=sys.stderr)
    if dropped:
        print("course-grade: points typed into grades.csv were dropped for answers that changed since (a "
              "resubmission): " + "; ".join(dropped) + ". Grade these answers by hand again.", file=sys.stderr)
    if overwritten:
        print("course-grade: points typed into grades.csv over automatic grades were replaced by the grader's (only "
              "the rows to grade by hand keep what is typed; to set an automatic grade yourself, write it into "
              f"{out / 'overrides.csv'}, docs/grading.md): " + "; ".join(overwritten[:20])
              + ("; ..." if len(overwritten) > 20 else ""), file=sys.stderr)
    if not_numbers:
        print("course-grade: points typed into grades.csv that are not numbers (write 2.5, not 2,5) are kept as "
              "typed but counted nowhere: " + "; ".join(not_numbers), file=sys.stderr)
    write_atomic(out / "grades.csv", buf.getvalue())
    write_atomic(out / ANSWERS_FILE, json.dumps(digests, indent=0, sort_keys=True) + "\n")
    for student, rs in by_student.items():
        write_atomic(out / "feedback" / f"{safe_name(student)}.md", feedback_markdown(student, rs))
    grade_report.write(out, shown)     # DIR/report.html: what the class got wrong
    return len(results), len(by_student)


def _typed_number(text) -> float | None:
    """Points typed by hand as a number (a finite one, not below 0), else None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _only_correct(row: dict) -> bool:
    """A passed TODO whose message is the check's bare verdict, "✅ name: correct", and nothing more."""
    return row["status"] == "pass" and re.fullmatch(r"(?:\S+ )?[\w.]+: correct", str(row["message"])) is not None


def _handed_in(file: str) -> str:
    """What the student handed in, by its name alone (not the instructor's folders): "File: 01_schedules.ipynb",
    or "Folder: frank/" for a folder in which no notebook was graded (the feedback said "File: frank")."""
    try:
        folder = bool(file) and Path(file).is_dir()
    except (OSError, ValueError):
        folder = False
    return f"Folder: {md(Path(file).name)}/" if folder else f"File: {md(Path(file).name)}"


def feedback_markdown(student: str, results: list[dict]) -> str:
    lines = [f"# Feedback for {md(student)}", ""]
    for r in results:
        auto = sum(row["points"] for row in r["rows"] if isinstance(row["points"], (int, float)))
        total = sum(row["max_points"] for row in r["rows"])
        lines += [f"## Worksheet `{plain(r['worksheet'])}`: {auto:g} / {total:g} points", "",
                  _handed_in(str(r.get("file", ""))), ""]
        if r.get("message"):
            lines += [f"**{md(r['message'])}**", ""]
        for row in r["rows"]:
            by_hand = row["status"] == "manual" and row["points"] != ""
            mark = ("graded by hand" if by_hand else
                    {"pass": "passed", "manual": "to be graded by hand"}.get(row["status"], "not passed"))
            pts = "?" if row["points"] == "" else f"{row['points']:g}"
            # a pass says only "passed": its verdict "X: correct" would repeat it (an instructor's reading); an
            # answer still to grade says so once ("to be graded by hand. to be graded by the instructor")
            text = "" if by_hand or _only_correct(row) or row["status"] == "manual" else f" {md(row['message'])}"
            if r.get("message") and row["message"] == r["message"]:    # the file's own message, said once above
                mark, text = "not graded (see above)", ""
            if "override" in row:       # what the grader found, and that the instructor decided
                mark = "set by the instructor" + (f" ({md(row['override'])})" if row["override"] else "")
                text = f" The grader: {md(row['verdict'])}"
            lines.append(f"- **{md(row['grade_id'])}** ({pts} / {row['max_points']:g}): {mark}.{text}")
        for gid, text in (r.get("answers") or {}).items():
            lines += ["", f"### Written answer `{plain(gid)}` (for the instructor)", ""]
            lines += quoted(text)
        if r.get("notes"):
            lines += ["", *[f"_Note: {md(n)}_" for n in r["notes"]]]
        lines.append("")
    return "\n".join(lines)
