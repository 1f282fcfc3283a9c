"""Bounds of the sandbox that the class runs of tests/test_grade_attacks.py cannot reach on a machine where every
protection holds (a tmpfs box, cgroups, namespaces): the grader's fallbacks (the disk and memory polls, the end of
a job without a pids cgroup), and the edges of what crosses the boundary (the harvest channel, the runner's
forwarding, the decoding of outputs).

Each test here failed against a one-line change of the code it names (a mutation audit), and needs no kernel.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from course_utils import grade, sandbox
from course_utils.sandbox import codec, jobs, runner, values


# ------------------------------------------------------------------ reading files
def test_a_file_longer_than_its_size_is_still_bounded():
    """A regular file whose size says 0 (/proc, sysfs; or one that grows after fstat) must not pass the bound on
    what is read: the count of bytes actually read is checked, not only st_size."""
    path = Path("/proc/self/status")
    if not path.exists():
        pytest.skip("no /proc here")
    assert os.stat(path).st_size == 0 and len(path.read_bytes()) > 64
    with pytest.raises(sandbox.UnsafeFile, match="too large"):
        sandbox.read_regular(path, 64)


# ------------------------------------------------------------------ the disk and memory polls (no tmpfs, no cgroup)
def test_box_usage_counts_every_byte_in_every_folder(tmp_path):
    """What a job wrote in a sub-folder counts, in bytes (st_blocks are 512-byte units)."""
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "data").write_bytes(os.urandom(2 ** 20))
    used, entries = sandbox.box_usage(tmp_path, 100)
    assert used >= 2 ** 20 and entries == 3


def test_box_usage_stops_counting_at_its_bound(tmp_path):
    """A folder of many entries costs the grader at most ``max_entries`` stat calls per poll."""
    for i in range(20):
        (tmp_path / str(i)).write_bytes(b"")
    assert sandbox.box_usage(tmp_path, 5) == (0, 5)


class _Running:
    """A stand-in for the runner's process that does not end by itself (the poll must stop it) within ``calls``
    polls; ``pid`` is this process, whose memory the memory poll measures."""

    def __init__(self, calls: int = 40):
        self.pid, self.calls = os.getpid(), calls

    def wait(self, timeout=None):
        self.calls -= 1
        if self.calls < 0:
            return 0        # the poll never stopped it: the test fails on ``outcome.stopped``
        raise subprocess.TimeoutExpired("runner", timeout)


# The disk tests poll this test process's memory too (no cgroup): with its children (a worker's kernels and
# zygotes) it may pass the default 4 GB, which would stop the job for its memory before its disk is looked at.
_NO_MEMORY_LIMIT = 2 ** 20


def _watch(job: sandbox.Job) -> sandbox.Outcome:
    outcome = sandbox.Outcome()
    job.box_tmpfs = False       # no tmpfs: the grader polls the folder
    job._watch(_Running(), outcome, start=time.monotonic())
    return outcome


def test_the_disk_poll_stops_a_job_at_its_entry_bound(monkeypatch):
    """Without a tmpfs, a job that makes MAX_BOX_ENTRIES files (inodes cost the disk too) is stopped."""
    monkeypatch.setattr(jobs, "MAX_BOX_ENTRIES", 30)
    with sandbox.Job(sandbox.Limits(memory_mb=_NO_MEMORY_LIMIT), read_only=[]) as job:
        have = sandbox.box_usage(job.box, 1000)[1]
        for i in range(30 - have):
            (job.box / "work" / str(i)).write_bytes(b"")
        assert sandbox.box_usage(job.box, 1000)[1] == 30
        outcome = _watch(job)
    assert outcome.stopped and "disk limit" in outcome.stopped


def test_the_disk_poll_stops_a_job_over_its_bytes():
    """Without a tmpfs, a job that wrote more than disk_mb in a sub-folder of its box is stopped."""
    with sandbox.Job(sandbox.Limits(disk_mb=1, memory_mb=_NO_MEMORY_LIMIT), read_only=[]) as job:
        (job.box / "work" / "big").write_bytes(os.urandom(2 * 2 ** 20))
        outcome = _watch(job)
    assert outcome.stopped and "disk limit of 1 MB" in outcome.stopped


def test_the_grader_reads_whether_the_box_is_a_tmpfs_from_its_own_log():
    """The runner's first record says whether BOX is a tmpfs of the disk limit (then the grader stops polling
    it); the grader reads it from the job's folder, through its descriptor, never from its own working folder."""
    with sandbox.Job(sandbox.Limits(), read_only=[]) as job:
        assert job._peek_tmpfs() is None                    # no record yet
        (job.dir / "log.jsonl").write_text(json.dumps({"protections": {"box_tmpfs": True}}) + "\n")
        assert job._peek_tmpfs() is True


def test_the_memory_poll_stops_a_job_over_its_memory():
    """Without a memory cgroup, the grader measures the runner's memory: over memory_mb, the job is stopped."""
    with sandbox.Job(sandbox.Limits(memory_mb=1), read_only=[]) as job:
        job.cgroup = None
        outcome = _watch(job)
    assert outcome.protections.get("memory_polled") is True
    assert outcome.stopped and "memory limit of 1 MB" in outcome.stopped


