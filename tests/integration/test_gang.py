"""Distributed jobs (the gang shape) on a real two-node Slurm cluster with real containers.

The cluster is a second instance of the project's local cluster, started here with two
slurmd nodes in network namespaces of their own (tests/support/gang_cluster.py) and stopped
at the end; the one-node cluster the rest of the suite uses is left as it was. The jobs run
a real torch.distributed program (gloo on the CPU, tests/fixtures/gang/ddp.py) in an image
with PyTorch's CPU build (scripts/make-jupyter-image.sh torch).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_gw
from tests.integration.conftest import gw_ok
from tests.support import gang_cluster

pytestmark = pytest.mark.container

NODES = [f"{gang_cluster.GANG_CLUSTER['GW_CLUSTER_NAME']}node{i}" for i in (1, 2)]


@pytest.fixture(scope="module")
def gang(tmp_path_factory, cluster_env):
    """A home on the two-node cluster with the torch image and the ddp algorithm."""
    slurm = gang_cluster.start(2)
    root = tmp_path_factory.mktemp("gang")
    env = {"GW_HOME": str(root / "home"), "GW_SITE_CONFIG": str(root / "none.toml"),
           "GW_USER_CONFIG": str(root / "none-user.toml"), **slurm}
    try:
        archive = subprocess.run(["bash", str(REPO / "scripts" / "make-jupyter-image.sh"),
                                  "torch"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        gw_ok(env, "image", "import", archive, "--name", "torch:v1", "-q")
        algo = root / "algo"
        algo.mkdir()
        (algo / "ddp.py").write_text((REPO / "tests/fixtures/gang/ddp.py").read_text())
        gw_ok(env, "algo", "push", str(algo), "--name", "ddp", "-q")
        yield env
    finally:
        gang_cluster.stop()


def submit(env, *args, check=True):
    return run_gw("job", "submit", "--json", "--algo", "ddp", "--image", "torch:v1",
                  "--mem", "1G", "--time", "0:10:00", *args, env=env, check=check)


def show(env, job_id):
    return json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))


def wait_for(predicate, timeout=120.0, step=0.5, why=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    raise AssertionError("timed out" + (f": {why()}" if why else ""))


def model_versions(env, name):
    listed = json.loads(gw_ok(env, "model", "list", "--json"))
    return next((m["versions"] for m in listed if m["name"] == name), 0)


def job_mounts() -> set[str]:
    """The jobs' scratch mounts (/tmp/gw-job.*) on the machine, every node's."""
    return {line for line in Path("/proc/self/mounts").read_text().splitlines()
            if "/tmp/gw-job." in line}


def leftovers(home: str, mounts_before: set[str]) -> list[str]:
    """Containers or FUSE mounts of this home's jobs still there (mounts: those made since
    ``mounts_before``, as another test's may be there)."""
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    found = [line[:120] for line in ps.splitlines()
             if home in line and ("bwrap" in line or "squashfuse" in line)]
    return found + sorted(job_mounts() - mounts_before)


def test_ddp_on_two_nodes_makes_one_model_version_with_both_nodes(gang):
    job = json.loads(submit(gang, "--nodes", "2", "--model-name", "ddp2", "--wait", "--",
                            "python3", "ddp.py").stdout)
    assert job["state"] == "COMPLETED", job
    assert job["shape"] == "gang" and job["ranks"] == 2 and job["nodes"] == NODES
    log = gw_ok(gang, "job", "logs", str(job["id"]))
    assert "0: rank 0/2 local 0 node_rank 0" in log and "sum 3.0" in log
    assert "1: rank 1/2 local 0 node_rank 1" in log
    rank1 = gw_ok(gang, "job", "logs", str(job["id"]), "--task", "1")
    assert "rank 1/2" in rank1 and "rank 0/2" not in rank1
    assert model_versions(gang, "ddp2") == 1
    model = json.loads(gw_ok(gang, "model", "show", "ddp2@v1", "--json"))
    assert model["nodes"] == NODES and model["job_id"] == job["id"]
    result = json.loads(Path(model["path"], "result.json").read_text())
    assert result["world"] == 2 and result["sum"] == 3.0
    assert result["nodes"] == ",".join(NODES)
    # the first node's own address
    assert result["master"].startswith(gang_cluster.GANG_CLUSTER["GW_NODE_NET"] + ".11:")
    top = json.loads(gw_ok(gang, "job", "top", str(job["id"]), "--json"))
    assert [u["label"] for u in top["units"]] == [f"rank 0 on {NODES[0]}",
                                                  f"rank 1 on {NODES[1]}"]
    assert all(u["samples"] > 0 for u in top["units"])
    text = gw_ok(gang, "job", "show", str(job["id"]))
    assert ",".join(NODES) in text
    assert "2 (2 nodes x 1 tasks, launcher srun)" in text


