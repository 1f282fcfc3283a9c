"""Grades for a learning platform: DIR/grades.csv as the CSV that Canvas or Moodle imports.

    course-grade export-lms DIR --format canvas|moodle --out FILE [--roster ROSTER.csv] [--total-only]
                            [--canvas-id WORKSHEET=ASSIGNMENT_ID]

One row per student, one column per TODO (``<worksheet>: <grade_id>``) and one per worksheet (its total),
read from DIR/grades.csv, so points the instructor typed into grades.csv for the answers graded by hand count,
and those set in DIR/overrides.csv, which grades.csv carries (an overrides.csv that grades.csv does not show, as
when it changed after the last run, stops the export until course-grade has run again):
a worksheet's total is the sum of its TODOs' points (an empty cell, still to grade, counts 0 there and stays
empty in its own column).

- **canvas** (Gradebook > Import): the columns of Canvas's own gradebook export, ``Student, ID, SIS User ID,
  SIS Login ID, Section``, then one column per assignment; the second row, ``Points Possible``, holds each
  column's maximum as in Canvas's export. Canvas matches a row to a student by ID, SIS User ID or SIS Login ID,
  and an assignment column by the ``(id)`` at the end of its name (``01_schedules (1234)``, from
  ``--canvas-id 01_schedules=1234``); a column it does not know becomes a new assignment, so ``--total-only``
  keeps just the totals.
- **moodle** (Grades > Import > CSV file): an identifier column (``username``, or ``email`` and ``idnumber``
  from the roster), then the grade columns; on the import page "Identify user by" maps the identifier column
  (Map from) to the user field (Map to: username, email address, idnumber), and each grade column to a grade
  item or a new one.

Without ``--roster`` the student's name in course-grade (the folder's name) is the identifier: Canvas's SIS Login
ID, Moodle's username. ``--roster`` is a CSV that says who is who: a column ``student`` (the name in
course-grade) and any of the platform's identifier columns; Canvas's own gradebook export works as it is (a
student is found by SIS Login ID, SIS User ID, ID, or the part of an email address before the @, the first of
these that names one row; two rows named by one column, or one row named by two students, stop the export).
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

CANVAS_IDS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_IDS = {"username": ("username",), "email": ("email", "email address"), "idnumber": ("idnumber", "id number")}


class ExportError(Exception):
    """No grades.csv, a roster without usable columns: exit code 2."""


# a result's status that is no verdict on the student's answers: the file could not be graded at all
NOT_GRADED = {"ambiguous", "not_a_notebook", "empty", "wrong_worksheet", "too_large", "unreadable", "grader_error"}


def read_grades(out: Path) -> tuple[dict[str, dict[str, dict[str, str]]], dict[str, dict[str, str]], dict,
                                    list[str]]:
    """({student: {worksheet: {grade_id: points}}}, {worksheet: {grade_id: max_points}}, {(student, worksheet):
    status} of the submissions that could not be graded, the warnings of ``unfinished``), TOTAL rows left out,
    worksheets and TODOs in the order of grades.csv. Points that are not a number between 0 and the TODO's
    maximum (typed by hand: "2,5", "7" of 3) stop the export, each named."""
    path = Path(out) / "grades.csv"
    overrides = Path(out) / "overrides.csv"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise ExportError(f"cannot read {path}: {err.strerror or err} (run course-grade first)") from None
    except UnicodeDecodeError:
        raise ExportError(f"cannot read {path}: it is not UTF-8 text (save it as 'CSV UTF-8')") from None
    grades: dict[str, dict[str, dict[str, str]]] = {}
    maxima: dict[str, dict[str, str]] = {}
    not_graded: dict[tuple[str, str], str] = {}
    bad = []
    for row in rows:
        if row.get("grade_id") in (None, "TOTAL"):
            continue
        ws, gid, student = row["worksheet"], row["grade_id"], row["student"]
        top = _points(row["max_points"], None)
        if top is None or top == "":
            bad.append(f"{student} {ws} {gid}: max_points {row['max_points']!r} is not a number")
            continue
        points = _points(row["points"], top)
        if points is None:
            bad.append(f"{student} {ws} {gid}: {row['points']!r} is not a number from 0 to {_fmt(top)}")
        maxima.setdefault(ws, {})[gid] = row["max_points"]
        grades.setdefault(student, {}).setdefault(ws, {})[gid] = row["points"]
        if row.get("status") in NOT_GRADED:
            not_graded[(student, ws)] = row["status"]
    stale = _stale_overrides(out, rows)
    if stale:
        more = "; ..." if len(stale) > 3 else ""
        raise ExportError(f"{overrides} and {path} disagree ({'; '.join(stale[:3])}{more}):"
                          " overrides.csv changed since course-grade last wrote grades.csv. Run course-grade once "
                          "more (the same command; it grades nothing new and rebuilds grades.csv with the overrides), "
                          "then export")
    if bad:
        raise ExportError(f"{len(bad)} cell(s) of {path} are not points: " + "; ".join(bad[:10])
                          + ("; ..." if len(bad) > 10 else "") + " (write points as 2.5, at most the TODO's "
                          "max_points, or leave the cell empty: still to grade)")
    return grades, maxima, not_graded, unfinished([r for r in rows if r.get("grade_id") not in (None, "TOTAL")])


def unfinished(rows: list[dict[str, str]]) -> list[str]:
    """Warnings on grades.csv's rows (TOTAL rows left out) that a published total should not hide (an
    instructor's pass of 2026-12-08 exported both without a word): answers still to grade by hand (0 in the
    totals), and grades set in overrides.csv below a pass the grader now gives (an old override, then a
    resubmission)."""
    from .grade_feedback import _overridden, _typed_number
    pending = [f"{r['student']} ({r['worksheet']}: {r['grade_id']})" for r in rows
               if r.get("status") == "manual" and not (r.get("points") or "").strip()]
    lowered = [f"{r['student']} ({r['worksheet']}: {r['grade_id']}, {r['points']} of {r['max_points']})"
               for r in rows if _overridden(r) and r.get("status") == "pass"
               and (_typed_number(r.get("points")) or 0) < (_typed_number(r.get("max_points")) or 0)]
    said = []
    if pending:
        said.append(f"{len(pending)} answer(s) still to grade by hand, exported empty and counted 0 in the totals: "
                    + "; ".join(pending[:10]) + ("; ..." if len(pending) > 10 else "")
                    + " (type their points into grades.csv, then export again)")
    if lowered:
        said.append(f"{len(lowered)} grade(s) set in overrides.csv below the full points of a TODO the grader now "
                    "passes (an override older than a resubmission?): " + "; ".join(lowered[:10])
                    + ("; ..." if len(lowered) > 10 else "") + " (delete those lines if they no longer apply, run "
                    "course-grade again, then export)")
    return said


def _stale_overrides(out: Path, rows: list[dict]) -> list[str]:
    """Where grades.csv does not hold what overrides.csv sets now: an override it does not show (added or changed
    since), or a row it shows as set by the instructor that overrides.csv no longer sets. Judged by content, not
    by the files' times (a copy of an older overrides.csv put back kept its older time, and was exported as the
    other). Lines course-grade does not apply (a TODO that does not exist, points that are not points) are its
    own warnings, not this."""
    from .grade_feedback import _overridden, _typed_number, override_points, read_overrides

    overrides, _ = read_overrides(Path(out))
    shown = {(r.get("student"), r.get("worksheet"), r.get("grade_id")): r for r in rows
             if r.get("grade_id") not in (None, "TOTAL")}
    stale = []
    for key, setting in overrides.items():
        row = shown.get(key)
        value = None if row is None else override_points(setting, _typed_number(row.get("max_points")) or 0)
        if value is None:       # a line course-grade does not apply: its own warning names it
            continue
        if not _overridden(row) or _typed_number(row.get("points")) != value:
            stale.append(f"line {setting['line']} sets {' '.join(key)} to {setting['points']}, grades.csv has "
                         f"{row.get('points') or 'nothing'}{'' if _overridden(row) else ' from the grader'}")
    stale += [f"grades.csv shows {' '.join(key)} set by the instructor, overrides.csv no longer sets it"
              for key, row in shown.items() if _overridden(row) and key not in overrides]
    return stale


def _points(text: str | None, top: float | None) -> float | str | None:
    """A cell's points: a finite number from 0 to ``top`` (any size when None), "" for an empty cell, else None."""
    text = (text or "").strip()
    if text == "":
        return ""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value and (top is None or value <= top + 1e-9) else None


