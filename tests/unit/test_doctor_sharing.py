"""`gw doctor` names a share_root or site_images that would let users harm each other."""

from __future__ import annotations

import os

from gateway.context import Gateway
from gateway.doctor import _check_sharing


def gateway_with(tmp_path, monkeypatch, shares_mode: int, images_mode: int) -> Gateway:
    shares, images = tmp_path / "shares", tmp_path / "images"
    shares.mkdir()
    images.mkdir()
    os.chmod(shares, shares_mode)
    os.chmod(images, images_mode)
    site = tmp_path / "site.toml"
    site.write_text(f'share_root = "{shares}"\nsite_images = "{images}"\n')
    monkeypatch.setenv("GW_SITE_CONFIG", str(site))
    return Gateway()


def test_sticky_shares_and_private_site_images_pass(gw_env, tmp_path, monkeypatch):
    checks = {c.name: c for c in _check_sharing(gateway_with(tmp_path, monkeypatch, 0o1777,
                                                             0o755))}
    assert checks["sharing"].ok and checks["site images"].ok
    assert "0 in" in checks["site images"].detail


def test_unsafe_share_root_and_site_images_are_named(gw_env, tmp_path, monkeypatch):
    checks = {c.name: c for c in _check_sharing(gateway_with(tmp_path, monkeypatch, 0o777,
                                                             0o777))}
    assert not checks["sharing"].ok and "sticky" in checks["sharing"].detail
    assert "install -d -m 1777" in checks["sharing"].fix
    assert not checks["site images"].ok and "not safe" in checks["site images"].detail


def test_nothing_to_check_without_the_settings(gw, monkeypatch):
    assert _check_sharing(gw) == []
