"""Fixtures for tests on the real local Slurm cluster with real containers.

They need `scripts/cluster.sh start` (scripts/test.sh does it) and the container tools;
they fail, not skip, when those are missing: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_gw


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


@pytest.fixture(scope="session")
def jupyter_sites(tmp_path_factory, cluster_env) -> dict[str, Path]:
    """Site configurations whose site image stores hold the seed's JupyterLab image
    (``jupyter:v1``: only `pip3 install jupyterlab`; store "seed") and that image with its
    papermill variant (``jupyter-papermill:v1``; store "all"). Each image is converted once
    per session, in one administrator's home, and published as a site administrator does.
    A home given one of these files as GW_SITE_CONFIG runs the images by name."""
    root = tmp_path_factory.mktemp("jupyter-sites")
    configs: dict[str, Path] = {}
    for store_name in ("seed", "all"):
        store = root / f"site-images-{store_name}"
        store.mkdir(mode=0o755)
        configs[store_name] = root / f"site-{store_name}.toml"
        configs[store_name].write_text(f'site_images = "{store}"\n')

    def admin(store_name: str) -> dict[str, str]:
        return {"GW_HOME": str(root / "admin"), "GW_SITE_CONFIG": str(configs[store_name]),
                "GW_USER_CONFIG": str(root / "none-user.toml"), **cluster_env}

    for variant, name, stores in (("seed", "jupyter:v1", ("seed", "all")),
                                  ("papermill", "jupyter-papermill:v1", ("all",))):
        archive = subprocess.run(["bash", str(REPO / "scripts" / "make-jupyter-image.sh"),
                                  variant], capture_output=True, text=True,
                                 check=True).stdout.strip()
        gw_ok(admin("seed"), "image", "import", archive, "--name", name, "-q")
        for store_name in stores:
            gw_ok(admin(store_name), "image", "publish", name, "-q")
    return configs


@pytest.fixture(scope="module")
def jupyter_home(flow_home, jupyter_sites) -> dict[str, str]:
    """:func:`flow_home` with the session's JupyterLab site image (``jupyter:v1``)."""
    return {**flow_home, "GW_SITE_CONFIG": str(jupyter_sites["seed"])}


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory) -> Path:
    """A `docker save` archive of the static busybox rootfs (PATH=/bin, CMD sh), made once
    per session; every home that needs a small image imports it."""
    from tests.support.images import busybox_rootfs, make_archive

    base = tmp_path_factory.mktemp("busybox")
    return make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                        env={"PATH": "/bin"}, workdir="/", cmd=["sh"])


def image_and_algo(env: dict[str, str], archive: Path, base: Path, algo: str,
                   files: dict[str, str], image: str = "bb:v1") -> dict[str, str]:
    """Import ``archive`` as ``image`` and push an algorithm ``algo`` of ``files`` (relative
    path -> text, written under ``base``) into the home of ``env``; returns ``env``."""
    gw_ok(env, "image", "import", str(archive), "--name", image, "-q")
    source = base / f"algo-{algo}"
    for rel, text in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text)
    gw_ok(env, "algo", "push", str(source), "--name", algo, "-q")
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
