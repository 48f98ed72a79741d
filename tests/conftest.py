"""Shared fixtures: every test gets its own GW_HOME and config files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
# Imports convert in the test's own process (`--here`) unless a test asks for the build
# job (tests/integration/test_image_build_jobs.py, with GW_IMAGE_BUILD=slurm): most tests
# import to have an image, and a build job each would double their Slurm jobs.
os.environ.setdefault("GW_IMAGE_BUILD", "here")


@pytest.fixture()
def gw_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private GW_HOME (returned) with no site or user config files."""
    home = tmp_path / "gw-home"
    monkeypatch.setenv("GW_HOME", str(home))
    monkeypatch.setenv("GW_SITE_CONFIG", str(tmp_path / "no-site.toml"))
    monkeypatch.setenv("GW_USER_CONFIG", str(tmp_path / "no-user.toml"))
    for name in ("GW_DATABASE", "GW_RUNTIME", "GW_PARTITION"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture()
def gw(gw_env: Path):
    """A Gateway on the private GW_HOME."""
    from gateway.context import Gateway

    return Gateway()


def gw_executable() -> str:
    """The `gw` console script of the environment running the tests."""
    return shutil.which("gw", path=str(Path(sys.executable).parent)) or "gw"


def run_gw(*args: str, check: bool = True, input_text: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `gw` console script in a subprocess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([gw_executable(), *args], capture_output=True, text=True,
                          input=input_text, check=False, env=full_env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"gw {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
