"""The child half of the sandbox: runs one job's notebook, confined. Started by ``jobs.Job.run`` as
``python -I course_utils/sandbox/runner.py JOBDIR`` (``python -m course_utils.sandbox JOBDIR`` works too, but
imports the package, hence torch, first). Self-contained: it imports nothing from ``course_utils``.

In this order, each step recorded in the log (what held, what did not, and why):

1. reads the job (``JOBDIR/job.json``, ``JOBDIR/run.ipynb``) while it still may, and joins the job's cgroups
   (memory and process count of the whole job);
2. resource limits the kernel inherits: RLIMIT_DATA (private memory of one process), RLIMIT_CPU, RLIMIT_FSIZE
   (largest file), RLIMIT_NOFILE, RLIMIT_CORE = 0; RLIMIT_NPROC right after step 3 (it then counts this job's
   processes only, where step 3 made a user namespace);
3. new namespaces (``unshare``; inside a user namespace where it is not root): pid (it forks and becomes
   process 1, so the kernel and every process it starts die with it), mount (a fresh ``/proc`` that shows
   only this job's processes; BOX on a tmpfs of the disk limit's size), network (no interface up: no TCP,
   UDP or DNS, not even localhost) and IPC (System V shared memory dies with the job);
4. no capabilities at all (bounding set included): root stays uid 0 but cannot load modules, mount, trace,
   raise limits or bypass file permissions (Landlock then grants only the files of /etc everyone may read);
5. Landlock (Linux 5.13+): read-only access to the system, Python and the packages the kernel imports;
   read-write access to BOX only, where it cannot make symlinks, FIFOs or devices; TCP bind and connect
   denied (ABI 4+); no signals to, nor abstract sockets of, processes outside the sandbox (ABI 6+); then a
   seccomp filter (x86_64 and aarch64): no namespace of its own, no keyring (``forbid_namespaces``);
6. runs the notebook with nbclient over unix sockets in BOX (not TCP): per-cell timeout, interrupt on
   timeout, errors allowed, outputs discarded. It appends one JSON line per event to the log, and right after
   each harvest cell, copies that cell's harvest file (read without following links, bounded) to the harvest
   channel: both are files the grader opened and passed as descriptors. The grader never reads a path the
   sandbox could have written; what a later cell does to a harvest file changes nothing.

Nothing here judges anything: the grader reads the harvest files and computes the verdicts.

On the grader's fast path (``zygote.py``, the default), a child forked from a pre-imported interpreter performs
steps 1 to 5 with this module's ``_confine``, then runs the cells in an IPython shell instead of step 6.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import stat
import sys
import time

if __name__ == "__main__" and sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]     # run as a script without -I: its siblings must not shadow real modules

# ------------------------------------------------------------------ Landlock (linux/landlock.h)
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_CHAR, _MAKE_FIFO, _MAKE_BLOCK, _MAKE_SYM = 1 << 6, 1 << 10, 1 << 11, 1 << 12
_ALL_V1 = (1 << 13) - 1
_REFER, _TRUNCATE = 1 << 13, 1 << 14
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2
_READ = _EXECUTE | _READ_FILE | _READ_DIR
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE
_NEVER_IN_BOX = _MAKE_CHAR | _MAKE_FIFO | _MAKE_BLOCK | _MAKE_SYM


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


def restrict(read_only: list[str], read_write: list[str]) -> dict:
    """Allow only these paths to this process and its descendants, deny TCP, scope signals. Irreversible.

    Returns what held: {"abi": N, "tcp_denied": bool, "scoped": bool}; abi 0 (nothing restricted) without Landlock.
    """
    abi = landlock_abi()
    if abi < 1:
        return {"abi": 0, "tcp_denied": False, "scoped": False}
    libc = _libc()
    handled = _ALL_V1 | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0      # no rule: every TCP bind and connect denied
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(handled, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for paths, rights in ((read_only, _READ), (read_write, handled & ~_NEVER_IN_BOX)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError as err:
                    if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):    # the machine's, not the path's:
                        raise       # the caller's to handle (a rule left out would leave the box without it)
                    continue        # missing, unreachable, a loop, a stale mount: no rule, so no access there
                try:
                    allowed = rights if os.path.isdir(path) else rights & _FILE_RIGHTS & handled
                    rule = _PathBeneathAttr(allowed, fd)
                    if libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                    ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
                finally:
                    os.close(fd)
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return {"abi": abi, "tcp_denied": bool(net), "scoped": bool(scoped)}


# ------------------------------------------------------------------ no namespaces of its own (seccomp)
# A process without capabilities may still unshare(CLONE_NEWUSER), and inside that user namespace make any other:
# the third red team (2026-12-07) held the uid's machine-wide quota of IPC namespaces that way, and every
# classmate graded meanwhile ran without pid, mount, network and IPC namespaces. After its own namespaces are
# made, the job refuses itself unshare and clone with a namespace flag, and setns (EPERM), and clone3, whose flags
# a filter cannot read (ENOSYS: glibc then uses clone, as under Docker's default profile).
# The kernel's keyrings as well (add_key, request_key, keyctl: EPERM, as under Docker's): root's user keyring is
# the grader's own, shared by every job and kept until reboot, and the fourth red team (2026-12-07) passed a
# classmate's answers through it from one run to a later one (a blank worksheet graded 8/8).
#            CLONE_NEWNS  NEWCGROUP    NEWUTS       NEWIPC       NEWUSER      NEWPID       NEWNET
_CLONE_NS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_NEWTIME = 0x00000080                   # unshare only: in clone's flags that byte is the exit signal
_SECCOMP_ARCH = {   # machine -> (AUDIT_ARCH_*, unshare, clone, clone3, setns, add_key, request_key, keyctl)
    "x86_64": (0xC000003E, 272, 56, 435, 308, 248, 249, 250),
    "aarch64": (0xC00000B7, 97, 220, 435, 268, 217, 218, 219),
}
_RET_ALLOW, _RET_ERRNO, _EPERM, _ENOSYS = 0x7FFF0000, 0x00050000, 1, 38


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def namespace_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """The classic BPF program of ``forbid_namespaces`` for ``machine`` (``os.uname().machine``): instructions
    (code, jt, jf, k), jumps relative to the next one; seccomp_data is nr (offset 0), arch (4), ip (8), args (16:
    the low half of args[0] on these little-endian machines)."""
    arch, unshare, clone, clone3, setns, add_key, request_key, keyctl = _SECCOMP_ARCH[machine]
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06     # BPF_LD|W|ABS, BPF_JMP|JEQ|K, JGE, JSET, BPF_RET|K
    return [
        (ld, 0, 0, 4),                          # 0: arch
        (jeq, 1, 0, arch),                      # 1: this machine's ABI -> 3
        (ret, 0, 0, _RET_ERRNO | _EPERM),       # 2: another ABI (x86_64's 32-bit entry): every call refused
        (ld, 0, 0, 0),                          # 3: nr
        (jge, 12, 0, 0x40000000),               # 4: x32 calls (their bit set) -> 17
        (jeq, 7, 0, unshare),                   # 5: -> 13
        (jeq, 8, 0, clone),                     # 6: -> 15
        (jeq, 10, 0, clone3),                   # 7: -> 18
        (jeq, 8, 0, setns),                     # 8: -> 17
        (jeq, 7, 0, add_key),                   # 9: -> 17
        (jeq, 6, 0, request_key),               # 10: -> 17
        (jeq, 5, 0, keyctl),                    # 11: -> 17
        (ret, 0, 0, _RET_ALLOW),                # 12: any other call
        (ld, 0, 0, 16),                         # 13: unshare's flags
        (jset, 2, 4, _CLONE_NS | _NEWTIME),     # 14: a namespace -> 17, else -> 19
        (ld, 0, 0, 16),                         # 15: clone's flags
        (jset, 0, 2, _CLONE_NS),                # 16: a namespace -> 17, else -> 19
        (ret, 0, 0, _RET_ERRNO | _EPERM),       # 17
        (ret, 0, 0, _RET_ERRNO | _ENOSYS),      # 18
        (ret, 0, 0, _RET_ALLOW),                # 19
    ]


def forbid_namespaces() -> bool:
    """Install ``namespace_filter`` on this process and all it starts (no undoing it); False where this machine's
    system calls are not in ``_SECCOMP_ARCH``. Sets no_new_privs, which a filter needs without CAP_SYS_ADMIN."""
    machine = os.uname().machine
    if machine not in _SECCOMP_ARCH:
        return False
    program = namespace_filter(machine)
    filters = (_SockFilter * len(program))(*(_SockFilter(*ins) for ins in program))
    fprog = _SockFprog(len(program), filters)
    libc = _libc()
    if libc.prctl(38, 1, 0, 0, 0) != 0:                       # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:      # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
    return True


# ------------------------------------------------------------------ namespaces and identity
_NEWNS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x20000000, 0x40000000
_NAMES = {_NEWNS: "mount", _NEWIPC: "ipc", _NEWUSER: "user", _NEWPID: "pid", _NEWNET: "network"}
_MS_REC, _MS_PRIVATE, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1 << 14, 1 << 18, 2, 4, 8


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_namespaces() -> list[str]:
    """unshare what this platform allows (a user namespace first where not root); returns the names held."""
    libc = _libc()
    uid, gid = os.geteuid(), os.getegid()
    full = _NEWNS | _NEWPID | _NEWNET | _NEWIPC
    tries = [full, full | _NEWUSER, _NEWNET | _NEWIPC, _NEWNET | _NEWIPC | _NEWUSER]
    for flags in tries if uid == 0 else [t | _NEWUSER for t in tries[::2]]:
        if libc.unshare(ctypes.c_int(flags)) != 0:
            continue
        if flags & _NEWUSER:    # map our own ids, nothing else: inside, we are who we were
            try:
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{uid} {uid} 1")
                _write("/proc/self/gid_map", f"{gid} {gid} 1")
            except OSError:
                pass
        return [name for bit, name in _NAMES.items() if flags & bit]
    return []


def become_process_one() -> None:
    """After a new pid namespace: fork; the child (process 1 there) returns, this process waits and exits.

    When process 1 ends, the Linux kernel kills every other process of the namespace (setsid cannot escape).
    """
    pid = os.fork()
    if pid == 0:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        except InterruptedError:
            continue


def private_proc() -> bool:
    """A /proc of our own (mount namespace + pid namespace): other processes of the machine are invisible."""
    libc = _libc()
    if libc.mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None) != 0:
        return False
    return libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV | _MS_NOEXEC), None) == 0


def box_on_tmpfs(box: str, size_mb: int) -> bool:
    """Mount a tmpfs of ``size_mb`` on BOX (in our mount namespace): a hard bound on what the job writes, charged
    to its memory cgroup, gone with the job. What the grader put in BOX is copied onto it first."""
    saved = {}
    for folder, _, files in os.walk(box):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path) and os.path.getsize(path) < 256 * 2 ** 20:
                with open(path, "rb") as f:
                    saved[os.path.relpath(path, box)] = f.read()
    folders = [os.path.relpath(folder, box) for folder, _, _ in os.walk(box)]
    size_mb += sum(len(d) for d in saved.values()) // 2 ** 20 + 1     # what the grader put there is not the job's
    options = f"size={size_mb}m,mode=0700,nr_inodes=20000".encode()
    if _libc().mount(b"tmpfs", box.encode(), b"tmpfs", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV), options) != 0:
        return False
    for rel in folders:
        os.makedirs(os.path.join(box, rel), mode=0o700, exist_ok=True)
    for rel, data in saved.items():
        with open(os.path.join(box, rel), "wb") as f:
            f.write(data)
    return True


def drop_privileges() -> str:
    """Drop every capability (bounding set included): root stays uid 0, but cannot load modules, mount, trace,
    change limits or bypass file permissions; in a user namespace, our capabilities there go too."""
    libc = _libc()
    who = "root without capabilities" if os.geteuid() == 0 else "the grader's user, without capabilities"
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)    # PR_CAPBSET_DROP: fails harmlessly past the last capability

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    zero = (ctypes.c_uint32 * 6)()
    libc.capset(ctypes.byref(Header(0x20080522, 0)), zero)    # _LINUX_CAPABILITY_VERSION_3: no capability left
    libc.prctl(4, 0, 0, 0, 0)     # PR_SET_DUMPABLE 0: its descriptors are not reachable through /proc
    return who


def _limit(which: int, value: int) -> None:
    """Soft and hard limit ``which`` to ``value`` (or to the hard limit, where that is lower)."""
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, value))


NOFILE = 1024   # open files per process (the usual soft limit): 256 processes x 1024 are a tenth of fs.file-max here


def set_limits(memory_mb: int, cpu_s: int, file_mb: int, nproc: int | None) -> None:
    """Resource limits for this process, inherited by the kernel it starts. RLIMIT_NOFILE is NOFILE: with the
    20,000 this machine's shell gives, one job's processes held every open file of the machine (fs.file-max, which
    binds whoever lacks CAP_SYS_ADMIN) and 14 of 18 classmates graded meanwhile crashed with "Too many open files
    in system" (the fourth red team, 2026-12-07)."""
    _limit(resource.RLIMIT_DATA, memory_mb * 2 ** 20)
    _limit(resource.RLIMIT_CPU, cpu_s)
    _limit(resource.RLIMIT_FSIZE, file_mb * 2 ** 20)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, NOFILE)
    if nproc:
        _limit(resource.RLIMIT_NPROC, nproc)


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