def test_two_tasks_per_node_are_four_ranks(gang):
    job = json.loads(submit(gang, "--nodes", "2", "--tasks-per-node", "2",
                            "--model-name", "ddp4", "--wait", "--",
                            "python3", "ddp.py").stdout)
    assert job["state"] == "COMPLETED", job
    assert job["ranks"] == 4 and job["tasks_per_node"] == 2
    log = gw_ok(gang, "job", "logs", str(job["id"]))
    for rank, local, node in ((0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1)):
        assert f"{rank}: rank {rank}/4 local {local} node_rank {node}" in log, log
    assert "sum 10.0" in log
    result = json.loads(Path(json.loads(gw_ok(gang, "model", "show", "ddp4@v1", "--json"))
                             ["path"], "result.json").read_text())
    assert result["world"] == 4
    assert model_versions(gang, "ddp4") == 1


def test_torchrun_launcher_starts_one_agent_per_node(gang):
    job = json.loads(submit(gang, "--nodes", "2", "--launcher", "torchrun", "--cpus", "2",
                            "--model-name", "ddptr", "--wait", "--",
                            "torchrun", "--nproc-per-node", "2", "ddp.py").stdout)
    assert job["state"] == "COMPLETED", job
    assert job["launcher"] == "torchrun" and job["ranks"] == 2   # two agents, one a node
    log = gw_ok(gang, "job", "logs", str(job["id"]))
    assert "sum 10.0" in log and "rank 3/4" in log
    assert model_versions(gang, "ddptr") == 1
    # a rerun is the same gang: nodes, tasks per node and launcher come back
    rerun = json.loads(gw_ok(gang, "job", "rerun", str(job["id"]), "--json"))
    gw_ok(gang, "job", "cancel", str(rerun["id"]))
    assert rerun["shape"] == "gang" and rerun["launcher"] == "torchrun"
    assert rerun["resources"]["nodes"] == 2 and rerun["resources"]["cpus"] == 2
    assert rerun["command"] == ["torchrun", "--nproc-per-node", "2", "ddp.py"]


def test_a_rendered_gang_script_run_by_plain_sbatch_is_a_gang(gang, tmp_path):
    script = tmp_path / "ddp.sbatch"
    gw_ok(gang, "job", "render", "--algo", "ddp", "--image", "torch:v1", "--nodes", "2",
          "--mem", "1G", "--model-name", "ddprender", "-o", str(script), "--",
          "python3", "ddp.py")
    slurm_id = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                              text=True, env={**os.environ, **gang}, check=True
                              ).stdout.strip().split(";")[0]

    def ended():
        runs = [j for j in json.loads(gw_ok(gang, "job", "list", "--json"))
                if j["slurm_job_id"] == slurm_id]
        return runs and runs[0]["state"] not in ("PENDING", "RUNNING") and runs[0]

    run = show(gang, wait_for(ended, timeout=180)["id"])
    assert run["state"] == "COMPLETED" and run["origin"] == "sbatch", run
    assert run["shape"] == "rendered_gang" and run["nodes"] == NODES and run["ranks"] == 2
    assert "sum 3.0" in gw_ok(gang, "job", "logs", str(run["id"]), "--task", "1")
    model = json.loads(gw_ok(gang, "model", "show", run["model"], "--json"))
    assert model["nodes"] == NODES and model_versions(gang, "ddprender") == 1


def test_a_failing_rank_ends_the_gang_failed_within_seconds_naming_it(gang):
    mounts = job_mounts()
    job = json.loads(submit(gang, "--nodes", "2", "--model-name", "ddpfail", "--env",
                            "FAIL_RANK=1", "--env", "HANG=1", "--wait", "--",
                            "python3", "ddp.py", check=False).stdout)
    assert job["state"] == "FAILED", job
    assert f"rank 1 on {NODES[1]} exited with status 3" in job["reason"], job["reason"]
    rank_dir = Path(job["job_dir"], "tasks", "1")
    failed_at = float((rank_dir / "exit").read_text().split()[1])
    # rank 0 sleeps 600 s: the gang ended because rank 1 failed, not at its time limit
    assert job["ended"] - failed_at < 15, (job["ended"], failed_at)
    assert model_versions(gang, "ddpfail") == 0
    # Slurm kills the other rank (KillWait 5 s), then each task's trap unmounts its image:
    # on CI's two loaded cores that took up to half a minute once.
    wait_for(lambda: not leftovers(gang["GW_HOME"], mounts), timeout=60,
             why=lambda: leftovers(gang["GW_HOME"], mounts))


