"""The grader's half of the fast path: one pre-imported interpreter (``zygote.py``) per grading worker.

Starting a Jupyter kernel and importing torch costs seconds of CPU per submission; a zygote pays it once per
run. ``Pool(n, ...)`` starts n zygotes at once (in parallel, in the background); ``Pool.acquire()`` lends one
to a job (``jobs.Job.run(..., pool=...)``), which sends it the job's folder, the kernel's environment and the
descriptors of the log, the runner's output and the harvest channel (``SCM_RIGHTS``). The zygote forks the
job's runner and answers its pid; from then on the grader treats that pid as it treats the runner it starts
itself on the slow path (wall clock, polls, ``killpg``, the job's cgroups), and the zygote answers the exit
status once the runner has ended and every process it left is killed.

A zygote that died or stopped answering is replaced on the next ``acquire``; the job that met it raises
``PoolError`` (the grader reports a ``grader_error``, retried on the next run), never a student's fault.
"""
from __future__ import annotations

import json
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .cgroups import prepare as prepare_cgroups
from .jobs import child_env

ZYGOTE = Path(__file__).resolve().with_name("zygote.py")
READY_TIMEOUT_S = 600


class PoolError(RuntimeError):
    """The zygote could not take the job (it died, or never became ready)."""


class Zygote:
    def __init__(self, env: dict, cwd: str, err_path: str):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with open(err_path, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-I", str(ZYGOTE), str(theirs.fileno())],
                                         env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True, pass_fds=(theirs.fileno(),))
        theirs.close()
        self.sock, self.err_path = ours, err_path
        self.info: dict | None = None
        self.told = False

    def package(self, pythonpath: str | None) -> None:
        """Tell the zygote where the kernel's copy of course_utils is (it imports it, then says it is ready)."""
        if not self.told:
            self.told = True
            try:
                self.sock.send(json.dumps({"pythonpath": pythonpath}).encode())
            except OSError:
                pass        # it died: ready() says so

    def _recv(self, timeout: float) -> dict | None:
        """The zygote's next message, None after ``timeout`` seconds; PoolError when it is gone."""
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return None
        data = self.sock.recv(1 << 16)
        if not data:
            raise PoolError(f"the zygote died ({self._tail()})")
        return json.loads(data)

    def _tail(self) -> str:
        try:
            return Path(self.err_path).read_bytes()[-400:].decode("utf-8", "replace")
        except OSError:
            return "no output"

    def ready(self) -> dict:
        if not self.told:
            raise PoolError("the zygote was never told where the kernel's course_utils is (Pool.package_ready)")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.info is None:
            msg = self._recv(deadline - time.monotonic())
            if msg is None:
                raise PoolError(f"the zygote was not ready after {READY_TIMEOUT_S} s")
            self.info = msg
        return self.info

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(self, jobdir: str, env: dict, fds: tuple[int, int, int]) -> "Started":
        self.ready()
        try:
            socket.send_fds(self.sock, [json.dumps({"jobdir": jobdir, "env": env}).encode()], list(fds))
            msg = self._recv(60)
            while msg is not None and "exit" in msg:      # the end of a job whose reader gave up: stale
                msg = self._recv(60)
        except OSError as err:
            raise PoolError(f"the zygote is unreachable ({err})") from err
        if not msg or "pid" not in msg:
            raise PoolError(f"the zygote did not start the job ({msg})")
        return Started(self, int(msg["pid"]))

    def close(self) -> None:
        self.sock.close()       # the zygote reads EOF and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Started:
    """The job's runner, forked by a zygote: ``pid`` and ``wait(timeout)`` as a ``subprocess.Popen`` has them."""

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = 3600 if deadline is None else deadline - time.monotonic()
            msg = self.zygote._recv(left)
            if msg is None:
                if deadline is not None:
                    raise subprocess.TimeoutExpired("zygote job", timeout)
                continue
            if "exit" in msg:
                self.returncode = int(msg["exit"])
        return self.returncode


class Pool:
    """n zygotes, started at once; ``acquire`` lends one (a context manager), replacing a dead one first.

    The zygotes import torch and the rest while the grader builds the kernel's copy of ``course_utils``;
    ``package_ready(pythonpath)`` then tells them where it is (at once when ``pythonpath`` is given here)."""

    def __init__(self, n: int, *, scratch: str | Path, pythonpath: str | None = None, mpl_cache: str | None = None,
                 package_ready: bool = True):
        prepare_cgroups()       # cgroup v2: the grader moves into its leaf before any zygote is started
        self.pythonpath, self.scratch = pythonpath, Path(scratch)
        self.is_ready = False
        home = self.scratch / "home"
        for sub in ("work", "tmp", "runtime", "jupyter", "ipython", "mpl"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        # the kernels' environment, without a job's token (each child gets its job's); matplotlib reads the
        # font cache the grader built once
        self.env = {k: v for k, v in child_env(home, "").items() if k != "COURSE_GRADE_JOB"}
        if mpl_cache:
            self.env["MPLCONFIGDIR"] = mpl_cache
        self._free: queue.Queue[Zygote] = queue.Queue()
        self._all: list[Zygote] = []
        self._lock = threading.Lock()
        self._count = 0
        for _ in range(n):
            self._free.put(self._spawn())
        if package_ready:
            self.package_ready(pythonpath)

    def package_ready(self, pythonpath: str | None) -> None:
        with self._lock:
            self.pythonpath, self.is_ready = pythonpath, True
            for z in self._all:
                z.package(pythonpath)

    def _spawn(self) -> Zygote:
        with self._lock:
            self._count += 1
            z = Zygote(self.env, str(self.scratch), str(self.scratch / f"zygote-{self._count}.err"))
            self._all.append(z)
            if self.is_ready:
                z.package(self.pythonpath)
        return z

    def acquire(self) -> "_Lease":
        return _Lease(self)

    def close(self) -> None:
        with self._lock:
            zygotes, self._all = self._all, []
        for z in zygotes:
            z.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Lease:
    def __init__(self, pool: Pool):
        self.pool = pool
        self.zygote: Zygote | None = None
        self.broken = False

    def __enter__(self) -> Zygote:
        z = self.pool._free.get()
        if not z.alive():
            self._retire(z)
            z = self.pool._spawn()
        self.zygote = z
        return z

    def _retire(self, z: Zygote) -> None:
        with self.pool._lock:
            if z in self.pool._all:
                self.pool._all.remove(z)
        z.close()

    def __exit__(self, exc_type, *exc) -> None:
        z = self.zygote
        if exc_type is not None or not z.alive():     # mid-job, its state is unknown: a fresh one
            self._retire(z)
            z = self.pool._spawn()
        self.pool._free.put(z)
