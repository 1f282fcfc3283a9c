"""Memory and process-count limits for one job as a whole, and its share of the CPU: a cgroup, where this machine
lets the grader make one.

RLIMIT_DATA bounds one process's private memory; it does not count shared memory (``mmap(MAP_SHARED |
MAP_ANONYMOUS)``, memfd, tmpfs), and a job may start many processes. A cgroup counts every page any process of
the job touches, and every process and thread. The ``cpu`` controller, where there is one, gives each job the
same weight as each other job graded at once, whatever its number of processes: without it the scheduler's
autogroups share the CPU by session, and a submission whose processes call ``setsid()`` (200 busy ones) took all
but a hundredth of a core from the classmate graded beside it, whose cells then ran past ``--cell-timeout`` (the
third red team, 2026-12-07: 7/7 became 0/7 and 5/7). Tried in this order:

- **cgroup v2** (``/sys/fs/cgroup`` unified, with the ``memory`` and ``pids`` controllers, and ``cpu`` where it is
  delegated too): job cgroups are made
  under the grader's own cgroup. v2 forbids processes in a cgroup whose controllers are handed to children, so
  the grader first moves itself into a leaf ``course-grade-<pid>`` beside them (once per grader process). This
  works as root, or in a cgroup delegated to the grader's user (``systemd-run --user --scope -p Delegate=yes``).
- **cgroup v1** (separate ``memory``, ``pids`` and ``cpu`` hierarchies), as root: job cgroups under the grader's
  own.
- otherwise none: ``create`` returns None and the result of each submission says so.

The runner joins the job's cgroups itself, before it starts anything (no race). At the end, ``kill`` sends
SIGKILL to every process left in them (``cgroup.kill`` on v2), and ``remove`` deletes them.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CPU_WEIGHT_V2 = 100     # each job's cpu.weight (v2's default): equal shares between the jobs graded at once
CPU_SHARES_V1 = 1024    # each job's cpu.shares (v1's default)
_v2_parent: Path | None = None      # where this grader process makes job cgroups (v2), once found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _own(root: Path) -> dict[str, Path]:
    """controller ("" for v2) -> this process's cgroup folder, from /proc/self/cgroup."""
    own = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].lstrip("/")
        if parts[1] == "":
            unified = root / "unified" if (root / "unified" / "cgroup.controllers").exists() else root
            own[""] = unified / rel
        for controller in parts[1].split(","):
            if controller in ("memory", "pids", "cpu"):
                own[controller] = root / controller / rel
    return own


def _v2_job_parent(own: Path) -> Path | None:
    """A v2 cgroup whose children may have memory and pids limits, or None."""
    global _v2_parent
    if _v2_parent is not None:
        return _v2_parent
    if not {"memory", "pids"} <= set(_read(own / "cgroup.controllers").split()):
        return None
    try:
        if not {"memory", "pids"} <= set(_read(own / "cgroup.subtree_control").split()):
            try:
                (own / "cgroup.subtree_control").write_text("+memory +pids")
            except OSError:     # EBUSY: we live in it; move into a leaf of our own, then try again
                leaf = own / f"course-grade-{os.getpid()}"
                leaf.mkdir(exist_ok=True)
                (leaf / "cgroup.procs").write_text(str(os.getpid()))
                (own / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None
    if "cpu" in _read(own / "cgroup.controllers").split() and "cpu" not in _read(
            own / "cgroup.subtree_control").split():
        try:        # the CPU's share: optional (a delegated cgroup may lack it); the protections say whether it held
            (own / "cgroup.subtree_control").write_text("+cpu")
        except OSError:
            pass
    _v2_parent = own
    return own


class JobCgroup:
    """The cgroups of one job: ``procs`` are the files the runner writes its pid to; ``kind`` says which held."""

    def __init__(self, kind: str, dirs: dict[str, Path]):
        self.kind, self.dirs = kind, dirs          # dirs: "memory"/"pids"/"cpu" -> folder (the same folder on v2)

    @property
    def procs(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    @classmethod
    def create(cls, memory_mb: int, max_processes: int, root: Path = ROOT) -> "JobCgroup | None":
        name = f"course-grade-job-{uuid.uuid4().hex[:12]}"
        own = _own(root)
        if "" in own and (parent := _v2_job_parent(own[""])) is not None:
            d = parent / name
            try:
                d.mkdir()
                (d / "memory.max").write_text(str(memory_mb * 2 ** 20))
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                (d / "memory.oom.group").write_text("1")
                (d / "pids.max").write_text(str(max_processes))
                dirs = {"memory": d, "pids": d}
                if "cpu" in _read(parent / "cgroup.subtree_control").split():
                    (d / "cpu.weight").write_text(str(CPU_WEIGHT_V2))   # as each other job's
                    dirs["cpu"] = d
                return cls("cgroup v2", dirs)
            except OSError:
                cls("", {"memory": d}).remove()
        dirs = {}
        for controller, files in (("memory", [("memory.limit_in_bytes", memory_mb * 2 ** 20),
                                              ("memory.memsw.limit_in_bytes", memory_mb * 2 ** 20)]),
                                  ("pids", [("pids.max", max_processes)]),
                                  ("cpu", [("cpu.shares", CPU_SHARES_V1)])):
            if controller not in own:
                continue
            d = own[controller] / name
            try:
                d.mkdir()
                dirs[controller] = d
                for i, (f, value) in enumerate(files):
                    if i == 0 or (d / f).exists():
                        (d / f).write_text(str(value))
            except OSError:
                if controller in dirs:
                    cls("", {controller: dirs.pop(controller)}).remove()
        return cls("cgroup v1", dirs) if dirs else None

    def pids(self) -> set[int]:
        found = set()
        for d in self.dirs.values():
            found |= {int(p) for p in _read(d / "cgroup.procs").split() if p.isdigit()}
        return found

    def kill(self, wait_s: float = 5.0) -> None:
        """SIGKILL every process in the job's cgroups, and wait (a bounded time) until they are gone."""
        for d in set(self.dirs.values()):
            try:
                (d / "cgroup.kill").write_text("1")
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)

    def oom_kills(self) -> int:
        """How many processes the memory limit killed."""
        d = self.dirs.get("memory")
        if d is None:
            return 0
        for f in ("memory.events", "memory.oom_control"):
            for line in _read(d / f).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
        return 0

    def peak_mb(self) -> float | None:
        d = self.dirs.get("memory")
        for f in ("memory.peak", "memory.max_usage_in_bytes"):
            value = _read(d / f).strip() if d else ""
            if value.isdigit():
                return round(int(value) / 2 ** 20, 1)
        return None

    def remove(self) -> None:
        for d in set(self.dirs.values()):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def prepare(root: Path = ROOT) -> None:
    """cgroup v2: move the grader into its leaf now, before it starts processes that outlive one job (the
    zygotes of ``pool.py``), which would otherwise stay in the cgroup whose controllers it hands down."""
    own = _own(root)
    if "" in own:
        _v2_job_parent(own[""])