def forward_harvest(box: str, name: str, fd: int, max_bytes: int) -> None:
    """Copy BOX/harvest/NAME to the grader's descriptor as one frame: b"CGF1", name, status, data.

    Read as the grader would: no symbolic link followed, no FIFO opened, a regular file with one link, bounded.
    A file that is none of these is forwarded as its problem (status 1), so the result can say what happened.
    """
    status, data = 0, b""
    try:
        f = os.open(os.path.join(box, "harvest", name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as err:
        status, data = 1, ("a symbolic link" if err.errno == 40 else f"an unreadable file ({err.strerror})").encode()
        f = None
    if f is not None:
        try:
            st = os.fstat(f)
            if not stat.S_ISREG(st.st_mode):
                status, data = 1, b"something that is not a regular file (a FIFO, a device or a folder)"
            elif st.st_nlink != 1:
                status, data = 1, b"a hard link to another file"
            elif st.st_size > max_bytes:
                status, data = 1, f"a file too large ({st.st_size / 2 ** 20:.1f} MB)".encode()
            else:
                data = os.read(f, max_bytes + 1)
                status, data = (1, b"a file too large") if len(data) > max_bytes else (0, data)
        finally:
            os.close(f)
    key = name.encode()[:255]
    os.write(fd, b"CGF1" + bytes([len(key)]) + key + bytes([status]) + len(data).to_bytes(8, "little") + data)


class Log:
    """One JSON line per event, appended to a descriptor the grader opened (bounded by RLIMIT_FSIZE)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __call__(self, **event) -> None:
        try:
            os.write(self.fd, (json.dumps(event) + "\n").encode())
        except OSError:
            pass


def _confine(job: dict, log: Log) -> None:
    """Steps 1 to 5 of the module's docstring; each records what held."""
    held: dict = {"cgroup": []}
    for procs in job.get("cgroup_procs", []):
        try:
            _write(procs, str(os.getpid()))
            held["cgroup"].append(procs)
        except OSError as err:
            held.setdefault("errors", []).append(f"cgroup {procs}: {err}")
    set_limits(job["memory_mb"], job["cpu_s"], job["file_mb"], None)
    held["namespaces"] = enter_namespaces() if job.get("namespaces", True) else []
    # RLIMIT_NPROC after the user namespace: a namespace records its creator's limit as the bound of the uid's
    # processes everywhere, so set before, 256 counted every job of the grader's user (the fourth red team: a
    # job beside one of 200 processes could start 51 to 53 of 100); set after, it counts this job's processes only
    if job.get("nproc"):
        _limit(resource.RLIMIT_NPROC, job["nproc"])
    if "pid" in held["namespaces"]:
        become_process_one()
    held["private_proc"] = "mount" in held["namespaces"] and "pid" in held["namespaces"] and private_proc()
    held["box_tmpfs"] = "mount" in held["namespaces"] and box_on_tmpfs(job["box"], job["file_mb"])
    held["identity"] = drop_privileges()
    read_only = list(job["read_only"]) + (["/proc"] if held["private_proc"] else list(job["proc_files"]))
    held["landlock"] = {"abi": 0, "tcp_denied": False, "scoped": False}
    if job.get("landlock", True):
        try:
            held["landlock"] = restrict(read_only, [job["box"], "/dev/null"])
        except OSError as err:      # a kernel with Landlock that failed to apply it: no job runs without it (the
            # fourth red team made it fail for 13 classmates, by spending the machine's open files meanwhile)
            raise OSError(err.errno, f"Landlock is there but could not be applied ({err})") from None
    try:        # last: the steps above make namespaces of the job's own
        held["seccomp"] = forbid_namespaces() if job.get("seccomp", True) else False
    except OSError as err:
        held["seccomp"] = False
        held["seccomp_error"] = str(err)[:200]
    log(protections=held)


def run(jobdir: str) -> int:
    with open(os.path.join(jobdir, "job.json"), "rb") as f:
        job = json.loads(f.read(1 << 20))
    with open(os.path.join(jobdir, "run.ipynb"), "rb") as f:
        nb_dict = json.loads(f.read(64 << 20))
    log = Log(job["log_fd"])
    try:
        _confine(job, log)
    except Exception as err:  # noqa: BLE001 - record why; the grader scores nothing that did not run
        log(dead=f"the sandbox could not be set up ({type(err).__name__}: {str(err)[:200]})")
        return 1
    try:
        _execute(job, nb_dict, log)
    except Exception as err:  # noqa: BLE001 - record and stop; the grader scores what ran
        log(dead=f"{type(err).__name__}: {str(err)[:300]}")
    return 0


def _execute(job: dict, nb_dict: dict, log: Log) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # interrupts of the kernel must not stop us
    _keep_kernel_in_our_group()

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from traitlets.config import Config

    class _QuietClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # discard outputs: we only need the verdicts
            return None

    nb = nbformat.from_dict(nb_dict)
    started = {}

    def on_start(cell, cell_index):
        started[cell_index] = time.monotonic()
        log(running=cell_index)

    def on_executed(cell, cell_index, execute_reply):
        meta = cell.metadata.get("course_grade", {})
        if meta.get("role") == "harvest" and meta.get("file"):
            forward_harvest(job["box"], meta["file"], job["harvest_fd"], job["max_harvest_bytes"])
        content = (execute_reply or {}).get("content", {})
        entry = {"index": cell_index, "status": str(content.get("status", "unknown"))[:20],
                 "seconds": round(time.monotonic() - started.get(cell_index, 0), 2)}
        if content.get("status") == "error":
            entry["ename"] = str(content.get("ename", ""))[:200]
            entry["evalue"] = str(content.get("evalue", ""))[:300]
        log(cell=entry)

    def timeout_of(cell):
        role = cell.metadata.get("course_grade", {}).get("role")
        return job["setup_timeout"] if role == "prelude" else job["cell_timeout"]

    work = os.path.join(job["box"], "work")
    # unix sockets in BOX/runtime instead of TCP: the kernel needs no network at all (a relative path, since a
    # socket's path is limited to 107 bytes; the kernel and this process both start in BOX/work)
    config = Config({"KernelManager": {"transport": "ipc", "ip": "../runtime/kernel"}})
    client = _QuietClient(
        nb, timeout=job["cell_timeout"], timeout_func=timeout_of, interrupt_on_timeout=True, allow_errors=True,
        kernel_name="python3", startup_timeout=120, record_timing=False, store_widget_state=False, config=config,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran past {job['cell_timeout']} s",
                          "traceback": []},
        on_cell_start=on_start, on_cell_executed=on_executed, resources={"metadata": {"path": work}})
    try:
        client.execute(env=dict(os.environ), cwd=work)
        log(finished=True)
    except DeadKernelError as err:
        log(dead=f"the kernel died ({str(err)[:200]})")
    except Exception as err:  # noqa: BLE001 - record and stop; the grader scores what ran
        log(dead=f"{type(err).__name__}: {str(err)[:300]}")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
