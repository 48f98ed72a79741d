"""A process that hashes byte ranges of an inherited file: ``python -m containers.hash_worker FD``.

Each line ``START SIZE`` on stdin gets one line on stdout: ``sha256:<hex>`` of those
bytes of the file open as descriptor FD, or ``short <missing bytes>`` where the file
ends first. A process of its own, not a thread: a thread hashing beside the layer check
fought it for the interpreter lock and both ran at half speed. It runs at the lowest
priority: on the CPU the check leaves, then in the gaps the SquashFS writer's threads
leave (:class:`containers.layers.BackgroundDigests` starts it).
"""

from __future__ import annotations

import hashlib
import os
import sys

CHUNK = 1 << 20


def hash_range(fd: int, start: int, size: int) -> str:
    """The answer line for ``size`` bytes of ``fd`` from ``start``."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(CHUNK))
    done = 0
    while done < size:
        count = os.preadv(fd, [buffer[:min(CHUNK, size - done)]], start + done)
        if count == 0:
            return f"short {size - done}"
        digest.update(buffer[:count])
        done += count
    return "sha256:" + digest.hexdigest()


def main(argv: list[str]) -> int:
    """Answer every request on stdin (see the module)."""
    fd = int(argv[1])
    os.nice(19)   # the CPU time the check and the SquashFS writer leave, no more
    for line in sys.stdin:
        start, size = (int(field) for field in line.split())
        print(hash_range(fd, start, size), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