def test_a_job_done_before_the_first_poll_reports_the_memory_poll_too():
    """What held is the same for every submission: a fast-path submission done in 0.3 s, before the first poll at
    0.5 s, reported 'memory bounded per process only' where a slower one reported the poll (an instructor's pass
    in Docker-like runs, where the memory cgroup is read-only)."""
    with sandbox.Job(sandbox.Limits(memory_mb=_NO_MEMORY_LIMIT), read_only=[]) as job:
        job.cgroup = None
        outcome = sandbox.Outcome()
        job.box_tmpfs = False
        job._watch(_Running(calls=0), outcome, start=time.monotonic())      # ended at the first wait
    assert outcome.protections.get("memory_polled") is True


def test_the_memory_poll_sums_the_runner_and_its_children():
    """The poll counts the runner and every descendant together: a job cannot hide its memory in many processes."""
    import psutil     # ipykernel's dependency, so always here
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        own = psutil.Process().memory_full_info()
        assert jobs.job_memory(os.getpid()) > getattr(own, "pss", own.rss) // 2
    finally:
        child.kill()
        child.wait()


def test_the_end_of_a_job_kills_its_group_and_what_escaped_with_its_token():
    """Without a pids cgroup, the end of a job SIGKILLs the runner's process group, then every process that left
    the group (its own session) but kept the job's token in its environment."""
    with sandbox.Job(sandbox.Limits(), read_only=[]) as job:
        job.cgroup = None
        env = {"PATH": os.environ.get("PATH", "/usr/bin"), "COURSE_GRADE_JOB": job.token}
        procs = [subprocess.Popen(["sleep", "60"], env=env, start_new_session=True) for _ in range(2)]
        try:     # procs[0] stands for the runner, procs[1] for a process that escaped its group
            killer = threading.Thread(target=job._kill, args=(procs[0],), daemon=True)
            killer.start()
            killer.join(20)
            assert not killer.is_alive(), "the runner's group was not killed"
            assert procs[1].wait(timeout=10) == -9
        finally:
            for p in procs:
                p.kill()
                p.wait()


