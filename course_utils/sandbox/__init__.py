"""Isolation for the grader: runs one student's notebook so that it cannot read, write, signal, reach or
exhaust anything but its own job. ``course_utils.grade`` decides what runs and judges what comes out; this
package owns everything in between.

    jobs            the parent half: the job's folder, ``Job.run`` (start, wall clock, disk and memory polls,
                    kill), reading back (``Job.read_harvest``; ``read_regular``: no link followed, no FIFO
                    opened, sizes bounded)
    cgroups         memory and process count of the job as a whole (cgroup v2, else v1, else none)
    runner          the child half: limits, namespaces, capabilities, Landlock, then the notebook (nbclient)
    pool, zygote    the fast path: a pre-imported interpreter per worker forks each job's runner, which confines
                    itself as ``runner`` does and runs the cells in an IPython shell (no kernel to start)
    values          the data that crosses the boundary (cases in, outputs out): no pickle, bounded decoding
    kernel_package  the copy of ``course_utils`` the kernel imports, with the worksheet's answers hidden

Each layer is used where the platform allows it and recorded where it does not: ``Outcome.protections``
says, for every submission, which of them held (docs/grading.md, "Isolation" and "Limits").
"""
from .cgroups import JobCgroup
from .jobs import (PROC_FILES, Job, Limits, Outcome, UnsafeFile, box_usage, child_env, over_limit, read_regular,
                   system_read_only)
from .pool import Pool, PoolError
from .runner import landlock_abi

__all__ = ["Job", "JobCgroup", "Limits", "Outcome", "PROC_FILES", "Pool", "PoolError", "UnsafeFile", "box_usage",
           "child_env", "landlock_abi", "over_limit", "read_regular", "system_read_only"]
