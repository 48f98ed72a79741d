"""Proof that a file stayed as it was while it was read more than once: a Linux read lease.

A streamed image build reads an archive's layers twice: once to check them and hash
them, once to copy the entries it keeps into the SquashFS writer. Without proof that the
file did not change in between, the second read must check and hash everything again.
A read lease (``fcntl(F_SETLEASE, F_RDLCK)``) is that proof: the kernel grants it only
while no process has the file open for writing, and breaks it as soon as one opens it for
writing or truncates it; the break is seen with ``F_GETLEASE``. Leases are granted to the
file's owner (or a process with CAP_LEASE) on local file systems; elsewhere (another
user's file, NFS, a thread other than the main one, which cannot set the signal handling)
there is no lease and the caller reads carefully instead.
"""

from __future__ import annotations

import fcntl
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

# Linux's values, for Pythons whose fcntl module does not name them
F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
F_GETLEASE = getattr(fcntl, "F_GETLEASE", 1025)


def _take(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_RDLCK)
    except OSError:   # EAGAIN: open for writing now; EACCES: not ours; EINVAL: not here
        return False
    return True


@contextmanager
def read_lease(fd: int) -> Iterator[Callable[[], bool] | None]:
    """Hold a read lease on the read-only descriptor ``fd`` for the ``with`` block.

    Yields a function that says whether the file is still as it was when the lease was
    taken (no process has opened it for writing, or truncated it, since), or None where
    no lease could be had. A process that opens the file for writing meanwhile waits
    until the block ends (at most the kernel's ``lease-break-time``, 45 s by default);
    the lease-break signal (SIGIO) is ignored for the block's length.
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
    try:
        if not _take(fd):
            yield None
            return
        try:
            yield lambda: fcntl.fcntl(fd, F_GETLEASE) == fcntl.F_RDLCK
        finally:
            with suppress(OSError):
                fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
    finally:
        signal.signal(signal.SIGIO, previous)
