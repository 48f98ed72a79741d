"""gw image pull from a real registry on localhost (Debian's docker-registry)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok
from tests.support.images import busybox_rootfs, make_archive
from tests.support.registry import local_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A docker-registry serving on 127.0.0.1, stopped after the module."""
    with local_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


def test_pull_converts_once_and_dedups_with_import(registry, flow_home, tmp_path):
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "etc" / "pulled").write_text("from the registry\n")
    archive = make_archive(tmp_path / "img.tar", [rootfs], env={"PATH": "/bin", "ORIGIN": "reg"})
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    f"docker-archive:{archive}", f"docker://{registry}/team/bb:1.0"], check=True)
    pulled = json.loads(gw_ok(flow_home, "image", "pull", f"{registry}/team/bb:1.0",
                              "--name", "bb:pulled", "--insecure", "-q", "--json"))
    assert pulled["converted"] and pulled["config"]["env"]["ORIGIN"] == "reg"
    again = json.loads(gw_ok(flow_home, "image", "pull", f"{registry}/team/bb:1.0",
                             "--name", "bb:again", "--insecure", "-q", "--json"))
    assert not again["converted"] and again["digest"] == pulled["digest"]
    imported = json.loads(gw_ok(flow_home, "image", "import", str(archive), "--name",
                                "bb:imported", "-q", "--json"))
    assert not imported["converted"] and imported["digest"] == pulled["digest"]
    # the pulled image really runs
    algo = tmp_path / "algo"
    algo.mkdir()
    (algo / "run.sh").write_text("cat /etc/pulled > /model/out\n")
    gw_ok(flow_home, "algo", "push", str(algo), "--name", "pullcheck", "-q")
    job = json.loads(gw_ok(flow_home, "job", "submit", "--algo", "pullcheck", "--image",
                           "bb:pulled", "--wait", "--json", "--", "sh", "run.sh"))
    assert gw_ok(flow_home, "model", "cat", job["model"], "out") == "from the registry\n"


def test_pull_unknown_image_fails_cleanly(registry, flow_home):
    proc = run_gw("image", "pull", f"{registry}/nope:1", "--name", "nope:v1", "--insecure",
                  "-q", env=flow_home, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("gw: error: skopeo inspect:") and proc.stderr.count("\n") == 1
    assert "nope:v1" not in gw_ok(flow_home, "image", "list")
