"""A pre-imported interpreter that forks one confined child per job: the grader's fast path (``pool.py``).

Started once per grading run and per worker as ``python -I course_utils/sandbox/zygote.py FD``: it imports
torch, numpy, matplotlib (Agg) and IPython, then (once the grader says where it is) the kernel's copy of
``course_utils``, first on its path; it starts no thread pool and runs no torch op, and then only waits on
FD, a unix socket to the grader.
It never runs a student's code, never reads SOURCE, and holds no descriptor but that socket.

For each job the grader sends the job's folder, the kernel's environment and three descriptors it opened
(log, runner output, harvest channel). The zygote forks the job's runner R and reports its pid; R makes its
own process group, closes the socket, and does exactly what ``runner.py`` does before a kernel starts
(``runner._confine``: the job's cgroups, rlimits, namespaces with a fork to become process 1, a fresh /proc, a
tmpfs box, no capabilities, Landlock). Process 1 of the job then forks the *kernel* K, which closes the
grader's descriptors, points its stdout and stderr at /dev/null and runs the notebook's cells one by one
in an IPython ``InteractiveShell``, reporting each cell's status on a pipe. Process 1 keeps the clock
(per-cell timeout: SIGINT, i.e. ``KeyboardInterrupt``, then SIGKILL after a grace period), writes the log
and copies each harvest file to the harvest channel right after its cell, as ``runner.py`` does with nbclient.

So the layers are those of ``runner.py``, with a fork where it had an exec: the kernel's process holds none of
the grader's descriptors (it can lie about a cell's status, as a Jupyter kernel can in its replies: a cell that
writes "finished" records for itself and the cells after it stretches the per-cell limit over theirs, so the
job's own timeout, kept by the grader, is the bound that holds; docs/grading.md, "Limits"; and the harvest
files are its own anyway), process 1 is out of its reach (a pid namespace's init ignores its
signals), and the zygote is outside the job's pid namespace and Landlock domain. The zygote is a child
subreaper: after each job it kills whatever descendant is left (a process that left the group where no pid
namespace holds), then reports R's exit status to the grader.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import select
import signal
import socket
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and sys.path[0] == _HERE:
    del sys.path[0]     # its siblings must not shadow real modules
_spec = importlib.util.spec_from_file_location("course_grade_runner", os.path.join(_HERE, "runner.py"))
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

PRELOAD = ["numpy", "torch", "matplotlib", "matplotlib.pyplot", "IPython", "IPython.core.interactiveshell",
           "IPython.display", "matplotlib_inline.backend_inline"]
PRELOAD_PACKAGE = ["course_utils", "course_utils.checks"]      # the kernel's copy, once the grader has built it
GRACE_S = 10            # after an interrupt, how long a cell may take to stop before its kernel is killed
MAX_LINE = 8192         # bytes of one status line from the kernel
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36


def preload(names: list[str], pythonpath: str = "") -> list[str]:
    """Import what every kernel imports; returns the modules that failed. No thread pool is started."""
    if pythonpath:
        sys.path[:0] = [p for p in pythonpath.split(os.pathsep) if p]
    failed = []
    for name in names:
        try:
            __import__(name)
        except Exception as err:  # noqa: BLE001 - the kernel then imports it itself, as before
            failed.append(f"{name}: {type(err).__name__}")
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    return failed


# ------------------------------------------------------------------ the kernel (K): runs the cells
def _kernel(cells: list[dict], w: int) -> None:
    """Run each code cell in an InteractiveShell; one JSON line per cell on ``w``. Never returns."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)     # PR_SET_DUMPABLE 1, as an exec'd kernel is (process 1 is not)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)       # outputs are discarded, as the runner discards the Jupyter kernel's
    os.close(null)
    import random
    import tempfile
    tempfile.tempdir = None     # TMPDIR is the job's now
    random.seed()               # fresh seeds, as a new process has (the zygote's state is every child's)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    sys.path.insert(0, "")      # the notebook's folder, as in a Jupyter kernel
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config
    config = Config({"HistoryManager": {"hist_file": ":memory:"}, "InteractiveShell": {"colors": "nocolor"}})

    class Shell(InteractiveShell):
        def enable_gui(self, gui=None):     # `%matplotlib inline`: no event loop to start, as in ipykernel
            pass

    shell = Shell.instance(config=config)
    shell.display_formatter.active_types = ["text/plain"]      # nothing is shown: no PNG is rendered
    dumps, write, exit_now = json.dumps, os.write, os._exit     # ours, whatever a cell patches later

    def text(value, limit: int) -> str:
        try:
            return str(value)[:limit]
        except BaseException:  # noqa: BLE001 - an exception whose __str__ raises
            return "(unprintable)"

    def send(record: dict) -> None:
        data = (dumps(record) + "\n").encode()
        while True:
            try:
                write(w, data)
                return
            except KeyboardInterrupt:       # a late interrupt: the record is sent anyway (a duplicate is ignored)
                continue
            except OSError:
                exit_now(3)

    for i, cell in enumerate(cells):
        record = {"index": i, "status": "ok"}
        source = cell.get("source", "")
        try:
            result = shell.run_cell("".join(source) if isinstance(source, list) else source, store_history=True)
            err = result.error_in_exec or result.error_before_exec
            if err is not None:
                record.update(status="error", ename=type(err).__name__, evalue=text(err, 300))
        except BaseException as err:  # noqa: BLE001 - an interrupt between two statements of ours
            record.update(status="error", ename=type(err).__name__, evalue=text(err, 300))
        try:
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close("all")    # as the inline backend does after each cell
        except BaseException:  # noqa: BLE001
            pass
        record["ename"] = text(record.get("ename", ""), 200)
        record["evalue"] = text(record.get("evalue", ""), 300)
        send(record)
    exit_now(0)