# ------------------------------------------------------------------ the runner's own confinement (in a child)
def _in_runner(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter that imports runner.py alone (as the sandbox does), return its stdout."""
    prelude = f"import os, sys\nsys.path.insert(0, {os.path.dirname(runner.__file__)!r})\nimport runner\n"
    proc = subprocess.run([sys.executable, "-I", "-c", prelude + code, *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_runner_limits_file_size_memory_cpu_core_dumps_and_open_files(tmp_path):
    """RLIMIT_FSIZE bounds what the job writes outside its tmpfs (the runner's output, the log, the harvest
    channel: files on the grader's disk); RLIMIT_DATA, RLIMIT_CPU and RLIMIT_CORE the rest. RLIMIT_NOFILE: the
    fourth red team's 124 processes of 20,000 files each held every open file of the machine, and 14 of 18
    classmates graded meanwhile crashed with ENFILE; at 1024, the 256 processes of a job hold a tenth of it."""
    out = _in_runner("import resource\n"
                     "runner.set_limits(512, 100, 1, None)\n"
                     "print([resource.getrlimit(r)[0] for r in (resource.RLIMIT_FSIZE, resource.RLIMIT_DATA,"
                     " resource.RLIMIT_CPU, resource.RLIMIT_CORE)])\n"
                     "print('nofile', *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
                     "try:\n"
                     "    open(sys.argv[1], 'wb').write(bytes(2 * 2 ** 20))\n"
                     "except OSError as err:\n"
                     "    print('refused', err.errno)\n"
                     "fds = []\n"
                     "try:\n"
                     "    while len(fds) < 5000:\n"
                     "        fds.append(os.eventfd(0))\n"
                     "except OSError as err:\n"
                     "    print('files', len(fds) < 1024, 'refused', err.errno)\n", str(tmp_path / "big"))
    assert out.splitlines() == [str([2 ** 20, 512 * 2 ** 20, 100, 0]), "nofile 1024 1024", "refused 27",  # EFBIG
                                "files True refused 24"]                                              # EMFILE


def test_the_job_cannot_make_namespaces_of_its_own():
    """The third red team (2026-12-07): a kernel without capabilities made a user namespace, and in it IPC
    namespaces until the uid's machine-wide quota was spent; every classmate graded meanwhile ran without pid,
    mount, network and IPC namespaces. After forbid_namespaces, unshare and clone with a namespace flag and setns
    fail with EPERM, clone3 with ENOSYS (glibc falls back to clone); threads, fork, subprocesses and torch's
    threads still work."""
    if os.uname().machine not in runner._SECCOMP_ARCH:
        pytest.skip(f"no seccomp program for {os.uname().machine}")
    out = _in_runner(
        "import ctypes, subprocess, threading\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "assert runner.forbid_namespaces()\n"
        "def errno(r): return 0 if r == 0 else ctypes.get_errno()\n"
        "for flags in (0x10000000, 0x08000000, 0x40000000, 0x20000000, 0x00020000, 0x80, 0x18000000):\n"
        "    print('unshare', hex(flags), errno(libc.unshare(ctypes.c_int(flags))))\n"
        "print('unshare files', errno(libc.unshare(ctypes.c_int(0x400))))\n"   # CLONE_FILES: no namespace
        "fd = os.open('/proc/self/ns/net', os.O_RDONLY)\n"
        "print('setns', errno(libc.setns(fd, 0)))\n"
        f"print('clone3', errno(libc.syscall({runner._SECCOMP_ARCH[os.uname().machine][3]}, 0, 0)))\n"
        "seen = []\n"
        "t = threading.Thread(target=seen.append, args=(1,)); t.start(); t.join()\n"
        "pid = os.fork()\n"
        "if pid == 0: os._exit(7)\n"
        "print('thread', seen, 'fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]),\n"
        "      'subprocess', subprocess.run(['sh', '-c', 'exit 3']).returncode)\n")
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("unshare 0x")] == [
        f"unshare {hex(f)} 1" for f in (0x10000000, 0x08000000, 0x40000000, 0x20000000, 0x00020000, 0x80,
                                        0x18000000)], out
    assert "unshare files 0" in lines and "setns 1" in lines and "clone3 38" in lines, out
    assert "thread [1] fork 7 subprocess 3" in lines, out


def test_a_job_whose_landlock_fails_does_not_run(tmp_path):
    """Landlock present but not applied (the fourth red team spent the machine's open files while classmates'
    sandboxes were set up: landlock_create_ruleset got ENFILE for 13 of them) used to be recorded, and the job
    ran on with no file-system sandbox. Now _confine raises: the job dies before the notebook's first cell."""
    if sandbox.landlock_abi() < 1:
        pytest.skip("no Landlock on this kernel")
    (tmp_path / "box").mkdir()
    job = {"cgroup_procs": [], "memory_mb": 2048, "cpu_s": 100, "file_mb": 10, "namespaces": False,
           "seccomp": False, "box": str(tmp_path / "box"), "read_only": ["/usr"], "proc_files": []}
    out = _in_runner("import json\n"
                     "job = json.loads(sys.argv[1])\n"
                     "held = [os.open('/dev/null', os.O_RDONLY) for _ in range(runner.NOFILE + 8)]   # every file\n"
                     "try:\n"
                     "    runner._confine(job, lambda **record: print('logged', sorted(record)))\n"
                     "    print('ran on')\n"
                     "except OSError as err:\n"
                     "    print('stopped', err)\n", json.dumps(job))
    assert out.startswith("stopped ") and "Landlock is there but could not be applied" in out, out
    assert "ran on" not in out and "logged" not in out, out


TWO_JOBS = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import runner
job = json.loads(sys.argv[2])

def one(n, hold, report):
    held = []
    runner._confine(dict(job, box=job['box'] + str(n)), lambda **record: held.append(record))    # as a job's
    user = 'user' in held[0]['protections']['namespaces']
    started, why = 0, ''
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError as err:
            why = err.strerror
            break
        if pid == 0:
            time.sleep(hold)
            os._exit(0)
        started += 1
    os.write(report, f'{started} {user} {why}|'.encode())
    while started:
        os.wait()
        started -= 1
    os._exit(0)

r, w = os.pipe()
for n, hold in ((200, 6), (100, 1)):     # job A holds 200 processes while job B starts 100
    if os.fork() == 0:
        one(n, hold, w)
    print(os.read(r, 100).decode().strip('|'))
"""


def test_the_process_limit_of_an_unprivileged_job_counts_its_own_processes(tmp_path_factory):
    """The fourth red team (2026-12-07): graded as an unprivileged user, each job's RLIMIT_NPROC of 256 was set
    before its user namespace was made, and a namespace keeps its creator's limit as the bound of the uid's
    processes in every namespace: a job beside one holding 200 processes could start 53. Set after the
    namespace, it counts the job's own: both start all theirs. (Run as uid 65534 with the system's Python.)"""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not python:
        pytest.skip("needs root (to become uid 65534), setpriv and a system python3")
    folder = Path(tempfile.mkdtemp(prefix="nproc-"))       # readable by uid 65534 (pytest's tmp_path is not)
    try:
        folder.chmod(0o777)
        shutil.copy(runner.__file__, folder / "runner.py")
        (folder / "two_jobs.py").write_text(TWO_JOBS)
        job = {"cgroup_procs": [], "memory_mb": 2048, "cpu_s": 100, "file_mb": 10, "nproc": 256,
               "namespaces": True, "landlock": False, "seccomp": False, "box": str(folder / "box"),
               "read_only": [], "proc_files": []}
        for n in (200, 100):
            (folder / f"box{n}").mkdir(mode=0o777)
            (folder / f"box{n}").chmod(0o777)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I",
                               str(folder / "two_jobs.py"), str(folder), json.dumps(job)],
                              capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if "False" in proc.stdout:
        pytest.skip(f"no user namespace for an unprivileged user here: {proc.stdout}")
    assert proc.stdout.split() == ["200", "True", "100", "True"], proc.stdout + proc.stderr


def test_the_job_cannot_use_the_kernels_keyrings():
    """The fourth red team (2026-12-07): root's user keyring is the grader's, shared by every job and kept until
    reboot; a solution stored its answers there and a blank worksheet graded in a later run read them back (8/8,
    no note). add_key, request_key and keyctl fail with EPERM after the filter, as under Docker's profile."""
    if os.uname().machine not in runner._SECCOMP_ARCH:
        pytest.skip(f"no seccomp program for {os.uname().machine}")
    nrs = runner._SECCOMP_ARCH[os.uname().machine][5:]
    out = _in_runner(
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "def call(nr, *args):\n"
        "    r = libc.syscall(ctypes.c_long(nr), *args)\n"
        "    return 0 if r >= 0 else ctypes.get_errno()\n"
        f"add_key, request_key, keyctl = {nrs}\n"
        "KEY_SPEC_USER_KEYRING, KEYCTL_GET_KEYRING_ID = -4, 0\n"
        "before = call(keyctl, ctypes.c_long(KEYCTL_GET_KEYRING_ID), ctypes.c_long(KEY_SPEC_USER_KEYRING), 0)\n"
        "assert runner.forbid_namespaces()\n"
        "print('keyctl', call(keyctl, ctypes.c_long(KEYCTL_GET_KEYRING_ID), ctypes.c_long(KEY_SPEC_USER_KEYRING),"
        " 0), 'before', before)\n"
        "print('add_key', call(add_key, b'user', b'answers', b'x', ctypes.c_size_t(1),"
        " ctypes.c_long(KEY_SPEC_USER_KEYRING)))\n"
        "print('request_key', call(request_key, b'user', b'answers', None, ctypes.c_long(0)))\n")
    lines = out.splitlines()
    assert lines[1:] == ["add_key 1", "request_key 1"], out
    assert lines[0].startswith("keyctl 1 before ") and lines[0] != "keyctl 1 before 1", out   # it worked before


def test_the_namespace_filter_jumps_inside_itself():
    """Each jump of the BPF program lands on an instruction, and the program ends in a return (the kernel
    refuses a filter otherwise, and the job would run without it: its protections would say so)."""
    for machine in runner._SECCOMP_ARCH:
        program = runner.namespace_filter(machine)
        for pc, (code, jt, jf, _) in enumerate(program):
            if code & 0x07 == 0x05:        # BPF_JMP
                assert pc + 1 + max(jt, jf) < len(program), (machine, pc)
        assert program[-1][0] == 0x06 and len(program) < 4096
        # each refused call lands on its return: EPERM for unshare's and clone's namespaces, setns and the
        # keyrings, ENOSYS for clone3 (an interpreter of the program, run on each call)
        arch, unshare, clone, clone3, setns, *keys = runner._SECCOMP_ARCH[machine]
        ns = 0x10000000
        for nr, flags, expect in [(unshare, ns, "EPERM"), (unshare, 0x400, "ALLOW"), (clone, ns, "EPERM"),
                                  (clone, 0x11, "ALLOW"), (clone3, 0, "ENOSYS"), (setns, 0, "EPERM"),
                                  *[(k, 0, "EPERM") for k in keys], (0, 0, "ALLOW"), (0x40000001, 0, "EPERM")]:
            assert _bpf(program, arch, nr, flags) == expect, (machine, nr, flags)
        assert _bpf(program, arch ^ 1, 0, 0) == "EPERM"


def _bpf(program, arch: int, nr: int, arg0: int) -> str:
    """What the classic BPF ``program`` returns for a call (only the instructions namespace_filter uses)."""
    data, acc, pc = {0: nr, 4: arch, 16: arg0}, 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20:
            acc, pc = data[k], pc + 1
        elif code == 0x06:
            return {runner._RET_ALLOW: "ALLOW", runner._RET_ERRNO | runner._EPERM: "EPERM",
                    runner._RET_ERRNO | runner._ENOSYS: "ENOSYS"}[k]
        else:
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if hit else jf)


