"""Fixtures for tests on the real local Slurm cluster with real containers.

They need `scripts/cluster.sh start` (scripts/test.sh does it) and the container tools;
they fail, not skip, when those are missing: CI must run them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_gw


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    """The environment for Slurm clients (SLURM_CONF from the project's cluster)."""
    if not os.environ.get("SLURM_CONF"):
        pytest.fail("SLURM_CONF is not set: run the suite through scripts/test.sh "
                    "(or eval \"$(scripts/cluster.sh env)\")")
    if shutil.which("sbatch") is None:
        pytest.fail("sbatch is not installed: run scripts/setup.sh")
    return {"SLURM_CONF": os.environ["SLURM_CONF"]}


@pytest.fixture(scope="module")
def flow_home(tmp_path_factory, cluster_env) -> dict[str, str]:
    """A GW_HOME shared by one test module, as an environment for `gw` subprocesses."""
    root = tmp_path_factory.mktemp("flow")
    env = {"GW_HOME": str(root / "home"), "GW_SITE_CONFIG": str(root / "none.toml"),
           "GW_USER_CONFIG": str(root / "none-user.toml"), **cluster_env}
    return env


def busybox_layers(base: Path) -> list[Path]:
    """Two layers: a busybox rootfs with files, and a layer that whites some of them out."""
    from tests.support.images import busybox_rootfs

    layer1 = busybox_rootfs(base / "layer1")
    (layer1 / "etc").mkdir(exist_ok=True)
    (layer1 / "etc" / "removed.txt").write_text("must disappear\n")
    (layer1 / "opt" / "dir").mkdir(parents=True, exist_ok=True)
    (layer1 / "opt" / "dir" / "a").write_text("a\n")
    (layer1 / "opt" / "dir" / "b").write_text("b\n")
    layer2 = base / "layer2"
    (layer2 / "etc").mkdir(parents=True)
    (layer2 / "etc" / ".wh.removed.txt").write_text("")
    (layer2 / "opt" / "dir").mkdir(parents=True)
    (layer2 / "opt" / "dir" / ".wh..wh..opq").write_text("")
    (layer2 / "opt" / "dir" / "c").write_text("c\n")
    return [layer1, layer2]


def gw_ok(env: dict[str, str], *args: str) -> str:
    """Run `gw` and return stdout; any failure fails the test with its output."""
    return run_gw(*args, env=env).stdout