# ------------------------------------------------------------------ process 1 of the job: the clock, the log
def _supervise(job: dict, cells: list[dict], log) -> None:
    """Fork the kernel, time its cells, log them, forward the harvest files. Returns when the notebook ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir(os.path.join(job["box"], "work"))      # on the tmpfs now mounted there
    r, w = os.pipe()
    kid = os.fork()
    if kid == 0:
        try:
            os.close(r)
            for fd in (job["log_fd"], job["harvest_fd"]):
                os.close(fd)
            _kernel(cells, w)
        finally:
            os._exit(4)
    os.close(w)

    def timeout_of(i: int) -> float:
        role = cells[i].get("metadata", {}).get("course_grade", {}).get("role")
        return job["setup_timeout"] if role == "prelude" else job["cell_timeout"]

    i, buf, interrupted, gone = 0, b"", False, None
    started = time.monotonic()
    deadline = started + timeout_of(0) if cells else 0
    if cells:
        log(running=0)
    while i < len(cells):
        now = time.monotonic()
        if now >= deadline:
            if interrupted:     # the cell ignored the interrupt
                _signal(kid, signal.SIGKILL, gone)
                log(cell={"index": i, "status": "error", "seconds": round(now - started, 2),
                          "ename": "CellTimeoutError", "evalue": f"the cell ran past {job['cell_timeout']} s"})
                log(dead=f"the kernel did not stop {GRACE_S} s after an interrupt and was killed")
                break
            _signal(kid, signal.SIGINT, gone)
            interrupted, deadline = True, now + GRACE_S
        ready, _, _ = select.select([r], [], [], max(0.0, min(deadline - now, 1.0)))
        while True:         # reap: the kernel, and any orphan of this pid namespace
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == kid:
                gone = status
        data = os.read(r, 65536) if ready else b""
        if ready and not data:      # the kernel died, or closed its pipe
            _signal(kid, signal.SIGKILL, gone)
            code = os.waitstatus_to_exitcode(gone) if gone is not None else "unknown"
            log(dead=f"the kernel died (exit code {code})")
            break
        buf = (buf + data)[-4 * MAX_LINE:]
        *lines, buf = buf.split(b"\n")
        for line in lines:
            try:
                record = json.loads(line[:MAX_LINE])
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("index") != i:
                continue
            entry = {"index": i, "status": str(record.get("status", "unknown"))[:20],
                     "seconds": round(time.monotonic() - started, 2)}
            if interrupted:
                entry.update(status="error", ename="CellTimeoutError",
                             evalue=f"the cell ran past {job['cell_timeout']} s")
            elif entry["status"] == "error":
                entry["ename"] = str(record.get("ename", ""))[:200]
                entry["evalue"] = str(record.get("evalue", ""))[:300]
            meta = cells[i].get("metadata", {}).get("course_grade", {})
            if meta.get("role") == "harvest" and meta.get("file"):
                runner.forward_harvest(job["box"], meta["file"], job["harvest_fd"], job["max_harvest_bytes"])
            log(cell=entry)
            i += 1
            if i < len(cells):
                started, interrupted = time.monotonic(), False
                deadline = started + timeout_of(i)
                log(running=i)
    else:
        log(finished=True)
    _signal(kid, signal.SIGKILL, gone)    # process 1's exit kills the namespace; without one, this does


def _signal(pid: int, sig: int, reaped) -> None:
    """Signal the kernel unless it was reaped (its pid may then belong to another process); it may also
    have died since the last reap, which is no error."""
    if reaped is not None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ the job's runner (R), forked per job
def _run_job(request: dict, fds: list[int], control: socket.socket) -> None:
    """In the forked child: confine, then supervise the notebook. Never returns."""
    code = 1
    try:
        control.close()     # the zygote's channel to the grader: never in a job
        os.setpgid(0, 0)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        log_fd, out_fd, harvest_fd = fds
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        for fd in (null, out_fd):
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        jobdir = request["jobdir"]
        with open(os.path.join(jobdir, "job.json"), "rb") as f:
            job = json.loads(f.read(1 << 20))
        with open(os.path.join(jobdir, "run.ipynb"), "rb") as f:
            cells = [c for c in json.loads(f.read(64 << 20))["cells"]]
        os.chdir(os.path.join(job["box"], "work"))
        job.update(log_fd=log_fd, harvest_fd=harvest_fd)
        log = runner.Log(log_fd)
        try:
            runner._confine(job, log)   # becomes process 1 of a new pid namespace where one can be made
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception as err:  # noqa: BLE001 - record why; the grader scores nothing that did not run
            log(dead=f"the sandbox could not be set up ({type(err).__name__}: {str(err)[:200]})")
            os._exit(1)
        try:
            _supervise(job, cells, log)
        except Exception as err:  # noqa: BLE001 - record and stop; the grader scores what ran
            log(dead=f"{type(err).__name__}: {str(err)[:300]}")
        code = 0
    except BaseException:  # noqa: BLE001 - before the log was set up: the grader quotes the runner's output
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _children() -> list[int]:
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return pids


def _kill_descendants() -> None:
    """SIGKILL every process left under the zygote (it is their subreaper), until none is left."""
    for _ in range(200):
        left = _children()
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def serve(control: socket.socket) -> None:
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
        except OSError:
            return
        if not msg:
            return      # the grader is gone
        request = json.loads(msg)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"error": "expected 3 descriptors"}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            _run_job(request, fds, control)
        try:
            os.setpgid(pid, pid)    # the grader kills this group: it must exist before the grader knows the pid
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"pid": pid}).encode())
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        _kill_descendants()
        control.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)     # dies with the grader
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    failed = preload(PRELOAD)
    msg = control.recv(1 << 16)         # the grader has built the kernel's copy of course_utils: where it is
    if not msg:
        return 0
    failed += preload(PRELOAD_PACKAGE, json.loads(msg).get("pythonpath") or "")
    control.send(json.dumps({"ready": os.getpid(), "failed": failed,
                             "threads": len(os.listdir("/proc/self/task"))}).encode())
    serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
