"""Copying byte ranges of one layer's uncompressed tar to an output, forward only.

The streamed build's second read knows, from the check, where every entry it keeps lies
in its layer; it copies those ranges. A plain layer's ranges go from the archive to the
output by ``os.sendfile``, never through Python (the kernel copies page cache to pipe);
a compressed layer is decompressed again and its ranges copied from the stream.
"""

from __future__ import annotations

import io
import os
from typing import IO

from containers.file_range import FileRange
from containers.layers import CHUNK, LayerProgress, plain_layer
from gateway.common.errors import InvalidInput


class LayerBytes:
    """The uncompressed tar of the layer ``handle`` (stored with ``compression``), whose
    ranges :meth:`copy` writes to ``out`` in increasing order."""

    def __init__(self, handle: IO[bytes], compression: str, out: IO[bytes], where: str,
                 meter: LayerProgress | None = None) -> None:
        self.out = out
        self.where = where
        self.meter = meter
        self.position = 0      # of the uncompressed tar: what has been read or passed
        self.counted = 0       # stored bytes reported to the meter
        self.file = handle if compression == "none" and isinstance(handle, FileRange) else None
        self.stream = None if self.file else (plain_layer(handle, compression)
                                              if compression != "none" else handle)
        self.stored_size = handle.seek(0, 2)
        handle.seek(0)
        try:
            self.out_fd: int | None = out.fileno()
        except (AttributeError, io.UnsupportedOperation):
            self.out_fd = None

    def _forward(self, start: int) -> None:
        if start < self.position:
            raise ValueError(f"range at {start} is behind {self.position}")
        if self.stream is not None:
            left = start - self.position
            while left > 0:
                data = self.stream.read(min(left, CHUNK))
                if not data:
                    raise InvalidInput(f"{self.where} ends early (truncated)")
                left -= len(data)
        self.position = start

    def read(self, start: int, end: int) -> bytes:
        """The bytes from ``start`` to ``end``."""
        self._forward(start)
        if self.file is not None:
            data = os.pread(self.file.fd, end - start, self.file.start + start)
        else:
            assert self.stream is not None
            data = self.stream.read(end - start)
        if len(data) != end - start:
            raise InvalidInput(f"{self.where} ends early (truncated)")
        self.position = end
        self._count()
        return data

    def copy(self, start: int, end: int) -> None:
        """Write the bytes from ``start`` to ``end`` to the output."""
        self._forward(start)
        if self.file is not None and self.out_fd is not None:
            self.out.flush()
            offset, left = self.file.start + start, end - start
            while left > 0:
                sent = os.sendfile(self.out_fd, self.file.fd, offset, left)
                if sent == 0:
                    raise InvalidInput(f"{self.where} ends early (truncated)")
                offset += sent
                left -= sent
            self.position = end
        else:
            while self.position < end:
                self.out.write(self.read(self.position, min(end, self.position + CHUNK)))
        self._count()

    def _count(self) -> None:
        if self.meter is not None and self.file is not None:
            self.meter.add(self.position - self.counted)
            self.counted = self.position

    def finish(self) -> None:
        """The layer is done: the meter counts all its stored bytes."""
        if self.meter is not None:
            self.meter.add(self.stored_size - self.counted)
            self.counted = self.stored_size
