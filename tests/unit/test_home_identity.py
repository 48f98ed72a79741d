"""The database belongs to its home; a second database on one home is refused."""

import pytest

from gateway.common.errors import HomeMismatch
from gateway.context import Gateway


def test_first_use_binds_and_later_uses_agree(gw_env):
    first = Gateway()
    home_id = first.home_id
    assert (gw_env / "home.json").stat().st_mode & 0o777 == 0o600
    assert Gateway().home_id == home_id


def test_second_database_on_one_home_is_refused(gw_env, monkeypatch, tmp_path):
    Gateway().conn  # noqa: B018 - the first login node's database
    monkeypatch.setenv("GW_DATABASE", str(tmp_path / "node2-local.db"))
    with pytest.raises(HomeMismatch, match="belongs to another database"):
        Gateway().conn  # noqa: B018


def test_database_pointed_at_another_home_is_refused(gw_env, monkeypatch, tmp_path):
    database = tmp_path / "shared.db"
    monkeypatch.setenv("GW_DATABASE", str(database))
    Gateway().conn  # noqa: B018
    monkeypatch.setenv("GW_HOME", str(tmp_path / "other-home"))
    with pytest.raises(HomeMismatch, match="has no identity"):
        Gateway().conn  # noqa: B018
    other = tmp_path / "third-home"
    monkeypatch.setenv("GW_HOME", str(other))
    monkeypatch.setenv("GW_DATABASE", str(tmp_path / "third.db"))
    Gateway().conn  # noqa: B018 - a home of its own
    monkeypatch.setenv("GW_DATABASE", str(database))
    with pytest.raises(HomeMismatch, match="not to GW_HOME"):
        Gateway().conn  # noqa: B018


def test_home_is_private_whatever_the_umask(gw_env):
    import os

    old = os.umask(0o022)
    try:
        Gateway().conn  # noqa: B018
    finally:
        os.umask(old)
    assert gw_env.stat().st_mode & 0o777 == 0o700
    for child in gw_env.iterdir():
        if child.is_dir():
            assert child.stat().st_mode & 0o077 == 0, child