def test_landlock_forbids_links_fifos_and_devices_in_the_box(tmp_path):
    """The box is writable but cannot hold a symbolic link or a FIFO: the harvest's checks are a second wall."""
    if sandbox.landlock_abi() < 1:
        pytest.skip("no Landlock on this kernel")
    out = _in_runner("runner.restrict([], [sys.argv[1]])\n"
                     "for make in (lambda: os.symlink('/etc/passwd', sys.argv[1] + '/l'),"
                     " lambda: os.mkfifo(sys.argv[1] + '/f')):\n"
                     "    try:\n"
                     "        make()\n"
                     "        print('made')\n"
                     "    except PermissionError:\n"
                     "        print('denied')\n"
                     "open(sys.argv[1] + '/ok', 'w').write('x')\n"
                     "print('wrote')\n", str(tmp_path))
    assert out.split() == ["denied", "denied", "wrote"]


def test_landlock_denies_tcp_even_where_the_network_is_shared():
    """Landlock ABI 4+ denies every TCP bind and connect, a second wall behind the network namespace (and the only
    one where no namespace can be made): a listener of this test, in the same network, is not reached."""
    import socket
    if sandbox.landlock_abi() < 4:
        pytest.skip("Landlock without network rules (ABI < 4) on this kernel")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        out = _in_runner("import socket\n"
                         "print(runner.restrict([], [])['tcp_denied'])\n"
                         "try:\n"
                         "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()\n"
                         "    print('connected')\n"
                         "except PermissionError:\n"
                         "    print('denied')\n", str(listener.getsockname()[1]))
    assert out.split() == ["True", "denied"], out


