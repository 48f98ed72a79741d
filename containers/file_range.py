"""A byte range of an open file, read as a file of its own: one layer of an image archive.

``tarfile``'s member objects read through three layers of Python buffering, and every
seek past a layer entry's data drops the buffer: the layer check, which reads 512-byte
headers and seeks over the data between them, spent most of its time there. A
:class:`FileRange` reads with ``os.pread`` straight from the archive's descriptor, and
tells the absolute offset of its bytes (:attr:`start`), so a caller can hand a range of
them to the kernel (``os.splice``) without reading it at all.
"""

from __future__ import annotations

import os


class FileRange:
    """``size`` bytes of the open file ``fd`` from offset ``start``: a read-only,
    seekable stream. The descriptor stays the caller's (it is not closed here)."""

    def __init__(self, fd: int, start: int, size: int) -> None:
        self.fd = fd
        self.start = start
        self.size = size
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left for a negative ``size``); fewer only at
        the end of the range (or of the file, if it was cut short meanwhile)."""
        left = self.size - self.position
        if size < 0 or size > left:
            size = left
        if size <= 0:
            return b""
        data = os.pread(self.fd, size, self.start + self.position)
        self.position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into ``buffer``; returns how many bytes."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` from the range's start (0), here (1) or its end (2)."""
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start of the range")
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        """The position, from the range's start."""
        return self.position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The descriptor of the file the range lies in."""
        return self.fd

    def close(self) -> None:
        """Nothing to close: the descriptor is the caller's."""