def test_cancelled_gang_leaves_no_process_or_mount_on_either_node(gang):
    mounts = job_mounts()
    job = json.loads(submit(gang, "--nodes", "2", "--model-name", "ddpcancel", "--",
                            "sh", "-c", 'echo "rank $RANK up"; sleep 600').stdout)
    wait_for(lambda: "1: rank 1 up" in gw_ok(gang, "job", "logs", str(job["id"])), timeout=120)
    assert len(leftovers(gang["GW_HOME"], mounts)) >= 2   # both ranks' containers are up
    gw_ok(gang, "job", "cancel", str(job["id"]))
    final = wait_for(lambda: (s := show(gang, job["id"]))["state"] == "CANCELLED" and s,
                     timeout=60)
    assert final["state"] == "CANCELLED"
    wait_for(lambda: not leftovers(gang["GW_HOME"], mounts), timeout=60,
             why=lambda: leftovers(gang["GW_HOME"], mounts))
    assert model_versions(gang, "ddpcancel") == 0


@pytest.mark.parametrize("args, limit", [
    (("--nodes", "3"), "(2 nodes)"),
    (("--nodes", "2", "--tasks-per-node", "3"), "asks for 3 CPUs but the largest node"),
    (("--nodes", "2", "--gpus-per-node", "1"), "has 0 GPUs"),
    (("--nodes", "2", "--launcher", "torchrun", "--tasks-per-node", "2"), "torchrun"),
])
def test_more_than_the_partition_has_is_refused_before_any_record(gang, args, limit):
    before = json.loads(gw_ok(gang, "job", "list", "--json"))
    jobs_dir = Path(gang["GW_HOME"], "jobs")
    dirs = sorted(p.name for p in jobs_dir.iterdir()) if jobs_dir.exists() else []
    proc = submit(gang, *args, "--", "python3", "ddp.py", check=False)
    assert proc.returncode != 0
    assert limit in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert json.loads(gw_ok(gang, "job", "list", "--json")) == before
    assert (sorted(p.name for p in jobs_dir.iterdir()) if jobs_dir.exists() else []) == dirs


GANG_WORK = r"""
d=/model/rank$RANK
mkdir -p "$d"
step=0
if [ -f "$d/step" ]; then step=$(cat "$d/step"); fi
echo "$GW_ATTEMPT:$GW_RESUMED:$step" >> "$d/starts"
trap 'echo "$step" > "$d/step"; echo "rank $RANK saved step $step"; exit 0' USR1
while [ "$step" -lt "$1" ]; do
    sleep 1 & wait $!
    step=$((step + 1))
done
echo "$step" > "$d/result"
"""


def test_a_resumable_gang_is_requeued_whole_and_every_rank_resumes(gang, tmp_path):
    """--restarts on two nodes: SIGUSR1 reaches every rank's container through srun, the
    whole gang is requeued, each rank goes on from its own checkpoint, one version."""
    algo = tmp_path / "work"
    algo.mkdir()
    (algo / "work.sh").write_text(GANG_WORK)
    gw_ok(gang, "algo", "push", str(algo), "--name", "gangwork", "-q")
    job = json.loads(run_gw("job", "submit", "--json", "--algo", "gangwork", "--image",
                            "torch:v1", "--mem", "256M", "--nodes", "2", "--time", "1",
                            "--restarts", "2", "--save-seconds", "10", "--", "sh",
                            "work.sh", "70", env=gang).stdout)
    final = wait_for(lambda: (lambda j: j if j["state"] not in (
        "SUBMITTING", "PENDING", "RUNNING") else None)(show(gang, job["id"])), timeout=400,
        step=3)
    log = gw_ok(gang, "job", "logs", str(job["id"]))
    assert final["state"] == "COMPLETED", (final, log)
    assert [a["end"] for a in final["attempts"]] == ["time limit: requeued", "exit 0"], \
        final["attempts"]
    assert "rank 0 saved step" in log and "rank 1 saved step" in log, log
    made = Path(json.loads(gw_ok(gang, "model", "show", final["model"], "--json"))["path"])
    for rank in (0, 1):
        assert (made / f"rank{rank}" / "result").read_text() == "70\n"
        starts = (made / f"rank{rank}" / "starts").read_text().split()
        assert starts[0] == "1:0:0" and starts[1].startswith("2:1:"), starts
        assert int(starts[1].split(":")[2]) > 0, starts
