"""The parent half of the sandbox: make a job's folder, start the runner, bound it, kill it, read back.

A job's folder (``tempfile.mkdtemp``, mode 0700) holds the grader's private files (``job.json``, ``run.ipynb``,
the runner's log, its output, the harvest channel) and ``box/``, the only place the sandbox may write
(``work/`` is the kernel's working folder and HOME; harvest cells write to ``harvest/``). The grader never
reads a path the sandbox could have changed: the log, the runner's output and the harvest channel are files
it opened itself and handed over as descriptors; the runner copies each harvest file into the channel right
after its cell (without following links, bounded), and the grader reads the channel with bounds.

While the job runs, the grader watches its wall clock; where ``box/`` is not a tmpfs of the disk limit's size
(no mount namespace), it polls the size of ``box/``; where no cgroup bounds the job's memory, it polls the
memory of the runner and its descendants (PSS). At the end, in
every case, it kills the runner's process group, every process left in the job's cgroups, and any process
that escaped both but kept the job's token in its environment; then removes the cgroups and the folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import site
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .cgroups import JobCgroup

RUNNER = Path(__file__).resolve().with_name("runner.py")
NO_RECORD = "the sandbox's runner ended without a record"     # Outcome.dead of a runner that did not say how
MAX_LOG_BYTES = 4 * 2 ** 20
MAX_BOX_ENTRIES = 20_000
# what the kernel may read of /proc when it cannot have a /proc of its own (no process directory among them)
PROC_FILES = ["/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/proc/uptime", "/proc/version",
              "/proc/filesystems", "/proc/sys/kernel", "/proc/sys/vm"]
# devices and /sys: only these (root owns the disks' device files, and keeps its owner rights in the sandbox)
DEVICES = ["/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]
SYS = ["/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/fs/cgroup"]
_O_SAFE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnsafeFile(OSError):
    """A file the grader refuses to read: a link, a FIFO, a device, a folder, too large."""


def over_limit(size: int, limit: int) -> str:
    """"20.0 MB, over the limit of 16 MB"; in bytes where MB to one decimal would read as the limit (a file of
    16 MB and 1 byte was "16.0 MB, over the limit of 16 MB")."""
    shown, cap = f"{size / 2 ** 20:.1f}", f"{limit / 2 ** 20:g}"
    if float(shown) <= limit / 2 ** 20:
        return f"{size:,} bytes, over the limit of {cap} MB ({limit:,} bytes)"
    return f"{shown} MB, over the limit of {cap} MB"


def read_regular(name: str | os.PathLike, max_bytes: int, *, dir_fd: int | None = None,
                 single_link: bool = False) -> bytes:
    """The bytes of a regular file: never follows a symlink (last component), never blocks, reads <= max_bytes."""
    try:
        fd = os.open(name, _O_SAFE, dir_fd=dir_fd)
    except OSError as err:
        if err.errno == 40:     # ELOOP: O_NOFOLLOW met a symbolic link
            raise UnsafeFile(err.errno, "a symbolic link, not a file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(0, "not a regular file (a FIFO, a device or a folder)")
        if single_link and st.st_nlink != 1:
            raise UnsafeFile(0, "a hard link to another file")
        if st.st_size > max_bytes:
            raise UnsafeFile(0, f"too large ({over_limit(st.st_size, max_bytes)})")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(2 ** 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UnsafeFile(0, f"too large (over {max_bytes / 2 ** 20:g} MB)")
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass
class Limits:
    cell_timeout: float = 120
    timeout: float = 900            # wall clock of a whole submission
    memory_mb: int = 4096           # the whole job (cgroup, else polled sum), and each process (RLIMIT_DATA)
    disk_mb: int = 1024             # what the job may write in its folder
    max_processes: int = 256        # processes and threads of the whole job
    setup_timeout: float = 600      # the grader's prelude (imports)


@dataclass
class Outcome:
    """What the runner reported, and what the grader saw."""
    cells: list[dict] = field(default_factory=list)
    running: int | None = None
    finished: bool = False
    dead: str | None = None
    timed_out: bool = False
    stopped: str | None = None      # the grader stopped the job (disk limit)
    seconds: float = 0.0
    exit_status: int | None = None  # the runner's (negative: the signal that ended it)
    protections: dict = field(default_factory=dict)


# ------------------------------------------------------------------ what the kernel may read
@lru_cache(maxsize=1)
def _world_readable_etc() -> tuple[str, ...]:
    """/etc, less what only its owner may read (/etc/shadow, private keys): root keeps owner rights in the box."""
    def readable(st) -> bool:
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        return st.st_mode & need == need

    def walk(path: str, depth: int) -> tuple[list[str], bool]:
        """(rules for path, whether path itself could be one rule)."""
        try:
            entries = list(os.scandir(path))
        except OSError:
            return [], False
        rules, whole = [], True
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                whole = False
                continue
            if stat.S_ISLNK(st.st_mode):
                rules.append(e.path)        # Landlock resolves it: the target must be allowed on its own
            elif not readable(st):
                whole = False
            elif stat.S_ISDIR(st.st_mode) and depth < 6:
                sub, sub_whole = walk(e.path, depth + 1)
                rules += [e.path] if sub_whole else sub
                whole = whole and sub_whole
            else:
                rules.append(e.path)
        return rules, whole

    rules, whole = walk("/etc", 0)
    return ("/etc",) if whole else tuple(rules)


def system_read_only(extra: list[str] = (), hide: list[str] = ()) -> list[str]:
    """Read-only paths of a sandbox: the system, Python, its packages (less ``hide``), and ``extra``."""
    paths = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", *DEVICES, *SYS, *_world_readable_etc(),
             sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    hidden = {os.path.realpath(h) for h in hide}
    stdlib = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib")}
    sites = set(site.getsitepackages()) | {p for p in sys.path if os.path.basename(p) in ("site-packages",
                                                                                         "dist-packages")}
    paths += [p for p in stdlib if p]
    for sp in sorted(sites):
        real = os.path.realpath(sp)
        if any(h == real or h.startswith(real + os.sep) for h in hidden):   # list it, less the hidden entries
            try:
                paths += [e.path for e in os.scandir(real) if os.path.realpath(e.path) not in hidden]
            except OSError:
                pass
        else:
            paths.append(sp)
    paths += list(extra)
    out = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    # sys.prefix may hold what is hidden (a package installed in the virtual environment): drop prefixes of it
    return [p for p in out if not any(h.startswith(p + os.sep) or h == p for h in hidden)]


def child_env(box: Path, token: str, extra: dict | None = None) -> dict:
    """The kernel's environment: none of the instructor's variables except the few it needs."""
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "COURSE_DATA_DIR", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(box / "work"), TMPDIR=str(box / "tmp"), JUPYTER_RUNTIME_DIR=str(box / "runtime"),
               JUPYTER_CONFIG_DIR=str(box / "jupyter"), JUPYTER_DATA_DIR=str(box / "jupyter"),
               IPYTHONDIR=str(box / "ipython"), MPLCONFIGDIR=str(box / "mpl"), MPLBACKEND="Agg", USER="student",
               LOGNAME="student", PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYDEVD_DISABLE_FILE_VALIDATION="1", COURSE_GRADE_JOB=token,
               COURSE_QUICK="1")    # quick mode: a worksheet's training cells are short; the checks are the same
    env.update(extra or {})
    return env


# ------------------------------------------------------------------ one job
class Job:
    """One submission's sandbox. Use as a context manager: ``close`` kills and removes everything, always."""

    def __init__(self, limits: Limits, *, read_only: list[str], env: dict | None = None,
                 mpl_cache: str | None = None, landlock: bool = True, namespaces: bool = True,
                 max_harvest_bytes: int = 16 * 2 ** 20, cancel: threading.Event | None = None):
        self.limits, self.read_only, self.extra_env = limits, read_only, env or {}
        self.cancel = cancel        # set by the grader when it is interrupted: the job stops at its next poll
        self.landlock, self.namespaces = landlock, namespaces
        self.dir = Path(tempfile.mkdtemp(prefix="course-grade-"))
        self.fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.box = self.dir / "box"
        for sub in ("", "work", "tmp", "runtime", "jupyter", "ipython", "mpl", "harvest", "cases"):
            (self.box / sub).mkdir(mode=0o700)
        if mpl_cache:
            for f in Path(mpl_cache).glob("*.json"):
                shutil.copyfile(f, self.box / "mpl" / f.name)
        self.cgroup: JobCgroup | None = None
        self.token = uuid.uuid4().hex
        self.max_harvest = max_harvest_bytes
        self.harvest: dict[str, tuple[int, bytes]] = {}
        self.box_tmpfs: bool | None = None

    harvest_dir = property(lambda self: self.box / "harvest")

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _private(self, name: str) -> int:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd)

    def run(self, run_nb: dict, file_name: str, data: bytes, inputs: dict[str, bytes] | None = None,
            pool=None) -> Outcome:
        """Execute ``run_nb`` to the end or a limit. The student's file ``data`` lies in ``box/work/file_name``,
        each of ``inputs`` (name -> bytes) in ``box/cases/``. With ``pool`` (``pool.Pool``), a pre-imported
        zygote forks the runner and the cells run in an IPython shell; else a new runner starts nbclient."""
        lim = self.limits
        (self.box / "work" / file_name).write_bytes(data)
        for name, value in (inputs or {}).items():
            (self.box / "cases" / name).write_bytes(value)
        (self.dir / "run.ipynb").write_text(json.dumps(run_nb))
        log_fd, out_fd, harvest_fd = (self._private(n) for n in ("log.jsonl", "runner.out", "harvest.frames"))
        self.cgroup = JobCgroup.create(lim.memory_mb, lim.max_processes)
        job = {"box": str(self.box), "log_fd": log_fd, "harvest_fd": harvest_fd,
               "max_harvest_bytes": self.max_harvest, "memory_mb": lim.memory_mb, "file_mb": lim.disk_mb,
               "cpu_s": int(lim.timeout * 2 + 60), "cell_timeout": lim.cell_timeout,
               "setup_timeout": max(lim.setup_timeout, lim.cell_timeout), "nproc": lim.max_processes,
               "read_only": self.read_only, "proc_files": PROC_FILES,
               "cgroup_procs": self.cgroup.procs if self.cgroup else [], "landlock": self.landlock,
               "namespaces": self.namespaces}
        (self.dir / "job.json").write_text(json.dumps(job))
        outcome = Outcome()
        start = time.monotonic()
        try:
            env = child_env(self.box, self.token, self.extra_env)
            if pool is not None:
                with pool.acquire() as zygote:
                    proc = zygote.start(str(self.dir), env, (log_fd, out_fd, harvest_fd))
                    start = time.monotonic()
                    try:
                        self._watch(proc, outcome, start)
                    finally:
                        self._kill(proc)
            else:
                proc = subprocess.Popen([sys.executable, "-I", str(RUNNER), str(self.dir)], cwd=self.box / "work",
                                        env=env, stdin=subprocess.DEVNULL, stdout=out_fd, stderr=out_fd,
                                        start_new_session=True, pass_fds=(log_fd, harvest_fd))
                try:
                    self._watch(proc, outcome, start)
                finally:
                    self._kill(proc)
            outcome.exit_status = proc.returncode     # (set by _kill's wait, on both paths)
            outcome.seconds = time.monotonic() - start
            self._read_log(log_fd, out_fd, outcome)
            if not (outcome.finished or outcome.dead or outcome.timed_out or outcome.stopped):
                # the runner itself ended without its last record: killed, or aborted (a neighbour that spent the
                # user's epoll watches made zmq abort in it; the fifth red team of 2026-12-07)
                outcome.dead = f"{NO_RECORD} (exit status {outcome.exit_status})"
            self.harvest = read_frames(harvest_fd, self.max_harvest * 64)
        finally:
            for fd in (log_fd, out_fd, harvest_fd):
                os.close(fd)
        return outcome

    def _watch(self, proc: subprocess.Popen, outcome: Outcome, start: float) -> None:
        """Wait for the runner; stop it at the wall-clock limit or when its folder outgrows the disk limit."""
        polled = self.cgroup is None or "memory" not in self.cgroup.dirs      # no cgroup: poll the job's memory
        if polled:      # said before the first poll: a submission done in 0.3 s reported a weaker protection
            outcome.protections["memory_polled"] = can_poll_memory()
        while True:
            try:
                proc.wait(timeout=0.5)
                return
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - start > self.limits.timeout:
                outcome.timed_out = True
                return
            if self.cancel is not None and self.cancel.is_set():
                outcome.stopped = "the grader was interrupted"
                return
            if polled:
                used = job_memory(proc.pid)
                if used is not None and used > self.limits.memory_mb * 2 ** 20:
                    outcome.stopped = (f"its processes together used more than the memory limit of "
                                       f"{self.limits.memory_mb} MB")
                    return
            if self.box_tmpfs is None:      # the runner's first record says whether BOX is a tmpfs of the limit
                self.box_tmpfs = self._peek_tmpfs()
            if self.box_tmpfs:
                continue
            used, entries = box_usage(self.box, MAX_BOX_ENTRIES)
            if used > self.limits.disk_mb * 2 ** 20 or entries >= MAX_BOX_ENTRIES:
                outcome.stopped = (f"it wrote more than the disk limit of {self.limits.disk_mb} MB "
                                   f"({entries} files) in its folder")
                return

    def _kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the runner's group, the job's cgroups, and processes that escaped both with our token."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup:
            self.cgroup.kill()
        proc.wait()
        if self.cgroup and "pids" in self.cgroup.dirs:
            return          # every process of the job was in it
        try:
            import psutil
        except ImportError:
            return
        for p in psutil.process_iter(["pid"]):
            try:
                if p.pid != os.getpid() and p.environ().get("COURSE_GRADE_JOB") == self.token:
                    p.kill()
            except (psutil.Error, OSError):
                continue

    def _read_log(self, log_fd: int, out_fd: int, outcome: Outcome) -> None:
        os.lseek(log_fd, 0, os.SEEK_SET)
        text = os.read(log_fd, MAX_LOG_BYTES).decode("utf-8", "replace")
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("cell"), dict):
                outcome.cells.append(event["cell"])
            if "running" in event:
                outcome.running = event["running"] if isinstance(event["running"], int) else None
            if event.get("finished") is True:
                outcome.finished = True
            if isinstance(event.get("dead"), str):
                outcome.dead = event["dead"][:400]
            if isinstance(event.get("protections"), dict) and "namespaces" not in outcome.protections:
                outcome.protections.update(event["protections"])   # the first record: before any student code
        if outcome.cells and outcome.running == outcome.cells[-1].get("index"):
            outcome.running = None
        if "namespaces" not in outcome.protections and not outcome.dead:
            size = os.fstat(out_fd).st_size
            tail = os.pread(out_fd, 400, max(0, size - 400)).decode("utf-8", "replace")
            outcome.dead = f"the sandbox failed to start: {tail}"
        if self.cgroup:
            outcome.protections["cgroup"] = self.cgroup.kind
            outcome.protections["cgroup_limits"] = sorted(self.cgroup.dirs)
            outcome.protections["oom_kills"] = self.cgroup.oom_kills()
            outcome.protections["peak_memory_mb"] = self.cgroup.peak_mb()
        else:
            outcome.protections["cgroup"] = None

    def _peek_tmpfs(self) -> bool | None:
        try:
            first = read_regular("log.jsonl", MAX_LOG_BYTES, dir_fd=self.fd).split(b"\n", 1)[0]
            record = json.loads(first).get("protections") if first.endswith(b"}") else None
        except (OSError, ValueError, AttributeError):
            return None
        return bool(record.get("box_tmpfs")) if isinstance(record, dict) else None

    def read_harvest(self, name: str) -> bytes:
        """What the runner forwarded for harvest file NAME right after its cell; FileNotFoundError when nothing,
        UnsafeFile when the file was not a plain regular file (a link, a FIFO, too large)."""
        if name not in self.harvest:
            raise FileNotFoundError(name)
        status, data = self.harvest[name]
        if status != 0:
            raise UnsafeFile(0, data.decode("utf-8", "replace")[:200])
        return data

    def close(self, keep: bool = False) -> None:
        if self.cgroup:
            self.cgroup.kill()
            self.cgroup.remove()
        os.close(self.fd)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def read_frames(fd: int, max_bytes: int) -> dict[str, tuple[int, bytes]]:
    """The runner's harvest channel: name -> (status, data), the last frame of each name; stops at any damage."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, max_bytes), 0)
    frames, i = {}, 0
    while i + 6 <= len(data) and data[i:i + 4] == b"CGF1":
        n = data[i + 4]
        name = data[i + 5:i + 5 + n].decode("utf-8", "replace")
        j = i + 5 + n
        if j + 9 > len(data):
            break
        status, length = data[j], int.from_bytes(data[j + 1:j + 9], "little")
        if j + 9 + length > len(data):
            break
        frames[name] = (status, data[j + 9:j + 9 + length])
        i = j + 9 + length
    return frames


def can_poll_memory() -> bool:
    """Whether ``job_memory`` can measure (psutil is there), decided once per job, before its first poll."""
    import importlib.util
    return importlib.util.find_spec("psutil") is not None


def job_memory(pid: int) -> int | None:
    """Bytes of memory the runner ``pid`` and its descendants use (PSS: shared pages split between their
    users, shared memory included); None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    used = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            used += getattr(info, "pss", info.rss)
        except psutil.Error:
            continue
    return used


def box_usage(box: Path, max_entries: int) -> tuple[int, int]:
    """(bytes allocated, entries) under ``box``, never following links, counting at most ``max_entries``."""
    used, entries, stack = 0, 0, [str(box)]
    while stack and entries < max_entries:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    entries += 1
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    used += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(e.path)
                    if entries >= max_entries:
                        break
        except OSError:
            continue
    return used, entries