def test_the_runner_is_process_one_of_its_own_namespace(tmp_path):
    """After ``unshare(CLONE_NEWPID)`` the runner forks and its child is process 1, so the kernel and everything it
    starts die with it, and the /proc it mounts shows only the job's processes."""
    (tmp_path / "box").mkdir()
    job = {"cgroup_procs": [], "memory_mb": 4096, "cpu_s": 100, "file_mb": 16, "nproc": None, "namespaces": True,
           "landlock": True, "box": str(tmp_path / "box"), "read_only": sandbox.system_read_only(),
           "proc_files": sandbox.PROC_FILES}
    out = _in_runner("import json\n"
                     "runner._confine(json.loads(sys.argv[1]), runner.Log(1))\n"
                     "print(json.dumps([os.getpid(), [p for p in os.listdir('/proc') if p.isdigit()]]))\n",
                     json.dumps(job))
    held = json.loads(out.splitlines()[0])["protections"]
    if "pid" not in held["namespaces"] or "mount" not in held["namespaces"]:
        pytest.skip(f"no pid and mount namespaces here ({held['namespaces']})")
    pid, visible = json.loads(out.splitlines()[-1])
    assert pid == 1 and held["private_proc"] and visible == ["1"], out


def test_the_runner_keeps_no_capability():
    """Root in the sandbox keeps uid 0 but no capability at all (effective, permitted, bounding): the zygote's
    kernel is forked, not executed, so it would inherit any capability left in the effective set."""
    status = Path("/proc/self/status").read_text().splitlines()
    caps = dict(line.split(":\t") for line in status if line.startswith("Cap"))
    if int(caps["CapEff"], 16) == 0:
        pytest.skip("this process has no capability to drop")
    out = _in_runner("runner.drop_privileges()\n"
                     "print(' '.join(line for line in open('/proc/self/status')"
                     " if line.startswith(('CapEff', 'CapPrm', 'CapBnd'))))\n")
    assert [int(v, 16) for v in out.split()[1::2]] == [0, 0, 0], out


