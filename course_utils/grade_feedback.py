"""What the grader writes for people, and the text it lets through: ``grades.csv`` and one markdown feedback file
per student, rebuilt from every result in DIR/results (``write_reports``; ``report.html`` is ``grade_report``'s).

Everything a submission controls (names, messages, written answers) passes through here on its way to a person:
``plain`` makes it one line of visible text (valid Unicode, no line break, control or invisible format character),
``md`` also escapes HTML and markdown (no link, image, emphasis or code of the student's in a feedback file),
``quoted`` shows a written answer exactly as typed, in a code block; ``safe_name`` makes a student's name a file
name; ``write_atomic`` writes every output file (a temporary file, then ``os.replace``).
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
from .sandbox.values import valid_text

MAX_NAME_BYTES = 64                  # a student's name, in bytes of UTF-8 (file names allow 255)
CSV_FIELDS = ["student", "worksheet", "grade_id", "points", "max_points", "status", "message"]


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


INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}  # controls, line breaks, format characters (zero-width, bidi, soft hyphen, BOM)
# what makes markdown of text: links and images ([ ]), emphasis (* ~, and _ at a word's edge), code, escapes
MARKDOWN = re.compile(r"[\\`*\[\]~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def visible(text: str) -> str:
    """``text`` as valid Unicode with every run of invisible characters (``INVISIBLE``) made one space."""
    marked = "".join("\0" if unicodedata.category(ch) in INVISIBLE else ch for ch in valid_text(text))
    return re.sub("\0+", " ", marked)


def plain(message) -> str:
    """One line of plain text: no line breaks, carriage returns, control or invisible characters, no leading mark."""
    return re.sub(r"^[✅❌⏳]\s*", "", visible(str(message))).strip()


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


def typed_points(out: Path) -> tuple[dict[tuple[str, str, str], str], float, dict[tuple[str, str, str], str]]:
    """The points an instructor typed into DIR/grades.csv for answers graded by hand (status ``manual``), keyed by
    (student, worksheet, grade_id), the file's modification time (0 when there is none), and the points of every
    other TODO row as the file holds them (to tell an instructor who typed over an automatic grade that a run
    rewrites it)."""
    path = out / "grades.csv"
    try:
        mtime = path.stat().st_mtime
        with open(path, newline="", encoding="utf-8-sig") as f:     # -sig: a spreadsheet may add a BOM
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}, 0.0, {}
    key = lambda r: (r.get("student"), r.get("worksheet"), r.get("grade_id"))  # noqa: E731
    return ({key(r): (r.get("points") or "").strip()
             for r in rows if r.get("status") == "manual" and (r.get("points") or "").strip()}, mtime,
            {key(r): (r.get("points") or "").strip() for r in rows
             if r.get("status") != "manual" and r.get("grade_id") != "TOTAL"})


def write_reports(out: Path) -> tuple[int, int]:
    """DIR/grades.csv and DIR/feedback/<student>.md from every result in DIR/results.

    Points typed into the old grades.csv for answers graded by hand are kept, unless that submission was graded
    again since the file was written (its result is newer): then they are dropped, and said so on stderr.
    """
    typed, typed_at, automatic = typed_points(out)
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
            if row["status"] == "manual" and points == "" and key in typed:
                if key[:2] in newer:
                    dropped.append(f"{key[0]} ({key[1]}: {key[2]}, {typed[key]} points)")
                else:
                    points = typed[key]
            was = automatic.get(key)
            if row["status"] != "manual" and was is not None and key[:2] not in newer and (
                    _typed_number(was) is None or abs(_typed_number(was) - float(points or 0)) > 1e-9):
                overwritten.append(f"{key[0]} ({key[1]}: {key[2]}, {was!r} -> {points})")
            number = _typed_number(points) if row["status"] == "manual" and points != "" else points
            if number is None:      # kept in grades.csv as typed (export-lms refuses it), counted nowhere
                not_numbers.append(f"{key[0]} ({key[1]}: {key[2]}, {points!r})")
            rows.append({**row, "points": "" if number is None else number})
            pending += row["max_points"] if number in ("", None) else 0
            writer.writerow({"student": r["student"], "worksheet": r["worksheet"],
                             **{k: row[k] for k in CSV_FIELDS[2:]}, "points": points,
                             "message": plain(row["message"])})
        r = {**r, "rows": rows}
        shown.append(r)
        by_student.setdefault(r["student"], []).append(r)
        scored = sum(row["points"] for row in rows if isinstance(row["points"], (int, float)))
        total = sum(row["max_points"] for row in rows)
        message = r.get("message") or (f"{pending:g} points to grade by hand" if pending else "")
        writer.writerow({"student": r["student"], "worksheet": r["worksheet"], "grade_id": "TOTAL",
                         "points": f"{scored:.15g}", "max_points": total, "status": r.get("status", "graded"),
                         "message": plain(message)})
    if dropped:
        print("course-grade: points typed into grades.csv were dropped for submissions graded again since: "
              + "; ".join(dropped) + ". Grade these answers by hand again.", file=sys.stderr)
    if overwritten:
        print("course-grade: points typed into grades.csv over automatic grades were replaced by the grader's (only "
              "the rows to grade by hand keep what is typed; change an automatic grade in the LMS after the "
              "export): " + "; ".join(overwritten[:20]) + ("; ..." if len(overwritten) > 20 else ""),
              file=sys.stderr)
    if not_numbers:
        print("course-grade: points typed into grades.csv that are not numbers (write 2.5, not 2,5) are kept as "
              "typed but counted nowhere: " + "; ".join(not_numbers), file=sys.stderr)
    write_atomic(out / "grades.csv", buf.getvalue())
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


def feedback_markdown(student: str, results: list[dict]) -> str:
    lines = [f"# Feedback for {md(student)}", ""]
    for r in results:
        auto = sum(row["points"] for row in r["rows"] if isinstance(row["points"], (int, float)))
        total = sum(row["max_points"] for row in r["rows"])
        lines += [f"## Worksheet `{plain(r['worksheet'])}`: {auto:g} / {total:g} points", "",
                  f"File: {md(Path(str(r.get('file', ''))).name)}", ""]
        if r.get("message"):
            lines += [f"**{md(r['message'])}**", ""]
        for row in r["rows"]:
            by_hand = row["status"] == "manual" and row["points"] != ""
            mark = ("graded by hand" if by_hand else
                    {"pass": "passed", "manual": "to be graded by hand"}.get(row["status"], "not passed"))
            pts = "?" if row["points"] == "" else f"{row['points']:g}"
            text = "" if by_hand else f" {md(row['message'])}"
            lines.append(f"- **{md(row['grade_id'])}** ({pts} / {row['max_points']:g}): {mark}.{text}")
        for gid, text in (r.get("answers") or {}).items():
            lines += ["", f"### Written answer `{plain(gid)}` (for the instructor)", ""]
            lines += quoted(text)
        if r.get("notes"):
            lines += ["", *[f"_Note: {md(n)}_" for n in r["notes"]]]
        lines.append("")
    return "\n".join(lines)