def _number(text: str) -> float:
    """Points read_grades has validated: a number, or 0 for an empty cell (still to grade)."""
    return float(text) if (text or "").strip() else 0.0


def _fmt(value: float) -> str:
    """Points as a spreadsheet reads them: every digit an instructor's weights give (15 significant, the most a
    double keeps exactly), without a sum's binary round-off (0.1 + 0.2 is 0.3), without an exponent below 1e15."""
    return f"{value:.15g}"


def read_roster(path: str | Path | None) -> list[dict[str, str]]:
    """The roster's rows; one without rows, or without any column that names a student (``KEYS``), stops the
    export (every student would be "not in the roster")."""
    if path is None:
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
            header = [(k or "").strip() for k in reader.fieldnames or []]
    except OSError as err:
        raise ExportError(f"cannot read the roster {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ExportError(f"cannot read the roster {path}: it is not UTF-8 text (Excel: save it as 'CSV UTF-8')"
                          ) from None
    known = {k.casefold() for keys in KEYS for k in keys}
    if not any(h.casefold() in known for h in header):
        raise ExportError(f"the roster {path} has none of the columns that name a student ("
                          + ", ".join(k for keys in KEYS for k in keys) + f"); its columns: {', '.join(header)[:300]}")
    if not rows:
        raise ExportError(f"the roster {path} has no students")
    return rows