# ------------------------------------------------------------------ the kernel's copy of course_utils
def test_a_package_function_named_as_a_check_is_hidden_for_it():
    """A top-level function or class of the package with a check's very name (forward.q_sample for the check
    q_sample) is that TODO's answer: PACKAGE_TARGETS must list it, or a graded kernel could call it."""
    import ast

    from course_utils.checks import CHECKS
    from course_utils.sandbox import kernel_package
    defined = {}
    for path in sorted(kernel_package.PACKAGE_DIR.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.setdefault(node.name, []).append(f"{path.stem}.{node.name}")
    in_reach = [t for check in CHECKS for t in defined.get(check, [])
                if t not in kernel_package.PACKAGE_TARGETS.get(check, [])]
    assert not in_reach, f"answers in reach of a graded kernel: {in_reach}"


def test_a_hidden_class_keeps_its_name_and_bases_and_nothing_else():
    """A hidden answer that is a class (nets.ResBlock, training.EMA) keeps its name and bases, so that imports
    and isinstance work, but none of its methods: building it raises PermissionError, hidden while grading."""
    import ast

    from course_utils.sandbox import kernel_package
    tree = ast.parse("import torch\n"
                     "class ResBlock(torch.nn.Module):\n    def forward(self, x):\n        return x + 1\n")
    kernel_package._stub_def(tree.body[1], "course_utils.nets.ResBlock", "worksheet 3 asks for it")
    space: dict = {}
    exec(compile(ast.fix_missing_locations(tree), "nets", "exec"), space)
    cls = space["ResBlock"]
    assert issubclass(cls, torch.nn.Module) and "forward" not in vars(cls)
    with pytest.raises(PermissionError, match=kernel_package.HIDDEN):
        cls()


# ------------------------------------------------------------------ cgroups
def test_a_job_cgroup_holds_the_memory_and_process_limits():
    """Where this machine lets the grader make cgroups, a job's cgroup has both limits at their values. The class
    runs of test_grade_attacks.py skip their memory test when no memory cgroup was made, so a cgroup that fails
    to be created (or carries a wrong limit) would otherwise go unnoticed."""
    from course_utils.sandbox import cgroups
    own = cgroups._own(cgroups.ROOT)
    v2 = "" in own and {"memory", "pids"} <= set(cgroups._read(own[""] / "cgroup.controllers").split())
    v1 = {"memory", "pids"} <= set(own) and all(os.access(own[k], os.W_OK) for k in ("memory", "pids"))
    if os.geteuid() != 0 or not (v1 or v2):
        pytest.skip("this machine does not let the grader make memory and pids cgroups")
    cg = sandbox.JobCgroup.create(64, 16)
    assert cg is not None and {"memory", "pids"} <= set(cg.dirs), cg and cg.dirs
    try:
        mem = cg.dirs["memory"]
        limit = cgroups._read(mem / "memory.max") or cgroups._read(mem / "memory.limit_in_bytes")
        assert int(limit) == 64 * 2 ** 20
        assert cgroups._read(cg.dirs["pids"] / "pids.max").strip() == "16"
        if "cpu" in own or (v2 and "cpu" in cgroups._read(own[""] / "cgroup.controllers").split()):
            # every job the same weight, whatever its processes (the third red team's 200 setsid spinners)
            share = cgroups._read(cg.dirs["cpu"] / "cpu.weight") or cgroups._read(cg.dirs["cpu"] / "cpu.shares")
            assert int(share) in (cgroups.CPU_WEIGHT_V2, cgroups.CPU_SHARES_V1) and cg.dirs["cpu"] != own.get("cpu")
    finally:
        cg.kill()
        cg.remove()


def test_a_submission_over_its_size_says_so(tmp_path):
    """A notebook over --max-notebook-mb is 'too_large' (the student is told to clear its outputs); a FIFO or a
    link is 'unreadable'."""
    (tmp_path / "big.ipynb").write_bytes(bytes(2 ** 20 + 1))
    os.mkfifo(tmp_path / "fifo.ipynb")
    with pytest.raises(grade.Malformed, match="clear the outputs") as err:
        grade.read_submission(tmp_path / "big.ipynb", 1)
    assert err.value.status == "too_large"
    with pytest.raises(grade.Malformed) as err:
        grade.read_submission(tmp_path / "fifo.ipynb", 1)
    assert err.value.status == "unreadable"


# ------------------------------------------------------------------ what the kernel inherits
def test_the_kernel_gets_its_token_and_none_of_the_instructors_variables(tmp_path, monkeypatch):
    """The job's token is how escaped processes are found and killed where no pids cgroup holds; any other
    variable of the instructor (a secret, a token of a cloud account) stays out."""
    monkeypatch.setenv("COURSE_GRADE_SECRET", "ENVSECRET")
    monkeypatch.setenv("PATH", os.environ.get("PATH", "/usr/bin"))
    env = sandbox.child_env(tmp_path, "the-token")
    assert env["COURSE_GRADE_JOB"] == "the-token"
    assert "COURSE_GRADE_SECRET" not in env and "ENVSECRET" not in json.dumps(env)
    assert env["HOME"] == str(tmp_path / "work") and env["PATH"] == os.environ["PATH"]


def test_a_hidden_path_is_not_under_any_read_only_path(tmp_path):
    """``hide`` (the real course_utils) must not be reachable through a folder that holds it: a folder given
    (as sys.prefix may hold the package) is dropped, a site-packages holding it is listed less the hidden entry,
    and the other packages of that site-packages stay readable."""
    (tmp_path / "pkg").mkdir()
    hidden = [str(tmp_path / "pkg"), os.path.dirname(torch.__file__)]
    paths = sandbox.system_read_only(extra=[str(tmp_path)], hide=hidden)
    for h in map(os.path.realpath, hidden):
        assert not [p for p in paths if h == p or h.startswith(p + os.sep)], h
    stdlib = os.path.realpath(os.path.dirname(json.__file__))
    assert any(stdlib == p or stdlib.startswith(p + os.sep) for p in paths)
    numpy = pytest.importorskip("numpy")
    other = os.path.realpath(os.path.dirname(numpy.__file__))
    if os.path.dirname(other) == os.path.dirname(os.path.realpath(hidden[1])):      # torch's neighbour
        assert any(other == p or other.startswith(p + os.sep) for p in paths)


# ------------------------------------------------------------------ the harvest channel
def _channel(tmp_path: Path, files: dict[str, bytes], max_bytes: int = 50) -> bytes:
    box = tmp_path / "box"
    (box / "harvest").mkdir(parents=True)
    for name, data in files.items():
        (box / "harvest" / name).write_bytes(data)
    with open(tmp_path / "channel", "w+b") as f:
        for name in files:
            runner.forward_harvest(str(box), name, f.fileno(), max_bytes)
    return (tmp_path / "channel").read_bytes()


def _frames(tmp_path: Path, data: bytes, max_bytes: int) -> dict:
    (tmp_path / "read").write_bytes(data)
    fd = os.open(tmp_path / "read", os.O_RDONLY)
    try:
        return jobs.read_frames(fd, max_bytes)
    finally:
        os.close(fd)


def test_the_harvest_channel_is_read_within_its_bound(tmp_path):
    """The grader reads at most ``max_bytes`` of the channel; a frame cut by that bound is dropped, not
    returned short; an empty harvest file at the very end is a frame like any other."""
    data = _channel(tmp_path, {"a.out": b"CGH1 first", "b.out": b"CGH1 second", "e.out": b""})
    assert _frames(tmp_path, data, len(data)) == {"a.out": (0, b"CGH1 first"), "b.out": (0, b"CGH1 second"),
                                                  "e.out": (0, b"")}
    first = len(b"CGF1") + 1 + len("a.out") + 1 + 8 + len(b"CGH1 first")
    assert _frames(tmp_path, data, first) == {"a.out": (0, b"CGH1 first")}
    assert _frames(tmp_path, data, first + 20) == {"a.out": (0, b"CGH1 first")}     # b.out cut: dropped


def test_the_runner_forwards_a_hard_link_as_a_problem_and_a_file_at_its_bound_as_data(tmp_path):
    """A harvest file hard-linked to another file (which a later cell could change, or which lies outside the
    box) is forwarded as its problem; a file of exactly ``max_bytes`` is data."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"CGH1 not the student's")
    box = tmp_path / "box"
    (box / "harvest").mkdir(parents=True)
    os.link(outside, box / "harvest" / "h.out")
    (box / "harvest" / "full.out").write_bytes(b"x" * 50)
    with open(tmp_path / "channel", "w+b") as f:
        for name in ("h.out", "full.out"):
            runner.forward_harvest(str(box), name, f.fileno(), 50)
        frames = jobs.read_frames(f.fileno(), 10_000)
    assert frames["h.out"][0] == 1 and b"hard link" in frames["h.out"][1]
    assert frames["full.out"] == (0, b"x" * 50)


def test_a_harvest_forwarded_as_a_problem_is_never_data():
    """A frame whose status is not 0 (a link, a FIFO, a hard link, too large) raises UnsafeFile with its reason:
    its text is the runner's description, never outputs to decode; a name never forwarded is FileNotFoundError."""
    with sandbox.Job(sandbox.Limits(), read_only=[]) as job:
        job.harvest = {"ok.out": (0, b"CGH1"), "link.out": (1, b"a symbolic link"), "odd.out": (2, b"CGH1")}
        assert job.read_harvest("ok.out") == b"CGH1"
        for name in ("link.out", "odd.out"):
            with pytest.raises(sandbox.UnsafeFile):
                job.read_harvest(name)
        with pytest.raises(FileNotFoundError):
            job.read_harvest("missing.out")


def test_the_first_protections_record_is_the_one_reported(tmp_path):
    """The runner writes what held before any student code runs; a later record (whatever wrote it) changes
    nothing in what the result says about the sandbox."""
    first = {"namespaces": ["pid", "mount"], "landlock": {"abi": 7}}
    lines = [{"protections": first}, {"cell": {"index": 0, "status": "ok"}},
             {"protections": {"namespaces": ["forged"], "landlock": {"abi": 99}}}, {"finished": True}]
    log, out = tmp_path / "log", tmp_path / "out"
    log.write_text("".join(json.dumps(e) + "\n" for e in lines))
    out.write_bytes(b"")
    fds = [os.open(log, os.O_RDONLY), os.open(out, os.O_RDONLY)]
    try:
        with sandbox.Job(sandbox.Limits(), read_only=[]) as job:
            outcome = sandbox.Outcome()
            job._read_log(*fds, outcome)
    finally:
        for fd in fds:
            os.close(fd)
    assert outcome.protections["namespaces"] == ["pid", "mount"] and outcome.protections["landlock"] == {"abi": 7}
    assert outcome.finished and outcome.cells == [{"index": 0, "status": "ok"}]


def test_a_submission_that_is_not_a_file_has_a_fingerprint_of_what_it_is(tmp_path):
    """A link or a FIFO is never opened, but is fingerprinted by what it is (a link by its target), so that a
    rerun knows it graded it and a new target is graded again."""
    (tmp_path / "a").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    os.mkfifo(tmp_path / "fifo")
    link, fifo = grade._sha256(tmp_path / "link", 2 ** 20), grade._sha256(tmp_path / "fifo", 2 ** 20)
    assert link.startswith("not-a-file-") and fifo.startswith("not-a-file-") and link != fifo
    assert grade._sha256(tmp_path / "a", 2 ** 20) == hashlib.sha256(b"{}").hexdigest()


def test_a_file_over_the_limit_is_fingerprinted_unread(tmp_path, monkeypatch):
    """A file over --max-notebook-mb is refused unread, and so is its fingerprint made: a sparse 20 GB file was
    hashed in full on every run (16 s here; a terabyte, minutes). Its size, time and inode stand for it, so a
    changed file is graded again."""
    big = tmp_path / "01_schedules.ipynb"
    with open(big, "wb") as f:
        f.truncate(2 ** 26)                                   # sparse: 64 MB that take no disk
    monkeypatch.setattr(grade.os, "open", lambda *a, **k: pytest.fail("the file was opened"))
    first = grade._sha256(big, 2 ** 20)
    assert first.startswith("too-large-") and first == grade._sha256(big, 2 ** 20)
    with open(big, "r+b") as f:
        f.truncate(2 ** 26 + 1)
    assert grade._sha256(big, 2 ** 20) != first
    monkeypatch.undo()
    assert grade._sha256(big, 2 ** 27) == hashlib.sha256(bytes(2 ** 26 + 1)).hexdigest()     # within: read


# ------------------------------------------------------------------ decoding the outputs
def _outputs(value) -> bytes:
    packer = codec.Packer()
    return packer.to_bytes(packer.encode(value))


@pytest.mark.parametrize("value, match", [
    (functools.reduce(lambda x, _: [x], range(24), 0), "nested too deeply"),      # 24 lists deep
    ([0] * 100_001, "too many"),
    ([2 ** 70], "out of range"),
])
def test_outputs_beyond_their_bounds_are_refused(value, match):
    """Depth, count and integer range bound what the verdicts' code walks and converts."""
    with pytest.raises(ValueError, match=match):
        values.decode_outputs(_outputs(value))


def test_a_negative_tensor_index_is_not_a_second_reference():
    """``{"__tensor__": -1}`` is not a reference (the kernel's half numbers tensors from 0): read as one, it would
    name the last tensor a second time and pass the check that each tensor is used once."""
    packer = codec.Packer()
    data = packer.to_bytes([packer.encode(torch.zeros(3)), {"__tensor__": -1}])
    first, second = values.decode_outputs(data)
    assert torch.equal(first, torch.zeros(3)) and second == {"__tensor__": -1}


def test_text_in_the_outputs_is_cut():
    """A string of the outputs is cut to 2,000 characters before any message quotes it."""
    assert values.decode_outputs(_outputs(["a" * 5000])) == ["a" * 2000]


def test_a_lone_surrogate_in_the_outputs_becomes_a_replacement_character():
    """JSON may carry a lone surrogate, which is not Unicode: quoted as it is, it would make the grades file and
    the feedback unwritable as UTF-8 for the whole class."""
    text = values.decode_outputs(_outputs(["a\ud800b"]))[0]
    assert text == "a\ufffdb" and text.encode("utf-8") == b"a\xef\xbf\xbdb"


# ------------------------------------------------------------------ cgroups as a folder tree (any machine)
def test_a_v2_job_cgroup_gets_its_limits_and_reports_them(tmp_path, monkeypatch):
    """cgroup v2, which this machine (v1) cannot exercise: a job's folder under the grader's own gets memory.max,
    pids.max and memory.oom.group (the whole job dies on OOM), swap only where the kernel has it; the verdict's
    figures come from memory.events and memory.peak. A folder tree stands in for /sys/fs/cgroup."""
    from course_utils.sandbox import cgroups
    own = tmp_path / "grader"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    (own / "cgroup.subtree_control").write_text("cpuset memory pids\n")
    monkeypatch.setattr(cgroups, "_own", lambda root: {"": own})
    monkeypatch.setattr(cgroups, "_v2_parent", None)
    # the CPU's share: the grader hands cpu down to its jobs (a folder keeps the last write; the kernel lists all)
    assert cgroups._v2_job_parent(own) == own and (own / "cgroup.subtree_control").read_text() == "+cpu"
    (own / "cgroup.subtree_control").write_text("cpuset cpu memory pids\n")
    cg = cgroups.JobCgroup.create(64, 16, root=tmp_path)
    d = cg.dirs["memory"]
    assert cg.kind == "cgroup v2" and cg.dirs["pids"] == d and d.parent == own
    assert [(d / f).read_text() for f in ("memory.max", "pids.max", "memory.oom.group")] == [str(64 * 2 ** 20),
                                                                                           "16", "1"]
    assert not (d / "memory.swap.max").exists() and cg.procs == [str(d / "cgroup.procs")]
    assert cg.dirs["cpu"] == d and (d / "cpu.weight").read_text() == str(cgroups.CPU_WEIGHT_V2)   # each the same
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n")
    (d / "memory.peak").write_text(str(48 * 2 ** 20 + 2 ** 19))
    assert cg.oom_kills() == 2 and cg.peak_mb() == 48.5


def test_a_v1_job_cgroup_gets_its_limits_in_each_hierarchy(tmp_path, monkeypatch):
    """cgroup v1: one folder per controller, memory.limit_in_bytes always, memsw only where swap accounting is on
    (the file exists), pids.max; the OOM count comes from memory.oom_control."""
    from course_utils.sandbox import cgroups
    own = {c: tmp_path / c / "grader" for c in ("memory", "pids", "cpu")}
    for d in own.values():
        d.mkdir(parents=True)
    monkeypatch.setattr(cgroups, "_own", lambda root: own)
    cg = cgroups.JobCgroup.create(32, 8, root=tmp_path)
    mem, pids = cg.dirs["memory"], cg.dirs["pids"]
    assert cg.kind == "cgroup v1" and mem.parent == own["memory"] and pids.parent == own["pids"]
    assert (mem / "memory.limit_in_bytes").read_text() == str(32 * 2 ** 20) and (pids / "pids.max").read_text() == "8"
    assert not (mem / "memory.memsw.limit_in_bytes").exists()
    assert cg.dirs["cpu"].parent == own["cpu"] and (cg.dirs["cpu"] / "cpu.shares").read_text() == "1024"
    assert len(cg.procs) == 3           # the runner joins all three hierarchies
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert cg.oom_kills() == 3
