"""Run one student's notebook in a sandbox: the child process of ``course_utils.grade``.

The grader starts ``python -m course_utils.sandbox JOBDIR`` in a new session (its own process group), with
a scrubbed environment, cwd = JOBDIR/work and a wall-clock limit it enforces itself (``os.killpg``). This
module, running in that child, then

1. sets resource limits that the kernel inherits: RLIMIT_DATA (memory: private writable mappings, i.e.
   what ``malloc``/``torch.empty`` take; RLIMIT_AS would also count the ~3 GB of address space that merely
   importing torch reserves), RLIMIT_CPU, RLIMIT_FSIZE (largest file), RLIMIT_CORE = 0;
2. where the Linux kernel offers Landlock (5.13+), restricts the file system for itself and every
   descendant: read-only access to the system, Python and the course package; read-write access to
   JOBDIR only; nothing else (other students' files, the instructor's SOURCE, the submissions folder and
   the grader's output are invisible). From Landlock ABI 6 on, it also cannot signal processes outside
   the sandbox;
3. starts the Jupyter kernel INSIDE its own process group (jupyter_client would put it in a new session,
   out of reach of the grader's ``killpg``), and runs the notebook with nbclient: per-cell timeout,
   interrupt on timeout, errors allowed (the next TODO still runs), outputs discarded (a cell printing
   gigabytes cannot fill the grader's memory). After each cell it appends to JOBDIR/log.json what
   happened (ok, error with its name, timeout, kernel death).

Nothing here judges anything: points come only from the harvest files, judged by the grader.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

# ------------------------------------------------------------------ Landlock (linux/landlock.h)
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_V1 = (1 << 13) - 1            # execute ... make_sym
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The Landlock ABI version of the running Linux kernel, 0 when it is unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def restrict_filesystem(read_only: list[str], read_write: list[str]) -> int:
    """Allow only these paths (and what lies beneath) to this process and its descendants; returns the ABI.

    Irreversible. Returns 0 (and restricts nothing) where Landlock is unavailable.
    """
    abi = landlock_abi()
    if abi < 1:
        return 0
    libc = _libc()
    handled = _FS_ALL_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(handled, 0, (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for paths, rights in ((read_only, _READ), (read_write, handled)):
            for path in paths:
                if not path or not os.path.exists(path):
                    continue
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    allowed = rights if os.path.isdir(path) else rights & _FILE_RIGHTS & handled
                    rule = _PathBeneathAttr(allowed, fd)
                    if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                                    ctypes.c_uint32(0)) < 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
                finally:
                    os.close(fd)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def set_limits(memory_mb: int, cpu_s: int, file_mb: int = 512) -> None:
    """Resource limits for this process, inherited by the kernel it starts."""
    def lim(which, value):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    lim(resource.RLIMIT_DATA, memory_mb * 2 ** 20)
    lim(resource.RLIMIT_CPU, cpu_s)
    lim(resource.RLIMIT_FSIZE, file_mb * 2 ** 20)
    lim(resource.RLIMIT_CORE, 0)


# ------------------------------------------------------------------ running the notebook
def _keep_kernel_in_our_group() -> None:
    """jupyter_client starts kernels with start_new_session=True; keep ours in the sandbox's group instead.

    The provisioner then signals the kernel process itself (not its group, which is ours as well).
    """
    import jupyter_client.launcher as launcher
    from jupyter_client.provisioning import local_provisioner as lp

    popen = launcher.Popen

    def _popen(cmd, **kwargs):
        kwargs.pop("start_new_session", None)
        return popen(cmd, **kwargs)

    launcher.Popen = _popen
    launch = lp.LocalProvisioner.launch_kernel

    async def _launch(self, cmd, **kwargs):
        info = await launch(self, cmd, **kwargs)
        self.pgid = None
        return info

    lp.LocalProvisioner.launch_kernel = _launch


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def run(jobdir: Path) -> int:
    job = json.loads((jobdir / "job.json").read_text())
    set_limits(job["memory_mb"], job["cpu_s"])
    abi = restrict_filesystem(job["read_only"], [str(jobdir), "/dev/null"]) if job.get("landlock", True) else 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # interrupts of the kernel must not stop us
    _keep_kernel_in_our_group()

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    class _QuietClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # discard outputs: we only need the verdicts
            return None

    nb = nbformat.read(jobdir / "run.ipynb", as_version=4)
    log = {"landlock_abi": abi, "cells": [], "finished": False, "dead": None}
    log_path = jobdir / "log.json"
    _write_json(log_path, log)
    started = {}

    def on_start(cell, cell_index):
        started[cell_index] = time.monotonic()
        log["running"] = cell_index
        _write_json(log_path, log)

    def on_executed(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        entry = {"index": cell_index, "role": cell.metadata.get("course_grade", {}).get("role", "student"),
                 "grade_id": cell.metadata.get("course_grade", {}).get("grade_id"),
                 "status": content.get("status", "unknown"), "seconds": round(time.monotonic() -
                                                                               started.get(cell_index, 0), 2)}
        if content.get("status") == "error":
            entry["ename"] = str(content.get("ename", ""))[:200]
            entry["evalue"] = str(content.get("evalue", ""))[:300]
        log["cells"].append(entry)
        log["running"] = None
        _write_json(log_path, log)

    def timeout_of(cell):
        role = cell.metadata.get("course_grade", {}).get("role")
        return job["setup_timeout"] if role == "prelude" else job["cell_timeout"]

    client = _QuietClient(
        nb, timeout=job["cell_timeout"], timeout_func=timeout_of, interrupt_on_timeout=True, allow_errors=True,
        kernel_name="python3",
        startup_timeout=120, record_timing=False, store_widget_state=False,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran past {job['cell_timeout']} s",
                          "traceback": []},
        on_cell_start=on_start, on_cell_executed=on_executed,
        resources={"metadata": {"path": str(jobdir / "work")}})
    try:
        client.execute(env=dict(os.environ), cwd=str(jobdir / "work"))
        log["finished"] = True
    except DeadKernelError as err:
        log["dead"] = f"the kernel died ({err})"
    except Exception as err:  # noqa: BLE001 - record and stop; the grader scores what ran
        log["dead"] = f"{type(err).__name__}: {str(err)[:300]}"
    _write_json(log_path, log)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