# a roster's columns that may name a student, most specific first: the first that names exactly one row decides
# (a student's login "1002" is not a classmate's Canvas ID 1002)
KEYS = [("student",), ("SIS Login ID", "username"), ("SIS User ID", "idnumber", "ID number"), ("ID",),
        ("email", "Email address", "Email")]


CANVAS_NAME = "canvas student"       # Canvas's "Student" (the display name), where a column "student" is there too


def folded(row: dict[str, str]) -> dict[str, str]:
    """A roster row with its column names in lower case (a header "Username" is "username"). Canvas's gradebook
    export has a column "Student", the display name ("Builder, Bob"); where the instructor added the column
    "student" (course-grade's name) beside it, "student" is that one and Canvas's is ``CANVAS_NAME`` (both folded
    to "student" once, and the later column blanked Canvas's names in the export)."""
    both = "student" in row and any(k != "student" and k.casefold() == "student" for k in row)
    return {(CANVAS_NAME if both and k != "student" and k.casefold() == "student" else k.casefold()): v
            for k, v in row.items()}


def find(roster: list[dict[str, str]], student: str) -> dict[str, str]:
    """The roster's row of ``student``: by the column ``student``, else a login, an SIS id or idnumber, Canvas's
    ID, or an email's user part, in that order (``KEYS``); two rows that match by the same column are an error."""
    low = student.casefold()
    rows_folded = [folded(row) for row in roster]
    for keys in KEYS:
        def value(row: dict[str, str], k: str) -> str:
            return row.get(k.casefold(), "").split("@")[0] if keys[0] == "email" else row.get(k.casefold(), "")
        rows = [row for row, f in zip(roster, rows_folded) if any(value(f, k).casefold() == low for k in keys)]
        if len(rows) > 1:
            raise ExportError(f"{student}: {len(rows)} rows of the roster match it by {keys[0]!r}; add a column "
                              "'student' with course-grade's name of each student")
        if rows:
            return rows[0]
    return {}


def columns(maxima: dict[str, dict[str, str]], *, total_only: bool, canvas_ids: dict[str, str] | None = None
            ) -> list[tuple[str, str, str | None]]:
    """[(column name, worksheet, grade_id or None for the total)] in grades.csv's order."""
    cols = []
    for ws, todos in maxima.items():
        if not total_only:
            cols += [(f"{ws}: {gid}", ws, gid) for gid in todos]
        name = f"{ws} ({canvas_ids[ws]})" if canvas_ids and ws in canvas_ids else ws
        cols.append((name, ws, None))
    return cols


def _cell(grades: dict[str, dict[str, str]], maxima: dict, ws: str, gid: str | None) -> str:
    if ws not in grades:
        return ""
    if gid is not None:
        value = grades[ws].get(gid, "")
        return "" if value == "" else _fmt(_number(value))
    return _fmt(sum(_number(v) for v in grades[ws].values()))


