"""The grader against dishonest submissions (issue 14): each attack is a real notebook
(tests/grading_corpus.py, ``build_attacks``), graded with the others in ONE class run of the CLI (2 workers),
and each test passes because the attack fails:

- no point where no work was done (a classmate's outputs, the course's references);
- no byte of a file outside the job in any output (a secret file, the grader's environment, /etc/shadow),
  nothing received by a TCP or UDP listener of this test;
- grades.csv and the feedback written for every student, within the time limits (named pipes, lone
  surrogates, HTML, 80,000 cells, a 246-byte file name, colliding names, links);
- the grader's own memory bounded (a 512 MB zip bomb, a header that claims 2**31 numbers);
- memory, processes and disk bounded per submission where the platform allows it (the result says which).

The tests at the end need no kernel (the safe reading of files, the harvest channel, names, reports; the
kernel's half of a harvest and its copy of course_utils, which take a few seconds, are marked slow).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from course_utils import grade, grade_feedback, sandbox
from course_utils.sandbox import runner

import grading_corpus as corpus
from grading_corpus import PEAK, WRAPPER

ARGS = ["--workers", "2", "--cell-timeout", "20", "--timeout", "120", "--memory-mb", "1200", "--disk-mb", "64",
        "--max-processes", "64", "--max-notebook-mb", "8", "--quiet", "--allow-root"]
RESOURCE_ATTACKS = {"shared_memory": "memory", "many_processes": "process_count", "disk_fill": "disk"}


class Listener:
    """A TCP and a UDP socket on localhost that record whatever reaches them."""

    def __init__(self):
        self.received: list[bytes] = []
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.settimeout(0.5)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.5)
        self.stop = False
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._tcp, self._udp)]
        for t in self.threads:
            t.start()

    def _tcp(self):
        while not self.stop:
            try:
                conn, _ = self.tcp.accept()
                self.received.append(b"tcp connection " + conn.recv(4096))
                conn.close()
            except OSError:
                continue

    def _udp(self):
        while not self.stop:
            try:
                self.received.append(b"udp " + self.udp.recv(4096))
            except OSError:
                continue

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join()
        self.tcp.close()
        self.udp.close()


def _rows(out: Path) -> dict[str, dict[str, dict]]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    table: dict[str, dict[str, dict]] = {}
    for row in rows:
        assert row["grade_id"] not in table.get(row["student"], {}), f"{row['student']} appears twice"
        table.setdefault(row["student"], {})[row["grade_id"]] = row
    return table


def _result(out: Path, student: str) -> dict:
    return json.loads((out / "results" / corpus.SOLUTION.stem / f"{student}.json").read_text())


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    subs, out, gtmp = root / "submissions", root / "out", root / "tmp"
    gtmp.mkdir()
    solutions = root / "solutions"
    shutil.copytree(corpus.SOLUTION.parent, solutions, ignore=shutil.ignore_patterns(".*"))
    solution = solutions / corpus.SOLUTION.name
    token = uuid.uuid4().hex
    secret_file = root / "secret.txt"
    secret_file.write_text(f"TOPSECRET-{token}\n")
    mark = f"course-grade-escapee-{token}"
    listener = Listener()
    expected = corpus.build_attacks(subs, solution, secret_file=secret_file, tcp_port=listener.tcp.getsockname()[1],
                                    udp_port=listener.udp.getsockname()[1], mark=mark,
                                    real_package=Path(grade.__file__).parent)
    env = {**os.environ, "TMPDIR": str(gtmp), "COURSE_GRADE_SECRET": f"ENVSECRET-{token}"}
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", WRAPPER, str(solution), str(subs), "--out", str(out), *ARGS],
                              capture_output=True, text=True, env=env, timeout=900)
    finally:
        seconds = time.monotonic() - start
        listener.close()
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    print(f"grading {len(expected)} attacks took {seconds:.0f} s; the grader's peak memory {peak}")
    # the grader's names for them ("x y" is x_y, "x_y" x_y-2, "x_y-2" x_y-2-2; the long name is shortened)
    names = {(s.path.stem if s.path.parent == subs else s.path.parent.name): s.student
             for s in grade.find_submissions([str(subs)], solution.stem)}
    expected = {names[k]: v for k, v in expected.items()}
    secrets = [f"TOPSECRET-{token}", f"ENVSECRET-{token}"]
    try:
        secrets.append(Path("/etc/shadow").read_text().splitlines()[0])
    except (OSError, IndexError):
        pass
    return dict(root=root, subs=subs, out=out, tmp=gtmp, env=env, expected=expected, proc=proc, seconds=seconds,
                solution=solution, peak_kb=peak[0] if peak else None, received=listener.received, secrets=secrets,
                mark=mark)


@pytest.mark.slow
def test_the_class_is_graded_within_its_limits(attacked):
    proc = attacked["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "grader_error" not in (attacked["out"] / "grades.csv").read_text()
    # 2 workers, 120 s per submission at most: a hang would show here
    assert attacked["seconds"] < 600, attacked["seconds"]


@pytest.mark.slow
def test_every_student_is_present_exactly_once(attacked):
    table = _rows(attacked["out"])
    assert set(table) == set(attacked["expected"]), set(table) ^ set(attacked["expected"])
    assert not any(s.startswith("zz") for s in table)           # a folder named zz.ipynb is no student
    assert len([s for s in table if s.startswith("x_y")]) == 3     # "x y", "x_y", "x_y-2": three students
    for student in table:
        assert (attacked["out"] / "feedback" / f"{student}.md").exists(), student
        assert len(student.encode()) <= grade_feedback.MAX_NAME_BYTES
    # a folder's other notebooks are named in a note, not graded (six copies once took six submissions' time)
    notes = _result(attacked["out"], "many_copies")["notes"]
    assert any(n.startswith("graded 01_schedules.ipynb; not graded: s0/01_schedules.ipynb") for n in notes), notes


@pytest.mark.slow
def test_no_point_without_work(attacked):
    table, problems = _rows(attacked["out"]), []
    for student, expect in attacked["expected"].items():
        if student in RESOURCE_ATTACKS:
            continue                # test_resources_are_bounded_per_submission
        problems += corpus.row_problems(student, table[student], expect)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_no_byte_from_outside_the_job_in_any_output(attacked):
    for path in attacked["out"].rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for secret in attacked["secrets"]:
                assert secret not in text, f"{secret!r} leaked into {path}"
    assert attacked["received"] == [], "the sandbox reached the network"
    leak = _rows(attacked["out"])["leak"]
    assert "LEAKED" in leak["test_linear_beta_schedule"]["message"]     # the channel worked, and carried nothing


@pytest.mark.slow
def test_the_result_says_which_protections_held(attacked):
    r = _result(attacked["out"], "aa_copy_victim")
    assert {"memory", "disk"} <= set(r["protections"]), r["protections"]
    if os.geteuid() == 0 and sandbox.landlock_abi() >= 4:
        assert {"files", "processes", "network"} <= set(r["protections"]), r
    if os.uname().machine in ("x86_64", "aarch64"):     # the seccomp filter: no namespace of the job's own
        assert "namespaces_locked" in r["protections"], r["protections"]
    assert isinstance(r["notes"], list)
    assert not [n for n in r["notes"] if "data root" in n], r["notes"]     # a classmate's link into it moves nothing


@pytest.mark.slow
def test_messages_cannot_fake_lines_of_feedback(attacked):
    text = (attacked["out"] / "feedback" / "messages.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    todos = len(corpus.graded_checks(nbformat.read(corpus.SOLUTION, as_version=4)))    # one line per TODO
    assert sum(line.startswith("- **") for line in lines) == todos == 4, text
    assert sum(line.startswith("## ") for line in lines) == 1, text
    assert "<!--" not in text and "<h2>" not in text and "\r" not in text
    assert "\ufffd" in text                                         # the lone surrogate, replaced


@pytest.mark.slow
def test_reference_calls_are_named_in_the_feedback(attacked):
    text = (attacked["out"] / "feedback" / "reference_inline.md").read_text(encoding="utf-8")
    assert "hidden while grading" in text


@pytest.mark.slow
def test_the_grader_memory_is_bounded(attacked):
    """A 512 MB zip bomb and a header claiming 2**31 numbers cost the grader next to nothing: its peak stays
    within 300 MB of what importing it costs (torch alone is ~660 MB here)."""
    assert attacked["peak_kb"] is not None, attacked["proc"].stderr[-2000:]
    base = subprocess.run([sys.executable, "-c", "import course_utils.grade, course_utils.checks, torch\n"
                           f"print({PEAK})"], capture_output=True, text=True, check=True).stdout
    assert attacked["peak_kb"] < int(base) + 300 * 1024, \
        f"the grader peaked at {attacked['peak_kb'] / 1024:.0f} MB, importing it costs {int(base) / 1024:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(RESOURCE_ATTACKS))
def test_resources_are_bounded_per_submission(attacked, student):
    held = _result(attacked["out"], student)["protections"]
    what = RESOURCE_ATTACKS[student]
    if what == "memory" and "cgroup" not in held.get("memory", ""):
        pytest.skip(f"no memory cgroup here ({held.get('memory')}): docs/grading.md, Limits")
    if what == "process_count" and what not in held:
        pytest.skip("no limit on the number of processes here: docs/grading.md, Limits")
    if what == "disk" and "tmpfs" not in held.get("disk", ""):
        pytest.skip(f"no tmpfs for the job's folder here ({held.get('disk')}): docs/grading.md, Limits")
    rows = _rows(attacked["out"])[student]
    assert rows["TOTAL"]["points"] == "0", rows


@pytest.mark.slow
def test_no_process_and_no_temporary_folder_is_left(attacked):
    psutil = pytest.importorskip("psutil")
    assert not corpus.own_processes(attacked["tmp"])
    escaped = [p.pid for p in psutil.process_iter(["cmdline"]) if attacked["mark"] in " ".join(p.info["cmdline"] or [])]
    assert not escaped, "a process with an empty environment and its own session outlived the grading"
    assert list(attacked["tmp"].iterdir()) == []


@pytest.mark.slow
def test_a_rerun_regrades_nothing(attacked):
    proc = subprocess.run([sys.executable, "-m", "course_utils.grade", str(attacked["solution"]), str(attacked["subs"]),
                           "--out", str(attacked["out"]), *ARGS], capture_output=True, text=True, env=attacked["env"],
                          timeout=600)
    assert proc.returncode == 0 and " 0 graded" in proc.stdout, proc.stdout + proc.stderr


# ------------------------------------------------------------------ no kernel needed
def test_files_are_read_without_following_links_nor_blocking(tmp_path):
    (tmp_path / "secret").write_text("secret")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    os.mkfifo(tmp_path / "fifo")
    os.link(tmp_path / "secret", tmp_path / "hard")
    (tmp_path / "big").write_bytes(bytes(2000))
    for name, reason in (("link", "symbolic link"), ("fifo", "not a regular file"), ("hard", "hard link"),
                         ("big", "too large")):
        with pytest.raises(sandbox.UnsafeFile, match=reason):
            sandbox.read_regular(tmp_path / name, 1000, single_link=True)
    assert sandbox.read_regular(tmp_path / "big", 2000) == bytes(2000)


def test_a_students_link_changes_no_classmates_sandbox(tmp_path, monkeypatch):
    """The data root is kept from the sandboxes when it holds a submission, the output, SOURCE or the package: a
    student's notebook that is a link counts where it lies, not where it points (a link to the data root took
    the data from every classmate's lab and named the link in their feedback; a link to itself stopped the class
    run with "Symlink loop"). A class folder that does lie in the data root still keeps it out."""
    data = tmp_path / "data"
    (data / "MNIST").mkdir(parents=True)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    for student, target in (("mallory", data / "MNIST"), ("loop", "01_schedules.ipynb"), ("dangling", data / "x")):
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "01_schedules.ipynb").symlink_to(target)
    links = sorted((tmp_path / "class").glob("*/01_schedules.ipynb"))
    assert grade.data_for_sandbox(links) == ([str(data.resolve())], {"COURSE_DATA_DIR": str(data.resolve())}, [])
    inside = data / "class" / "bob" / "01_schedules.ipynb"
    inside.parent.mkdir(parents=True)
    inside.write_text("{}")
    paths, env, notes = grade.data_for_sandbox([*links, inside])
    assert (paths, env) == ([], {}) and "also holds" in notes[0]


def test_the_runner_forwards_only_plain_harvest_files(tmp_path):
    box = tmp_path / "box"
    (box / "harvest").mkdir(parents=True)
    (box / "harvest" / "0.out").write_bytes(b"CGH1 data")
    (box / "harvest" / "1.out").symlink_to(tmp_path)
    os.mkfifo(box / "harvest" / "2.out")
    (box / "harvest" / "3.out").write_bytes(bytes(100))
    with open(tmp_path / "channel", "w+b") as f:
        for name in ("0.out", "1.out", "2.out", "3.out", "4.out"):
            runner.forward_harvest(str(box), name, f.fileno(), 50)
        f.flush()
        frames = sandbox.jobs.read_frames(f.fileno(), 10_000)
    assert frames["0.out"] == (0, b"CGH1 data")
    assert frames["1.out"][0] == 1 and b"symbolic link" in frames["1.out"][1]
    assert frames["2.out"][0] == 1 and b"not a regular file" in frames["2.out"][1]
    assert frames["3.out"][0] == 1 and b"too large" in frames["3.out"][1]
    assert "4.out" not in frames


def test_malformed_notebooks_are_rejected_quickly():
    start = time.process_time()
    many = json.dumps({"cells": [{"cell_type": "code", "source": ""}] * 80_000}).encode()
    with pytest.raises(grade.Malformed, match="cells"):
        grade.parse_notebook(many)
    assert time.process_time() - start < 5
    with pytest.raises(grade.Malformed, match="not valid JSON"):
        grade.parse_notebook(b'{"cells": [], "n": ' + b"9" * 5000 + b"}")
    nb = grade.parse_notebook(b'{"cells": [{"cell_type": "code", "source": "x = \\"\\udcff\\""}]}')
    assert nb["cells"][0]["source"] == 'x = "\ufffd"'


NESTED_LISTS = """
def nested_lists(n_brackets):
    # a notebook whose metadata holds empty lists nested 900 deep: no ',' or ':' among n_brackets brackets
    deep = b"[" * 900 + b"]" * 900
    return (b'{"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}}], "metadata": {"x": ['
            + b",".join([deep] * (n_brackets // 1800)) + b"]}}")
"""


def test_nested_json_cannot_inflate_the_grader():
    """'[[[...]]]' needs no separator and costs ~56 bytes per byte pair once parsed (an 8 MB file took 393 MB of
    the grader's memory, outside every sandbox limit): brackets count as values. The largest notebook that passes
    the count costs the grader at most ~150 MB, whatever it is made of."""
    space: dict = {}
    exec(NESTED_LISTS, space)
    with pytest.raises(grade.Malformed, match="JSON values") as err:
        grade.parse_notebook(space["nested_lists"](8_000_000))     # 7.6 MB
    assert err.value.status == "too_large"
    probe = (NESTED_LISTS + "import resource\nfrom course_utils import grade\n"
             "data = nested_lists(grade.MAX_JSON_VALUES - 4000)\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "assert len(grade.parse_notebook(data)['cells']) == 1\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) < 150 * 1024, f"parsing took {int(proc.stdout) / 1024:.0f} MB"


def test_a_folder_is_one_student_whatever_it_holds(tmp_path, capsys):
    """The red team's second pass: jean/{luc,x}.ipynb was graded as "jean-luc" and "jean-x", so the real jean-luc
    became "jean-luc-2" (and his grade went to an unknown student in the LMS export); six copies in sub-folders were
    six submissions; a folder holding no .ipynb, or a loose .zip, left no trace at all."""
    def put(path, text="{}"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    put("jean/luc.ipynb"), put("jean/x.ipynb"), put("jean-luc/01_schedules.ipynb")
    put("bob/01_schedules.ipynb"), [put(f"bob/s{i}/01_schedules.ipynb") for i in range(6)]
    put("carl/a/01_schedules.ipynb"), put("carl/b/01_schedules.ipynb")
    put("dora/01_schedules.IPYNB"), put("eve/01_schedules.ipynb.txt"), put("gus/mine.ipynb"), put("loose.zip")
    put("notes.txt")
    put("zz.ipynb/01_schedules.ipynb")                  # a folder named like a notebook: no student, but named
    (tmp_path / "fay").mkdir()
    subs = {s.student: s for s in grade.find_submissions([str(tmp_path)], "01_schedules")}
    assert sorted(subs) == ["bob", "carl", "dora", "eve", "fay", "gus", "jean", "jean-luc", "loose"]
    assert subs["jean-luc"].path == tmp_path / "jean-luc" / "01_schedules.ipynb" and not subs["jean-luc"].problem
    assert subs["jean"].problem[0] == "ambiguous" and "none named 01_schedules.ipynb" in subs["jean"].problem[1]
    assert subs["carl"].problem[0] == "ambiguous"
    assert subs["bob"].path == tmp_path / "bob" / "01_schedules.ipynb" and "not graded: s0/" in subs["bob"].notes[0]
    assert subs["dora"].path.name == "01_schedules.IPYNB" and subs["gus"].path.name == "mine.ipynb"
    assert subs["eve"].problem == ("not_a_notebook", "no notebook (.ipynb) in the folder (nor 4 levels below), which "
                                                     "holds 01_schedules.ipynb.txt: submit 01_schedules.ipynb")
    assert subs["fay"].problem[0] == "not_a_notebook"
    err = capsys.readouterr().err
    # a loose archive is a row that says so (an instructor's Grace.zip had only a line on stderr, among the
    # progress bar's, and no row in grades.csv, report.html or the export); another loose file stays a line
    assert subs["loose"].problem == ("not_a_notebook", "an archive (loose.zip), not a notebook: the grader does not "
                                                       "unpack archives; submit 01_schedules.ipynb (or unpack it "
                                                       "into a folder named after the student and grade again)")
    assert f"a student's folder: {tmp_path / 'notes.txt'}" in err and f"folder: {tmp_path / 'zz.ipynb'}" in err
    assert "loose.zip" not in err
    # and the default size limit: the grader parses a notebook in its own memory (text up to 8x its size)
    (tmp_path / "big.ipynb").write_bytes(b" " * (17 * 2 ** 20))
    with pytest.raises(grade.Malformed, match="over the limit of 16 MB"):
        grade.read_submission(tmp_path / "big.ipynb", grade.Options().max_notebook_mb)
    (tmp_path / "big.ipynb").write_bytes(b" " * (16 * 2 ** 20 + 1))      # one byte over: not "16.0 MB, over 16 MB"
    with pytest.raises(grade.Malformed, match=r"16,777,217 bytes, over the limit of 16 MB \(16,777,216 bytes\)"):
        grade.read_submission(tmp_path / "big.ipynb", grade.Options().max_notebook_mb)
    with pytest.raises(grade.Malformed, match=r"the file is 16,777,217 bytes, over the limit of 16 MB"):
        grade.parse_notebook(b"{" + b" " * (16 * 2 ** 20 - 1) + b"}", 16 * 2 ** 20)


def test_a_name_as_it_is_keeps_it(tmp_path, capsys):
    """The red team's third pass: names were handed out in sorted order, so "_alice", "Alice" or an NFD "josé"
    (each made the same name) took it from the real alice/ or josé/, and "erin" became "erin-2" beside a real
    erin-2, whose grade then went to erin's roster row. Now a folder named exactly as the name it gets keeps it."""
    import unicodedata
    for name in ("alice", "_alice", "Alice", "josé", unicodedata.normalize("NFD", "josé"), "erin", "erin-2", "Erin"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_schedules.ipynb").write_text("{}")
    subs = {s.path.parent.name: s.student for s in grade.find_submissions([str(tmp_path)], "01_schedules")}
    assert subs["alice"] == "alice" and subs["josé"] == "josé" and subs["erin"] == "erin" and subs["erin-2"] == "erin-2"
    assert subs["_alice"] not in ("alice", "Alice") and subs["Alice"] != "alice" and subs["Erin"] not in ("erin-2",)
    assert subs[unicodedata.normalize("NFD", "josé")] == "josé-2"
    assert len({n.casefold() for n in subs.values()}) == len(subs)
    assert "(the name 'alice' was taken: check whose work it is)" in capsys.readouterr().err


def test_a_hidden_submission_is_named_not_dropped_in_silence(tmp_path, capsys):
    """A student's folder or notebook whose name starts with '.' (".alice/", ".bob.ipynb": a typo, a sync tool's
    temporary name) was skipped without a word: no row, nothing on stderr, and the instructor missed a student.
    It is still not graded (a hidden name is not a student's login), but stderr names it; Jupyter's, git's and a
    desktop's own folders and macOS's "._" files stay silent."""
    for name in (".alice", "carol", ".ipynb_checkpoints", ".git"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_schedules.ipynb").write_text("{}")
    for name in (".bob.ipynb", "._carol.ipynb", ".DS_Store"):
        (tmp_path / name).write_text("{}")
    assert [s.student for s in grade.find_submissions([str(tmp_path)], "01_schedules")] == ["carol"]
    err = capsys.readouterr().err
    said = "course-grade: not graded, a hidden name (it starts with '.'): {}; rename it if it is a student's work"
    assert sorted(err.splitlines()) == [said.format(tmp_path / n) for n in (".alice", ".bob.ipynb")], err


def test_student_names_are_unique_and_short(tmp_path):
    for name in ("x y", "x_y", "x_y-2", "X_Y", "zz.ipynb"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_schedules.ipynb").write_text("{}")
    (tmp_path / ("é" * 120 + ".ipynb")).write_text("{}")
    names = [s.student for s in grade.find_submissions([str(tmp_path)], "01_schedules")]
    assert len(names) == len({n.casefold() for n in names}) == 5, names
    assert all(len(n.encode()) <= grade_feedback.MAX_NAME_BYTES for n in names)


def test_a_name_is_never_a_formula_or_an_option(tmp_path):
    """A folder named "-A1-B1" (characters safe_name keeps) was the student "-A1-B1", which a spreadsheet opening
    grades.csv reads as the formula =-A1-B1, and a command line as an option. Names start and end with a word
    character; '=', '+' and '@' never survive."""
    for name in ("-A1-B1", "--help", "=1+2", "+A1", "@SUM(A1)", "bob-"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_schedules.ipynb").write_text("{}")
    names = sorted(s.student for s in grade.find_submissions([str(tmp_path)], "01_schedules"))
    assert names == ["1_2", "A1", "A1-B1", "SUM_A1", "bob", "help"], names
    assert all(grade_feedback.safe_name(n) == n for n in names)


def test_reports_survive_any_text(tmp_path):
    row = {"grade_id": "g", "points": 0, "max_points": 1, "status": "error",
           "message": "\udcff\r\n- **g** (1 / 1): passed <!-- x -->"}
    result = {"student": "s", "worksheet": "w", "file": "\udcff.ipynb", "rows": [row], "answers": {"a": "\udcff"},
              "notes": ["\udcff"], "status": "graded", "message": ""}
    (tmp_path / "results" / "w").mkdir(parents=True)
    (tmp_path / "results" / "w" / "s.json").write_text(json.dumps(result))
    (tmp_path / "results" / "w" / "broken.json").write_text('{"student": 1}')
    assert grade_feedback.write_reports(tmp_path) == (1, 1)
    text = (tmp_path / "feedback" / "s.md").read_text(encoding="utf-8")
    assert "<!--" not in text and sum(line.startswith("- **") for line in text.splitlines()) == 1


def test_what_the_kernel_reports_costs_the_grader_nothing():
    """Fields of a harvest that should be text but are not (a case's error as a tensor of shape [6] * 8, whose
    repr alone took 10 s and 29 MB; the 'raised' records of ddim_step, classifier_guided_eps and dpmpp_2m_step;
    training_step's losses) are named by their type, never formatted; one tensor referenced many times (which
    multiplied the 4 M numbers a harvest may hold) is refused. The second red-team pass measured 31 s and an 88 MB
    message for three references."""
    import torch
    from answer_key import ANSWER_KEY
    from course_utils.checks import verdict
    from course_utils.checks.framework import MAX_MESSAGE, harvest
    from course_utils.sandbox.codec import Packer
    big = torch.zeros([6] * 8)
    packer = Packer()
    ref = packer.encode(big)
    with pytest.raises(ValueError, match="referenced twice"):
        grade.decode_outputs(packer.to_bytes([{"error": [ref, ref], "message": "x"}]))
    cases = len(harvest("q_sample", ANSWER_KEY["q_sample"]))
    result = verdict("q_sample", [{"error": big, "message": [big]}] * cases)
    assert result.status == "error" and "<Tensor>" in result.message and len(result.message) < MAX_MESSAGE
    for name, field, value in [("ddim_step", "no_noise", {"raised": big}),
                               ("classifier_guided_eps", "under_no_grad", {"raised": big}),
                               ("dpmpp_2m_step", None, {"raised": big}),
                               ("training_step", "losses", [big, big])]:
        outputs = harvest(name, ANSWER_KEY[name])
        for i, out in enumerate(outputs):
            if field is None:
                outputs[i] = value
            elif field in out and out[field] is not None:
                out[field] = value
        result = verdict(name, outputs)
        assert not result.passed and len(result.message) < MAX_MESSAGE, (name, result.message[:200])
        assert "0., 0." not in result.message, name          # no tensor was formatted


def test_feedback_renders_a_students_text_as_text(tmp_path):
    """An exception message and a written answer full of markdown (a remote image that a preview would fetch,
    links, a fake bold "passed", invisible characters, bare addresses), rendered by a CommonMark renderer
    (markdown-it, as JupyterLab's and GitHub's are) and by nbconvert's GitHub-flavoured one (mistune, whose url
    plugin links a bare https://, as GitHub does): no image, no link, no bold text but the grader's own."""
    from markdown_it import MarkdownIt
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    payload = ("![ ](https://attacker.example/pixel.png) [regrade](javascript:alert(1)) <https://attacker.example> "
               "**(2 / 2): passed.** _done_ `code` \\[x](y) a\u2063b\ufeffc\u00add "
               "regrade at https://evil.example/r?u=1 or www.evil.example, mail prof@evil.example, x_www.evil.example")
    row = {"grade_id": "g", "points": 0, "max_points": 2, "status": "error",
           "message": f"g: raised ValueError: {payload}"}
    result = {"student": "mallory", "worksheet": "w", "file": "w.ipynb", "rows": [row], "status": "graded",
              "answers": {"summary": f"The angle is linear.\n{payload}\n```\n**10 / 10 points**"}, "message": ""}
    (tmp_path / "results" / "w").mkdir(parents=True)
    (tmp_path / "results" / "w" / "mallory.json").write_text(json.dumps(result))
    grade_feedback.write_reports(tmp_path)
    text = (tmp_path / "feedback" / "mallory.md").read_text(encoding="utf-8")
    for page in (MarkdownIt("commonmark").render(text), markdown2html_mistune(text)):
        links = re.findall(r"<a (?![^>]*class=\"anchor-link\")", page)      # nbconvert's heading anchors aside
        assert "<img" not in page and not links and "<em>" not in page, page
        assert page.count("<strong>") == 1 and "<strong>g</strong>" in page, page      # the grade_id, the grader's
    assert "https[:]//evil.example/r?u=1 or www[.]evil.example, mail prof[at]evil.example, x_www[.]" in page
    row = next(line for line in text.splitlines() if line.startswith("- **g**"))
    assert "www." not in row           # GitHub's cmark-gfm links "www." after "_" too (the third red-team pass)
    assert not any(ch in text for ch in "\u2063\ufeff\u00ad")
    assert "**10 / 10 points**\n" in text            # the answer as typed, inside its code block


SHADOWED_EXEC = """
def exec(source, namespace=None, *rest):       # a global named after a builtin: no attribute of anything changed
    namespace = globals() if namespace is None else namespace
    __builtins__["exec"](source, namespace, *rest) if isinstance(__builtins__, dict) else \\
        __builtins__.exec(source, namespace, *rest)
    if "Packer" in namespace:                  # the harvest's encoder: error records become the values returned
        plain = namespace["Packer"].to_bytes
        def to_bytes(self, encoded):
            if isinstance(encoded, list):
                for k, rec in enumerate(encoded[:-1]):
                    if isinstance(rec, dict) and rec.get("error") == "returned":
                        encoded[k] = self.encode(_OUTS[k])
            return plain(self, encoded)
        namespace["Packer"].to_bytes = to_bytes

_OUTS = []
def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
    torch.manual_seed(0)                       # a catalogued mistake: reseeds the global generator
    out = _right(diffusion_times, min_signal_rate, max_signal_rate)
    _OUTS.append(out)
    return out
"""


def test_a_name_of_the_notebook_cannot_stand_in_for_the_harvests(tmp_path):
    """The harvest cell runs in the notebook's namespace: a global ``def exec(...)`` (nothing of torch, numpy,
    builtins or course_utils assigned, so grade_scan names nothing) took over the harvest's own exec and rewrote
    its error records into the values returned (the red team's second pass: 3/8 -> 8/8). Its code now runs in a
    namespace of its own, with Python's builtins."""
    import torch

    from answer_key import ANSWER_KEY
    from course_utils.checks import CHECKS, judge_inputs, verdict
    scope: dict = {"torch": torch, "_right": ANSWER_KEY["diffusion_schedule"]}
    exec(SHADOWED_EXEC, scope)
    (tmp_path / "c.in").write_bytes(grade.encode_values(CHECKS["diffusion_schedule"].cases(True)))
    cell = grade.HARVEST.format(gid="g", target="diffusion_schedule", check="diffusion_schedule",
                                code=grade.HARVEST_CODE, cases=str(tmp_path / "c.in"), path=str(tmp_path / "h.out"))
    exec(cell, scope)
    outputs = judge_inputs("diffusion_schedule", grade.decode_outputs((tmp_path / "h.out").read_bytes()))
    result = verdict("diffusion_schedule", outputs)
    assert not result.passed and "random generator" in result.message, result.message
    assert "_course_grade_ns" not in scope and "_course_grade_builtins" not in scope


def _exits(t, dim, max_period=10000.0):
    raise SystemExit(0)


def test_both_harvests_word_errors_for_the_student(tmp_path):
    """An error raised inside torch names the student's line and function, not torch's ("line 134" of linear.py);
    an output that is not tensors says what to return, not that the student raised. The same in a notebook's
    instant check (checks.harvest) and in a graded harvest cell (grade.HARVEST_CODE)."""
    import numpy as np

    from course_utils.checks import CHECKS, harvest, judge_inputs, verdict
    source = ("import torch\n"
              "def sinusoidal_embedding(t, dim, max_period=10000.0):\n"
              "    weight = torch.zeros(3, 5)\n"
              "    return torch.nn.functional.linear(t[:, None].float(), weight)\n")
    path = tmp_path / "student.py"            # a file of its own, as a notebook cell's code is (ipykernel)
    path.write_text(source)
    scope: dict = {}
    exec(compile(source, str(path), "exec"), scope)
    as_numpy = lambda t, dim, max_period=10000.0: np.zeros((len(t), dim))    # noqa: E731
    kernel: dict = {}
    exec(grade.HARVEST_CODE, kernel)
    (tmp_path / "c.in").write_bytes(grade.encode_values(CHECKS["sinusoidal_embedding"].cases(False)))
    for how in ("instant", "graded"):
        messages = []
        for obj in (scope["sinusoidal_embedding"], as_numpy, _exits):
            if how == "instant":
                outputs = harvest("sinusoidal_embedding", obj, hidden=False)
            else:
                kernel["_course_grade_harvest"]("sinusoidal_embedding", "sinusoidal_embedding", obj,
                                                str(tmp_path / "c.in"), str(tmp_path / "h.out"))
                outputs = judge_inputs("sinusoidal_embedding", grade.decode_outputs((tmp_path / "h.out").read_bytes()),
                                       hidden=False)
            messages.append(verdict("sinusoidal_embedding", outputs, hidden=False).message)
        raised, returned, exited = messages
        # sys.exit() in a TODO is the student's own error, not the grader's ("could not collect its outputs; did
        # the notebook change torch or builtins?"); nor a bare SystemExit ending the worksheet's check cell
        assert "raised SystemExit: 0" in exited and "builtins" not in exited, (how, exited)
        assert "raised RuntimeError" in raised and "(line 4, in sinusoidal_embedding)" in raised, (how, raised)
        assert returned.endswith("return torch tensors (or a tuple of them), not a numpy.ndarray (torch.from_numpy(a) "
                                 "turns an array into a tensor)") and "raised" not in returned, (how, returned)


@pytest.mark.slow
def test_the_kernels_half_of_a_harvest_matches_the_checks(tmp_path):
    """grade.HARVEST_CODE (what a harvest cell runs) on the cases the grader sends, for every check: a right
    answer passes, a missing one is a NameError record."""
    from answer_key import ANSWER_KEY
    from course_utils.checks import CHECKS
    scope: dict = {}
    exec(grade.HARVEST_CODE, scope)
    for name, check in CHECKS.items():
        if name not in ANSWER_KEY:
            continue
        (tmp_path / "c.in").write_bytes(grade.encode_values(check.cases(True)))
        for obj, passes in ((ANSWER_KEY[name], True), (None, False)):
            scope["_course_grade_harvest"](name, check.target, obj, str(tmp_path / "c.in"), str(tmp_path / "h.out"))
            result = grade.judge_harvest(name, (tmp_path / "h.out").read_bytes())
            assert result.passed == passes, (name, result.message)


def test_the_kernels_half_reports_a_device_mix_up(tmp_path):
    """The lab's reverse_diffusion also runs on the meta device in the kernel (a GPU's stand-in): a loop that makes
    its times without device= passes on values and fails with the device hint, through the harvest's channel."""
    from course_utils.checks import CHECKS, MISTAKES
    scope: dict = {}
    exec(grade.HARVEST_CODE, scope)
    check = CHECKS["reverse_diffusion"]
    on_cpu = {label: f for label, f, _ in MISTAKES["reverse_diffusion"]}["new tensors on the CPU"]
    (tmp_path / "c.in").write_bytes(grade.encode_values(check.cases(True)))
    scope["_course_grade_harvest"]("reverse_diffusion", check.target, on_cpu, str(tmp_path / "c.in"),
                                   str(tmp_path / "h.out"))
    result = grade.judge_harvest("reverse_diffusion", (tmp_path / "h.out").read_bytes())
    assert not result.passed and "device=initial_noise.device" in result.message, result.message


@pytest.mark.parametrize("name, label", [("q_sample", "writes into x0"),
                                         ("classifier_guided_eps", "requires_grad on the caller's xt")])
def test_an_input_changed_in_place_is_judged_in_the_grader(tmp_path, monkeypatch, name, label):
    """The red team's second pass: a q_sample that writes into x0 scored 2/2 once a cell set
    ``course_utils.checks.framework.changed_input = lambda *a: None`` (the kernel's probe, silenced). The harvest
    now sends the case's tensors back as the call left them and the grader compares them with its own cases."""
    from course_utils.checks import CHECKS, MISTAKES, framework
    scope: dict = {}
    exec(grade.HARVEST_CODE, scope)
    check = CHECKS[name]
    mistake = {lab: f for lab, f, _ in MISTAKES[name]}[label]
    (tmp_path / "c.in").write_bytes(grade.encode_values(check.cases(True)))
    monkeypatch.setattr(framework, "changed_input", lambda *args: None)     # what the notebook's cell did
    scope["_course_grade_harvest"](name, check.target, mistake, str(tmp_path / "c.in"), str(tmp_path / "h.out"))
    monkeypatch.undo()
    result = grade.judge_harvest(name, (tmp_path / "h.out").read_bytes())
    assert not result.passed and ("in place" in result.message or "requires_grad" in result.message), result.message
    # and a harvest that does not send the inputs back is not judged at all
    outputs = grade.decode_outputs((tmp_path / "h.out").read_bytes())[:-1]
    with pytest.raises(ValueError, match="inputs back"):
        framework.judge_inputs(name, outputs)


INPLACE = """
def q_sample(x0, t, eps, schedule):
    a = schedule.sqrt_alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    b = schedule.sqrt_one_minus_alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    x0.mul_(a).add_(b * eps)          # wrong: writes into the caller's x0
    return x0.clone()
"""
HIDDEN_INPLACE = {     # the red team's third pass: each scored 2/2 against the first grader-side check
    "restores the copies into the case": """
import course_utils.checks.framework as _fw
def _quiet(given, before):
    for k, v in before.items():
        given[k] = v
_fw.changed_input = _quiet
""" + INPLACE,
    "a class that lies through detach": """
import torch
class _Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.detach and args and id(args[0]) in _ORIG:
            return _ORIG[id(args[0])].clone()
        return super().__torch_function__(func, types, args, kwargs or {})
_ORIG = {}
def q_sample(x0, t, eps, schedule):
    a = schedule.sqrt_alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    b = schedule.sqrt_one_minus_alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    _ORIG[id(x0)] = x0.detach().clone()
    x0.mul_(a).add_(b * eps)
    out = torch.Tensor._make_subclass(torch.Tensor, x0.detach().clone())
    x0.__class__ = _Liar
    return out
""",
    "puts back what earlier calls changed": """
import course_utils.checks.framework as _fw
_fw.changed_input = lambda *a: None
_SEEN = []
def q_sample(x0, t, eps, schedule):
    for x, orig in _SEEN:
        x.copy_(orig)
    a = schedule.sqrt_alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    b = schedule.sqrt_one_minus_alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    out = a * x0 + b * eps
    if len(_SEEN) < 2:
        _SEEN.append((x0, x0.clone()))
        x0.mul_(a).add_(b * eps)
    return out
""",
}


@pytest.mark.parametrize("how", sorted(HIDDEN_INPLACE))
def test_an_input_changed_in_place_cannot_be_hidden(tmp_path, monkeypatch, how):
    """The inputs are copied right after each call from the harvest's own references, with their exact type."""
    from course_utils.checks import CHECKS, framework
    monkeypatch.setattr(framework, "changed_input", framework.changed_input)     # undone after the test
    scope: dict = {}
    exec(grade.HARVEST_CODE, scope)
    student: dict = {}
    exec(HIDDEN_INPLACE[how], student)
    check = CHECKS["q_sample"]
    (tmp_path / "c.in").write_bytes(grade.encode_values(check.cases(True)))
    scope["_course_grade_harvest"]("q_sample", check.target, student["q_sample"], str(tmp_path / "c.in"),
                                   str(tmp_path / "h.out"))
    result = grade.judge_harvest("q_sample", (tmp_path / "h.out").read_bytes())
    assert not result.passed and "changed its input x0 in place" in result.message, result.message


@pytest.mark.slow
def test_the_kernels_course_utils_hides_the_answers(tmp_path):
    from course_utils.sandbox import kernel_package
    pkg, notes = kernel_package.build(tmp_path, ["linear_beta_schedule", "cosine_beta_schedule",
                                                 "diffusion_schedule", "q_sample"], "01_schedules")
    assert not notes
    probe = '''
import torch
import course_utils, course_utils.checks as C
from course_utils.schedules import NoiseSchedule
assert course_utils.__file__.startswith(sys.argv[1]), course_utils.__file__
hidden = []
for f in (lambda: NoiseSchedule.linear(10), lambda: NoiseSchedule.cosine(10), lambda: C.ref_linear_betas(10),
          lambda: C.ref_cosine_betas(10), lambda: C.ref_diffusion_schedule(torch.rand(3)),
          lambda: course_utils.diffusion_schedule(torch.rand(3)), lambda: C.ref_q_sample(None, None, None, None),
          lambda: C.CHECKS["q_sample"].cases(True)):
    try:
        f()
    except PermissionError as err:
        hidden.append("hidden while grading" in str(err))
print(len(hidden), all(hidden), C.MISTAKES == {}, NoiseSchedule.from_betas(torch.full((3,), 0.1)).T,
      sorted(C.CHECKS) == sorted(set(C.CHECKS)), C.run_check("q_sample", None).status)
'''
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + probe, str(pkg.parent)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.stdout.split() == ["8", "True", "True", "3", "True", "not_implemented"], proc.stdout + proc.stderr


def test_the_cases_stay_in_the_grader():
    """The kernel's copy of a checks module keeps what a harvest calls and nothing of the cases: a constant only
    the hidden cases use (ws07's _HIDDEN_STEPS) is None there, so an instructor's private cases in the grader's
    environment reach the kernel as inputs only (docs/grading.md, "Hidden tests are not secret")."""
    import ast

    from course_utils.sandbox import kernel_package
    folder = kernel_package.PACKAGE_DIR / "checks"
    trees = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.py"))
             if p.name not in kernel_package._KEEP_IN_CHECKS}
    needed = kernel_package._needed(trees)
    original = (folder / "ws07_fast_samplers.py").read_text(encoding="utf-8")
    assert "_HIDDEN_STEPS = [(30, 5, 0)" in original
    stripped = kernel_package.strip_checks_module(trees["ws07_fast_samplers"], "ws07_fast_samplers",
                                                  needed["ws07_fast_samplers"])
    assert "_HIDDEN_STEPS = None" in stripped and "(30, 5, 0)" not in stripped
    assert "the cases are hidden while grading" in stripped


def test_every_hidden_package_function_exists():
    """PACKAGE_TARGETS names real checks and real package functions: a rename would leave an answer in reach."""
    import ast

    from course_utils.checks import CHECKS
    from course_utils.sandbox import kernel_package
    for check, targets in kernel_package.PACKAGE_TARGETS.items():
        assert check in CHECKS, check
        for target in targets:
            module, _, qualname = target.partition(".")
            tree = ast.parse((kernel_package.PACKAGE_DIR / f"{module}.py").read_text())
            assert kernel_package._find(tree, qualname) is not None, f"{target} (the package's {check}) is gone"


def test_every_package_answer_that_passes_a_check_is_hidden():
    """A package function that passes a worksheet's check (tests/test_package_matches_checks.py) is an answer:
    the kernel's copy of the package must hide it while that worksheet is graded."""
    from course_utils.sandbox import kernel_package
    from test_package_matches_checks import PACKAGE
    missing = sorted(set(PACKAGE) - set(kernel_package.PACKAGE_TARGETS))
    assert not missing, f"answers in reach of a graded kernel: {missing}"


@pytest.mark.parametrize("dead, held", [
    ("the sandbox could not be set up (OSError: [Errno 23] Too many open files in system)", {}),
    # process 1 set the sandbox up (its record of what held came first), then could not make the kernel's pipe
    ("OSError: [Errno 23] Too many open files in system", {"namespaces": ["pid", "mount"]}),
])
def test_a_sandbox_that_was_not_set_up_is_a_grader_error_not_a_verdict(tmp_path, monkeypatch, capsys, dead, held):
    """The fourth red team spent the machine's open files: 14 classmates' sandboxes failed before their first cell
    ("the sandbox could not be set up", or process 1 could not make a pipe) and each was graded `crashed`, 0/8,
    a verdict that no rerun revisits. A job whose runner never recorded what held ran none of the student's
    code: grade_submission raises, the class run writes a grader error and the next run grades it again."""
    _fake_job(tmp_path, monkeypatch, sandbox.Outcome(dead=dead, protections={"cgroup": None, **held}))
    solution = corpus.REPO / "solutions" / "01_schedules.ipynb"
    opts = grade.Options(kernel=grade.KernelPackage(pythonpath=None, read_only=[]), cases={})
    with pytest.raises(grade.SandboxNotSetUp, match=re.escape(dead)):
        grade.grade_submission(grade.load_source(solution), grade.Submission("b05", solution), opts)
    # the class run's bookkeeping: a grader error, named on stderr, graded again by the next run
    monkeypatch.setattr(grade, "kernel_package", lambda *a: grade.KernelPackage(pythonpath=None, read_only=[]))
    monkeypatch.setattr(grade.subprocess, "run", lambda *a, **k: None)
    (tmp_path / "subs").mkdir()
    shutil.copy(solution, tmp_path / "subs" / "b05.ipynb")
    stats = grade.grade_class(solution, [str(tmp_path / "subs")], tmp_path / "out", workers=1,
                              opts=grade.Options(pool=False), progress=False, allow_root=True)
    result = json.loads((tmp_path / "out" / "results" / "01_schedules" / "b05.json").read_text())
    assert result["status"] == "grader_error" and result["message"] == grade.NOT_SET_UP, result
    assert all(row["message"] == grade.NOT_SET_UP for row in result["rows"])
    assert stats["not_gradable"] == ["b05 (grader_error)"]
    assert (f"b05: the sandbox could not be set up ({dead}): graded again at the end of this run (if it grades "
            "others) or by the next" in capsys.readouterr().err)   # (none of the run had a verdict: no second try)
    # and the next run says why it grades it again (such a result has no fingerprint: it was "resubmitted")
    sub = grade.Submission("b05", tmp_path / "subs" / "b05.ipynb")
    assert grade._why_regrade(result, grade.load_source(solution), sub, grade.Options()) == "grader_error"


PRELUDE_RAN = {"index": 0, "status": "ok", "seconds": 1.0}


@pytest.mark.parametrize("outcome, said", [
    # the fifth red team: a neighbour spent the user's epoll watches, zmq aborted in the runner before its first
    # cell, with no record (jobs.Job.run names the runner's end); 0/8 "this cell did not run" until then
    (dict(dead="the sandbox's runner ended without a record (exit status -6)"), "exit status -6"),
    (dict(), "the sandbox's runner ended without a record"),    # (a job that did not say even that)
    (dict(running=0, dead="the kernel died (exit code -6)"), "the kernel died"),     # in the grader's imports
    (dict(running=0, timed_out=True), "the kernel and the grader's imports did not finish within 900 s"),
], ids=["runner aborted", "no word", "died in the prelude", "timed out in the prelude"])
def test_a_job_that_ended_before_any_cell_of_the_students_is_a_grader_error(tmp_path, monkeypatch, outcome, said):
    """Nothing of the student's ran when the job ended before any cell but the grader's prelude had started:
    whatever ended it, no verdict of theirs (SandboxNotSetUp: a grader error, graded again by the next run)."""
    _fake_job(tmp_path, monkeypatch, sandbox.Outcome(protections={"cgroup": None, "namespaces": ["pid"]}, **outcome))
    solution = corpus.REPO / "solutions" / "01_schedules.ipynb"
    opts = grade.Options(kernel=grade.KernelPackage(pythonpath=None, read_only=[]), cases={})
    with pytest.raises(grade.SandboxNotSetUp, match=re.escape(said)):
        grade.grade_submission(grade.load_source(solution), grade.Submission("b06", solution), opts)


SILENT = "the sandbox's runner ended without a record (exit status -9)"
SAID = "the sandbox could not be set up (OSError: [Errno 28] No space left on device)"


@pytest.mark.parametrize("held, running, dead, verdict", [
    (["mount"], 0, SILENT, True), (["mount"], None, SILENT, True), (["mount"], None, SAID, False),
    (["pid", "mount"], 0, SILENT, False), (["pid", "mount"], None, SILENT, False)],
    ids=["no pid namespace, in the prelude: a verdict", "no pid namespace, silent before any cell: a verdict",
         "no pid namespace, process 1 said it: a grader error", "pid namespace, in the prelude: a grader error",
         "pid namespace, silent: a grader error"])
def test_a_zygote_job_that_stopped_in_the_prelude_is_a_verdict_without_a_pid_namespace(tmp_path, monkeypatch,
                                                                                      held, running, dead, verdict):
    """A zygote's kernel starts the next cell as soon as it has sent the prelude's record: without a pid namespace,
    a first cell that kills process 1 before it logged that record leaves a log that stops in the prelude (a
    review of 2026-12-07: 4 of 12 such jobs on a loaded machine), or before it (in principle, on a slow process
    1). There it stays a verdict (else a student's 0 turned into a grader error), unless process 1 said it could
    not start; in a pid namespace the kernel cannot end process 1, and it is the grader's."""
    _fake_job(tmp_path, monkeypatch, sandbox.Outcome(running=running, dead=dead,
                                                     protections={"cgroup": None, "namespaces": held}))
    solution = corpus.REPO / "solutions" / "01_schedules.ipynb"
    opts = grade.Options(kernel=grade.KernelPackage(pythonpath=None, read_only=[]), cases={}, zygotes=object())
    if verdict:
        result = grade.grade_submission(grade.load_source(solution), grade.Submission("b08", solution), opts)
        assert all(r["status"] in ("crashed", "manual") for r in result["rows"]), result["rows"]
    else:
        with pytest.raises(grade.SandboxNotSetUp, match=re.escape(dead)):
            grade.grade_submission(grade.load_source(solution), grade.Submission("b08", solution), opts)


def test_a_second_run_out_of_time_in_its_prelude_is_the_todos_timeout(tmp_path, monkeypatch):
    """A second run has what the first left of --timeout (down to 30 s), and the student's first run sets that: a
    second run that ran out of time in the grader's imports is that TODO's timeout (second_run_timeouts), not a
    sandbox not set up, which threw away the first run's verdicts, run after run."""
    outcomes = [sandbox.Outcome(finished=True, protections={"cgroup": None, "namespaces": ["pid"]}),
                sandbox.Outcome(running=0, timed_out=True, protections={"cgroup": None, "namespaces": ["pid"]})]
    _fake_job(tmp_path, monkeypatch, outcomes)
    lab = corpus.REPO / "solutions" / "lab_ddim.ipynb"
    opts = grade.Options(kernel=grade.KernelPackage(pythonpath=None, read_only=[]), cases={})
    result = grade.grade_submission(grade.load_source(lab), grade.Submission("b09", lab), opts)
    assert result["status"] == "graded" and result["second_run_timeouts"] == ["test_reverse_diffusion"], result
    assert not outcomes       # (both runs ran)


def test_a_job_that_ended_in_a_students_cell_is_a_verdict(tmp_path, monkeypatch):
    """Once a cell of the student's started, the end is a verdict (crashed): a student's code can end the runner
    without a record (a SIGINT to process 1 of the job is a KeyboardInterrupt in runner.py), and a grader error
    would have no verdict for it, run after run."""
    dead = "the sandbox's runner ended without a record (exit status 1)"
    _fake_job(tmp_path, monkeypatch, sandbox.Outcome(cells=[PRELUDE_RAN], running=1, dead=dead,
                                                     protections={"cgroup": None, "namespaces": ["pid"]}))
    solution = corpus.REPO / "solutions" / "01_schedules.ipynb"
    opts = grade.Options(kernel=grade.KernelPackage(pythonpath=None, read_only=[]), cases={})
    result = grade.grade_submission(grade.load_source(solution), grade.Submission("b07", solution), opts)
    checked = [r for r in result["rows"] if r["status"] != "manual"]
    assert checked and all(r["status"] == "crashed" and dead in r["message"] for r in checked), checked


def _fake_job(tmp_path: Path, monkeypatch, outcome: sandbox.Outcome | list[sandbox.Outcome]) -> None:
    """Jobs whose runs end as ``outcome`` (a list: one after the other)."""
    class Fake:
        def __init__(self, *args, **kwargs):
            self.box = tmp_path / "box"
            self.box.mkdir(exist_ok=True)

        def run(self, *args, **kwargs):
            return outcome.pop(0) if isinstance(outcome, list) else outcome

        def read_harvest(self, name):
            raise FileNotFoundError(name)

        def close(self, keep=False):
            pass
    monkeypatch.setattr(grade.sandbox, "Job", Fake)


def test_a_runner_that_ends_without_a_record_is_named_dead(tmp_path, monkeypatch):
    """A real job whose runner logs what held and then aborts (as zmq did in the fifth red team's classmate):
    the outcome was neither finished nor dead, and the grader read it as a notebook whose cells did not run."""
    from course_utils.sandbox import jobs
    fake = tmp_path / "runner.py"
    fake.write_text("import json, os, sys\n"
                    "job = json.load(open(os.path.join(sys.argv[1], 'job.json')))\n"
                    "os.write(job['log_fd'], b'{\"protections\": {\"namespaces\": [\"pid\"]}}\\n')\n"
                    "os.abort()\n")
    monkeypatch.setattr(jobs, "RUNNER", fake)
    with sandbox.Job(sandbox.Limits(timeout=60), read_only=[]) as job:
        outcome = job.run({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, "x.ipynb", b"{}")
    assert outcome.exit_status == -6 and not outcome.finished
    assert outcome.dead == "the sandbox's runner ended without a record (exit status -6)"


@pytest.mark.parametrize("failing", [{"ann", "bob"}, {"bob"}], ids=["every submission", "one of two"])
def test_a_run_whose_every_submission_is_a_grader_error_says_so_and_fails(tmp_path, monkeypatch, capsys, failing):
    """A grader that cannot work on this machine (no sandbox, a bug) wrote a grader error for each student, each
    named on stderr, and exited 0 as after a class graded: a script going on to publish grades.csv published a
    class of ungraded rows. Now such a run ends with one line for the class and exit code 3 (EXIT_NO_VERDICT); a
    run with a verdict for someone in --out still exits 0, and so does its rerun, which grades only the
    submission that keeps failing (a review of 2026-12-07: exit 3 then stopped a script from publishing the
    class's 99 verdicts)."""
    def grade_submission(source, sub, opts):
        if sub.student in failing:
            raise RuntimeError("the machine is out of luck")
        return {"student": sub.student, "submitted_as": sub.student, "worksheet": source.worksheet,
                "file": str(sub.path), "sha256": grade._fingerprint(sub, opts.max_notebook_mb),
                "source_sha256": source.sha256, "grader_sha256": grade.grader_sha256(), "limits": opts.graded_under(),
                "notes": [], "protections": {}, "cell_errors": [], "seconds": 0.1, "answers": {}, "status": "graded",
                "message": "", "rows": [{"grade_id": g.grade_id, "max_points": g.points, "points": g.points,
                                         "status": "pass", "message": "passed"} for g in source.graded]}
    monkeypatch.setattr(grade, "grade_submission", grade_submission)
    monkeypatch.setattr(grade, "kernel_package", lambda *a: None)
    monkeypatch.setattr(grade.subprocess, "run", lambda *a, **k: None)
    solution = corpus.REPO / "solutions" / "01_schedules.ipynb"
    (tmp_path / "subs").mkdir()
    for student in ("ann", "bob"):
        shutil.copy(solution, tmp_path / "subs" / f"{student}.ipynb")
    def run():
        code = grade.main([str(solution), str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--no-pool",
                           "--quiet", "--allow-root", "--workers", "1"])
        return code, capsys.readouterr().err
    said = f"no submission in {tmp_path / 'out'} has a verdict"
    for _ in range(2):                      # the run, then the same command again
        code, err = run()
        if failing == {"ann", "bob"}:       # (both graded again by the rerun: a grader error is no verdict)
            assert code == grade.EXIT_NO_VERDICT == 3 and said in err and "2 in this run" in err, err
            assert "RuntimeError: the machine is out of luck" in err, err
        else:
            assert code == 0 and said not in err and "bob: internal grader error" in err, err


def test_the_process_limit_is_said_as_it_holds():
    """Unprivileged without a cgroup or a user namespace, RLIMIT_NPROC counts every process of the grader's user
    (not "does not bind root", which the result said for every user): the result says what it bounds."""
    opts = grade.Options()
    for identity, held, note in [
        ("root without capabilities", None, "RLIMIT_NPROC does not bind root"),
        ("the grader's user, without capabilities", "RLIMIT_NPROC: 256 processes of the grader's user together",
         "the limit counts every process of the grader's user"),
    ]:
        got, missing = grade.protections({"identity": identity, "namespaces": []}, opts)
        assert got.get("process_count") == held and any(note in m for m in missing), (got, missing)
    got, _ = grade.protections({"identity": "the grader's user, without capabilities", "namespaces": ["user"]}, opts)
    assert got["process_count"] == "RLIMIT_NPROC in its own user namespace: 256"
