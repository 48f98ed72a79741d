"""Shell completion through the real `gw`: the scripts, and names from the database."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def home(flow_home, tmp_path_factory):
    from tests.support.images import busybox_rootfs, make_archive

    base = tmp_path_factory.mktemp("complete")
    archive = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(flow_home, "image", "import", str(archive), "--name", "busybox:v1", "-q")
    for kind, name in (("algo", "detectron2"), ("algo", "yolo"), ("data", "coco")):
        (base / name).mkdir(exist_ok=True)
        (base / name / "f.txt").write_text(name)
        gw_ok(flow_home, kind, "push", str(base / name), "--name", name, "-q")
    job = json.loads(gw_ok(flow_home, "job", "submit", "--algo", "detectron2", "--image",
                           "busybox:v1", "--mem", "256M", "--name", "first-run", "--wait",
                           "--json", "--", "sh", "-c", "echo m > /model/m"))
    gw_ok(flow_home, "template", "save", "nightly", "--from-job", str(job["id"]))
    flow_home["GW_TEST_JOB"] = str(job["id"])
    return flow_home


def complete(env, line: str) -> list[str]:
    """What bash would offer after ``line`` (click's bash protocol: type,value lines)."""
    words = line.split(" ")
    proc = run_gw(env={**env, "_GW_COMPLETE": "bash_complete", "COMP_WORDS": line,
                       "COMP_CWORD": str(len(words) - 1)})
    return [row.split(",", 1)[1] for row in proc.stdout.splitlines() if row]


def test_names_complete_from_the_database(home):
    assert complete(home, "gw job submit --image ") == ["busybox:v1"]
    assert complete(home, "gw job submit --algo ") == ["detectron2", "yolo"]
    assert complete(home, "gw job submit --algo y") == ["yolo"]
    assert complete(home, "gw job submit --data ") == ["coco"]
    assert complete(home, "gw algo show detectron2@") == ["detectron2@v1"]
    assert complete(home, "gw model versions ") == ["detectron2"]
    assert complete(home, "gw template run ") == ["nightly"]
    assert complete(home, "gw job show ") == [home["GW_TEST_JOB"]]
    assert complete(home, "gw job l") == ["list", "logs"]
    assert "--gpus" in complete(home, "gw job submit --g")


def test_completion_scripts(home, tmp_path):
    script = gw_ok(home, "completion", "bash")
    assert "_GW_COMPLETE" in script
    (tmp_path / "gw.bash").write_text(script)
    check = subprocess.run(["bash", "-c", f"source {tmp_path / 'gw.bash'} && complete -p gw"],
                           capture_output=True, text=True, check=True)
    assert "complete" in check.stdout and " gw" in check.stdout
    assert "compdef" in gw_ok(home, "completion", "zsh")
    assert "complete --no-files --command gw" in gw_ok(home, "completion", "fish")
    bad = run_gw("completion", "tcsh", env=home, check=False)
    assert bad.returncode == 2 and "tcsh" in bad.stderr


def test_a_completion_never_fails_loudly(home, tmp_path):
    broken = {**home, "GW_HOME": str(tmp_path / "nowhere")}
    assert complete(broken, "gw job submit --algo ") == []
    assert not (tmp_path / "nowhere").exists()