def export(out: str | Path, fmt: str, *, roster: str | Path | None = None, total_only: bool = False,
           canvas_ids: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """The CSV text for ``fmt`` ("canvas" or "moodle"), and warnings (students the roster does not know)."""
    if fmt not in ("canvas", "moodle"):
        raise ExportError(f"--format {fmt!r}: choose canvas or moodle")
    grades, maxima, not_graded, later = read_grades(Path(out))
    people = read_roster(roster)
    unknown = [ws for ws in (canvas_ids or {}) if ws not in maxima]
    if unknown:
        raise ExportError(f"--canvas-id names {', '.join(unknown)}, which {Path(out) / 'grades.csv'} does not hold "
                          f"(it holds {', '.join(maxima) or 'no worksheet'}): Canvas would import the column as a "
                          "new assignment")
    cols = columns(maxima, total_only=total_only, canvas_ids=canvas_ids if fmt == "canvas" else None)
    warnings = [f"{student}: {ws} could not be graded ({status}): exported with "
                + (f"{_fmt(total)} points, set in overrides.csv" if total else "0 points")
                for (student, ws), status in sorted(not_graded.items())
                for total in [sum(_number(v) for v in grades.get(student, {}).get(ws, {}).values())]]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if fmt == "canvas":
        writer.writerow(CANVAS_IDS + [c for c, _, _ in cols])
        writer.writerow(["Points Possible", "", "", "", ""] + [
            _fmt(_number(maxima[ws][gid])) if gid else _fmt(sum(_number(v) for v in maxima[ws].values()))
            for _, ws, gid in cols])
    else:
        id_cols = [k for k, aliases in MOODLE_IDS.items()
                   if any(a in {c.casefold() for c in (people[0] if people else {})} for a in aliases)] or ["username"]
        writer.writerow(id_cols + [c for c, _, _ in cols])
    claimed: dict[int, str] = {}
    for student in sorted(grades):
        person = find(people, student)
        if person and claimed.setdefault(id(person), student) != student:
            raise ExportError(f"one row of the roster matches both {claimed[id(person)]} and {student} (their grades "
                              "would land on one person); add a column 'student' with course-grade's name of each "
                              "student")
        if people and not person:
            warnings.append(f"{student}: not in the roster; exported under the name course-grade gave it")
        low = folded(person)                                          # a roster's "sis login id" is Canvas's
        if fmt == "canvas":
            ident = [low.get(CANVAS_NAME) or low.get("student") or student, low.get("id", ""),
                     low.get("sis user id", ""),
                     low.get("sis login id", "" if low.get("id") or low.get("sis user id") else student),
                     low.get("section", "")]
        else:
            ident = [next((low[a] for a in MOODLE_IDS[k] if low.get(a)), "") for k in id_cols]
            if not any(ident):      # not in the roster: the name course-grade gave it, as the warning says
                ident[0] = student
        writer.writerow(ident + [_cell(grades[student], maxima, ws, gid) for _, ws, gid in cols])
    found = {id(find(people, student)) for student in grades}
    absent = [_who(row) for row in people if id(row) not in found and "points possible" not in _who(row).casefold()]
    if absent:
        warnings.append(f"{len(absent)} student(s) of the roster have no grades here (no submission?), and no row "
                        "in the export: " + "; ".join(absent[:20]) + ("; ..." if len(absent) > 20 else ""))
    return buf.getvalue(), warnings + later


def _who(row: dict[str, str]) -> str:
    """A roster row's name for a message: its first non-empty column among the names and KEYS."""
    low = folded(row)
    for k in (CANVAS_NAME, "student", "name", *(k for keys in KEYS[1:] for k in keys)):
        if low.get(k.casefold()):
            return low[k.casefold()]
    return "(a row without a name)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course-grade export-lms", description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="a course-grade output folder (with grades.csv)")
    parser.add_argument("--format", required=True, choices=["canvas", "moodle"], help="the platform")
    parser.add_argument("--out", required=True, help="the CSV file to write")
    parser.add_argument("--roster", help="CSV with a column 'student' (course-grade's name) and the platform's "
                        "identifiers; Canvas's gradebook export works as it is")
    parser.add_argument("--total-only", action="store_true", help="one column per worksheet, no per-TODO columns")
    parser.add_argument("--canvas-id", action="append", default=[], metavar="WORKSHEET=ID",
                        help="the Canvas assignment id of a worksheet's total (repeatable)")
    args = parser.parse_args(argv)
    ids = {}
    for item in args.canvas_id:
        ws, sep, ident = item.partition("=")
        if not sep or not ws or not ident:
            parser.error(f"--canvas-id {item!r}: write WORKSHEET=ID, e.g. --canvas-id 01_schedules=1234")
        if not ident.isdigit():
            parser.error(f"--canvas-id {item!r}: a Canvas assignment id is a number (the digits at the end of the "
                         "assignment's address, .../assignments/1234)")
        ids[ws] = ident
    if ids and args.format != "canvas":
        parser.error("--canvas-id is for --format canvas")
    try:
        text, warnings = export(args.dir, args.format, roster=args.roster, total_only=args.total_only,
                                canvas_ids=ids)
        for w in warnings:
            print(f"course-grade export-lms: warning: {w}", file=sys.stderr)
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as err:
            raise ExportError(f"cannot write {args.out}: {err.strerror or err}") from None
    except ExportError as err:
        print(f"course-grade export-lms: error: {err}", file=sys.stderr)
        return 2
    print(f"course-grade export-lms: {args.out} ({args.format})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
