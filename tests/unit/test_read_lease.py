"""The read lease that lets a streamed build skip its second check: granted only while
no one writes the file, and seen to break when someone opens it for writing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from containers.read_lease import read_lease


def _wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_lease_holds_until_someone_opens_the_file_for_writing(tmp_path):
    path = tmp_path / "archive.tar"
    path.write_bytes(b"x" * 4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        with read_lease(fd) as unchanged:
            assert unchanged is not None and unchanged()
            with path.open("rb") as reader:     # readers do not break it
                reader.read()
            assert unchanged()
            writer = subprocess.Popen([sys.executable, "-c", "import sys; "
                                       "open(sys.argv[1], 'ab').write(b'y')", str(path)])
            assert _wait_for(lambda: not unchanged())
            assert writer.poll() is None        # held back until the lease is let go
        assert writer.wait(timeout=60) == 0
        assert path.stat().st_size == 4097
    finally:
        os.close(fd)


@pytest.fixture
def archive(tmp_path):
    """(path, read-only descriptor) of a small file."""
    path = tmp_path / "archive.tar"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    yield path, fd
    os.close(fd)


def test_no_lease_while_the_file_is_open_for_writing(archive):
    path, fd = archive
    with path.open("ab"), read_lease(fd) as unchanged:
        assert unchanged is None


def test_no_lease_off_the_main_thread(archive):
    _path, fd = archive
    seen = []

    def lease() -> None:
        with read_lease(fd) as unchanged:
            seen.append(unchanged)

    thread = threading.Thread(target=lease)
    thread.start()
    thread.join()
    assert seen == [None]
