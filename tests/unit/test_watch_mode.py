"""How the watcher learns of spool files: inotify on local filesystems, polling where
writes made elsewhere never reach inotify."""

from __future__ import annotations

import pytest

from gateway.home import layout as home
from spool.watcher import DEFAULT_POLL_SECONDS, choose_mode


@pytest.mark.parametrize("kind, polling", [
    ("ext4", False), ("xfs", False), ("tmpfs", False), ("overlay", False),
    ("nfs4", True), ("lustre", True), ("gpfs", True), ("beegfs", True),
    ("fuse", True), ("fuse.sshfs", True), ("fuse.bindfs", True),
])
def test_mode_follows_the_filesystem(monkeypatch, tmp_path, kind, polling):
    monkeypatch.setattr(home, "filesystem_type", lambda _path: kind)
    mode = choose_mode(tmp_path, None)
    assert mode.polling is polling and kind in mode.why
    assert (mode.interval == DEFAULT_POLL_SECONDS) is polling


def test_poll_option_wins_on_any_filesystem(monkeypatch, tmp_path):
    monkeypatch.setattr(home, "filesystem_type", lambda _path: "ext4")
    mode = choose_mode(tmp_path, 0.5)
    assert mode.polling and mode.interval == 0.5

