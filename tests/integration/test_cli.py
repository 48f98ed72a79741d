"""The CLI as people meet it: help, doctor, exit codes, one-line errors, nothing half-made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok


def test_help_lists_groups(flow_home):
    out = gw_ok(flow_home, "--help")
    for group in ("image", "algo", "data", "job", "model", "spool", "doctor"):
        assert group in out
    assert "--gpus" in gw_ok(flow_home, "job", "submit", "--help")


def test_doctor_passes_on_the_local_cluster(flow_home):
    checks = json.loads(gw_ok(flow_home, "doctor", "--json"))
    assert {c["name"] for c in checks} >= {"home", "slurm", "accounting", "runtime", "fuse",
                                           "image build"}
    assert all(c["ok"] for c in checks), checks


def test_doctor_says_what_to_fix(flow_home, tmp_path):
    broken = dict(flow_home, SLURM_CONF=str(tmp_path / "missing.conf"))
    proc = run_gw("doctor", env=broken, check=False)
    assert proc.returncode == 1
    assert "[FAIL] slurm" in proc.stdout and "fix:" in proc.stdout


@pytest.mark.parametrize("args,code,message", [
    (["job", "show", "999999"], 2, "no job 999999"),
    (["model", "show", "nothing@v1"], 2, "no model named 'nothing'"),
    (["algo", "show", "x@vx"], 2, "invalid version"),
    (["image", "show", "NOPE"], 2, "invalid image name"),
    (["job", "submit", "--algo", "a", "--image", "b:c", "--cpus", "two", "--", "true"], 2,
     "Invalid value"),
    (["bogus"], 2, "No such command"),
])
def test_errors_are_one_line_with_exit_codes(flow_home, args, code, message):
    proc = run_gw(*args, env=flow_home, check=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_hostile_image_import_leaves_nothing(flow_home, tmp_path):
    import io
    import tarfile

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    config = b'{"architecture": "amd64", "config": {}}'
    manifest = b'[{"Config": "c.json", "RepoTags": ["x:y"], "Layers": ["l/layer.tar"]}]'
    archive = tmp_path / "hostile.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("c.json", config), ("l/layer.tar", layer.getvalue()),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    home = Path(flow_home["GW_HOME"])
    before = sorted(p.relative_to(home) for p in home.rglob("*")) if home.exists() else []
    proc = run_gw("image", "import", str(archive), "--name", "hostile:v1", "-q",
                  env=flow_home, check=False)
    assert proc.returncode == 2 and "leaves the image" in proc.stderr
    assert proc.stderr.count("\n") == 1
    after = sorted(p.relative_to(home) for p in home.rglob("*"))
    assert [p for p in after if p not in before and not p.name.startswith("gateway.db")] == []
    assert not (tmp_path.parent / "escape").exists()
