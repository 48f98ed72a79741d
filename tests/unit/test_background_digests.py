"""The helper process that hashes plain layers beside the check: right digests pass,
wrong ones and a short file are refused naming the layer, a helper that dies is an
error, never a pass."""

from __future__ import annotations

import hashlib
import os

import pytest

from containers.file_range import FileRange
from containers.layers import BackgroundDigests
from gateway.common.errors import CommandFailed, InvalidInput

DATA = os.urandom(3 << 20)


@pytest.fixture
def fd(tmp_path):
    path = tmp_path / "archive.tar"
    path.write_bytes(b"head" + DATA)
    descriptor = os.open(path, os.O_RDONLY)
    yield descriptor
    os.close(descriptor)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def digests():
    helper = BackgroundDigests()
    yield helper
    helper.close()


def test_a_wrong_digest_names_its_layer(fd, digests):
    digests.add(FileRange(fd, 4, len(DATA)), "layer A", sha(DATA), sha(DATA))
    digests.add(FileRange(fd, 4, 1000), "layer B", None, sha(DATA[:999]))
    with pytest.raises(InvalidInput, match="layer B does not match the config's diff_id"):
        digests.verify(InvalidInput)


def test_right_digests_pass(fd, digests):
    digests.add(FileRange(fd, 4, len(DATA)), "layer A", sha(DATA), sha(DATA))
    digests.add(FileRange(fd, 4, 1000), "layer B", None, sha(DATA[:1000]))
    digests.verify(InvalidInput)


def test_a_range_past_the_end_is_truncated(fd, digests):
    digests.add(FileRange(fd, 4, len(DATA) + 10), "layer C", None, sha(DATA))
    with pytest.raises(InvalidInput, match=r"layer C is truncated \(10 bytes missing\)"):
        digests.verify(InvalidInput)


def test_a_helper_that_dies_is_an_error(fd, digests):
    digests.add(FileRange(fd, 4, len(DATA)), "layer D", None, sha(DATA))
    assert digests._helper is not None
    digests._helper.kill()
    digests._helper.wait()
    digests.add(FileRange(fd, 4, 10), "layer E", None, sha(DATA[:10]))
    with pytest.raises(CommandFailed, match="layer hashing"):
        digests.verify(InvalidInput)
