"""Worker processes: how many this host can run (CPUs, memory), and dying with their parent."""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["BYTES_PER_WORKER", "default_workers", "die_with_parent", "mem_available"]

#: PP-OCR's models plus page buffers need about this much memory per worker (README, "Accuracy
#: and speed": a worker peaked at 1.07 GB on a handwritten IAM page, 274 MB on printed pages).
BYTES_PER_WORKER = 1536 * 1024 * 1024


def default_workers() -> int:
    """Return a worker count from the CPUs we may use and the memory available."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    available = mem_available()
    by_memory = max(1, available // BYTES_PER_WORKER) if available else cpus
    return max(1, min(cpus, by_memory))


def mem_available() -> int | None:
    """Return the kernel's estimate of memory available for new work (bytes), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; else a no-op)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:  # not glibc Linux: orphans then end at EOF on their pipe
        pass
