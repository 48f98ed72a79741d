"""Golden tests of rendered sbatch scripts: compared byte for byte with files beside this one.

Rewrite them on purpose with ``GW_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff.
"""

import os
from pathlib import Path

import pytest

from gateway.common.specs import Resources
from gateway.context import Gateway
from gateway.home.config import KEYS, Config
from gateway.jobs.kinds import get_kind
from gateway.jobs.model import Job, JobSpec
from gateway.jobs.shapes import get_shape
from gateway.jobs.submit import render_script
from gateway.jobs.values import SubmitContext
from gateway.stores.images import ImageRecord
from gateway.stores.versioned import VersionInfo

GOLDEN = Path(__file__).parent


def gateway() -> Gateway:
    values = {k: v for k, (v, _h) in KEYS.items()}
    values.update(home="/shared/gw", database="/shared/gw/gateway.db")
    return Gateway(Config(values))


IMAGE = ImageRecord(1, "detectron2:v1", "sha256:" + "ab" * 32, Path("/shared/gw/images/x.sif"),
                    4096, 1000, {"env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}, "x.tar", 0)
ALGO = VersionInfo(1, "algo", "detectron2", 3, Path("/shared/gw/algos/detectron2/v3"), 1, 1, 0)
DATA = VersionInfo(2, "data", "coco", 1, Path("/shared/gw/datasets/coco/v1"), 1, 1, 0)


HOME_ID = "0123456789abcdef"


def render(job_id: int, name: str, runtime: str, data, command, env, resources,
           kind: str = "training", shape: str = "single", extra=None) -> str:
    spec = JobSpec(command=command, env=env, runtime=runtime,
                   resources=resources.as_dict(), algo=ALGO.ref, image=IMAGE.name,
                   image_digest=IMAGE.digest, dataset=data.ref if data else None,
                   extra=dict(extra or {}))
    job = Job(id=job_id, kind=kind, origin="cli", name=name, state="SUBMITTING",
              reason="", slurm_job_id=None, node="", exit_code=None, submitted=0,
              started=None, ended=None, updated=None,
              job_dir=Path(f"/shared/gw/jobs/{job_id}"), model_name="detectron2", spec=spec,
              shape=shape)
    gw = gateway()
    ctx = SubmitContext(gw=gw, job=job, image=IMAGE, algo=ALGO, data=data)
    return render_script(get_kind(kind), get_shape(shape), ctx, home_id=HOME_ID,
                         runtime=runtime, resources=resources)


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GW_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with GW_UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("runtime", ["bwrap", "apptainer"])
def test_basic_job(runtime):
    text = render(7, "train run", runtime, DATA, ("python", "tools/train_net.py", "--lr", "0.02"),
                  {}, Resources(4, 0, 16384, 2048, 7200, "debug"))
    check(f"job_basic_{runtime}.sbatch", text)
    assert f"#SBATCH --comment=gw:{HOME_ID}:7" in text


def test_gpu_job_with_hostile_values():
    hostile = "it's \"q\" $(touch /tmp/pwned) `id` \nnew line;  spaces"
    text = render(8, hostile, "bwrap", None, ("sh", "-c", hostile), {"MSG": hostile},
                  Resources(8, 2, 65536, 8192, 86400, "gpu"))
    check("job_gpu_hostile_bwrap.sbatch", text)
    assert "#SBATCH --gres=gpu:2" in text and "#SBATCH --partition=gpu" in text
    assert "#SBATCH --mem=72G" in text  # memory + shm
    sbatch_lines = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert all("$(" not in line and "`" not in line for line in sbatch_lines)


def test_percent_in_home_reaches_slurm_escaped():
    values = {k: v for k, (v, _h) in KEYS.items()}
    values.update(home="/shared/g%jw", database="/shared/g%jw/gateway.db")
    spec = JobSpec(command=("true",), env={}, runtime="bwrap", resources={}, algo=None,
                   image=IMAGE.name, image_digest=IMAGE.digest, dataset=None)
    job = Job(id=1, kind="training", origin="cli", name="p", state="SUBMITTING", reason="",
              slurm_job_id=None, node="", exit_code=None, submitted=0, started=None,
              ended=None, updated=None, job_dir=Path("/shared/g%jw/jobs/1"), model_name="m",
              spec=spec)
    ctx = SubmitContext(gw=Gateway(Config(values)), job=job, image=IMAGE, algo=None, data=None)
    text = render_script(get_kind("training"), get_shape("single"), ctx, home_id=HOME_ID,
                         runtime="bwrap",
                         resources=Resources(1, 0, 100, 64, 60, "debug"))
    assert "#SBATCH --output=/shared/g%%jw/jobs/1/slurm-%j.out" in text


def test_notebook_job():
    from gateway.jobs.kinds.notebook import JUPYTER_COMMAND

    text = render(9, "notebook", "bwrap", DATA, JUPYTER_COMMAND, {"JUPYTER_TOKEN": "secret"},
                  Resources(2, 0, 4096, 64, 7200, "debug"), kind="notebook",
                  extra={"base_url": "/", "proxy_prefix": ""})
    check("job_notebook_bwrap.sbatch", text)
    assert "secret" not in text  # the token travels in the 0600 env file only
    assert "#SBATCH --signal=B:USR1@" in text


def test_headless_job():
    from gateway.jobs.kinds.headless import papermill_command

    command = papermill_command("nb/main.ipynb", {"lr": "0.01"})
    text = render(10, "main", "bwrap", DATA, command, {},
                  Resources(2, 0, 4096, 64, 3600, "debug"), kind="headless",
                  extra={"notebook": "nb/main.ipynb", "params": {"lr": "0.01"}})
    check("job_headless_bwrap.sbatch", text)


def test_sweep_job():
    commands = [["python", "train.py", "--lr", lr] for lr in ("0.1", "0.01", "0.001")]
    text = render(11, "sweep", "bwrap", DATA, ("python", "train.py", "--lr", "{{ lr }}"), {},
                  Resources(2, 0, 4096, 64, 3600, "debug"), shape="array",
                  extra={"tasks": [{"lr": c[-1]} for c in commands], "commands": commands,
                         "max_parallel": 2})
    check("job_sweep_bwrap.sbatch", text)
    assert "#SBATCH --array=0-2%2" in text
    assert "#SBATCH --output=/shared/gw/jobs/11/tasks/%a/slurm-%A_%a.out" in text
    assert text.count("#SBATCH --output=") == 1   # the shape's output, not the job's too


def test_rendered_script():
    text = render(0, "rendered", "bwrap", DATA, ("python", "train.py"), {},
                  Resources(2, 0, 4096, 64, 3600, "debug"), shape="rendered",
                  extra={"render_id": 5})
    check("job_rendered_bwrap.sbatch", text)
    assert "GW_RENDER=5" in text and "GW_RUN_DIR=/shared/gw/jobs/sbatch-" in text


@pytest.mark.parametrize("runtime", ["bwrap", "apptainer"])
def test_gang_job(runtime):
    """Two nodes x two ranks: one srun, each rank its own container and rendezvous."""
    resources = Resources(2, 2, 8192, 1024, 3600, "debug", nodes=2, tasks_per_node=2)
    text = render(12, "ddp", runtime, DATA, ("python", "train.py"), {}, resources,
                  shape="gang", extra={"launcher": "srun"})
    check(f"job_gang_{runtime}.sbatch", text)
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=2" in text
    assert "#SBATCH --gres=gpu:2" in text          # GPUs are per node
    assert text.count("srun --export=ALL --kill-on-bad-exit=1") == 1
    assert "ntasks=1" not in text
    for name in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK",
                 "LOCAL_WORLD_SIZE", "NODE_RANK", "GW_NODES", "PET_NNODES", "PET_NODE_RANK"):
        assert (f"--setenv {name} " in text) or (f"APPTAINERENV_{name}=" in text), name
    assert "NCCL_*" in text                        # the site's interconnect passes through


def test_rendered_gang_script():
    """A rendered script of a gang: each run's directory with a directory per rank, then
    the gang's rendezvous and its one srun; the ranks find the run's directory."""
    resources = Resources(2, 0, 4096, 64, 3600, "debug", nodes=2, tasks_per_node=1)
    text = render(0, "ddp", "bwrap", DATA, ("python", "train.py"), {}, resources,
                  shape="rendered_gang", extra={"render_id": 7})
    check("job_rendered_gang_bwrap.sbatch", text)
    assert "GW_RENDER=7" in text and "export GW_RUN_DIR" in text
    assert 'gw_rank_dir="$GW_RUN_DIR"/tasks/"$SLURM_PROCID"' in text
    assert text.index("export GW_RUN_DIR") < text.index("srun --export=ALL --kill-on-bad-exit=1")


def test_a_job_of_a_building_image_waits_for_its_build_and_reads_the_offset_on_the_node():
    import sys
    from dataclasses import replace

    global IMAGE
    made = IMAGE
    IMAGE = replace(made, state="BUILDING", build_job_id=3, build_slurm_id="4242")
    try:
        text = render(9, "waits", "bwrap", DATA, ("sh", "train.sh"), {},
                      Resources(1, 0, 1024, 64, 600, "debug"))
        ready = render(9, "waits", "bwrap", DATA, ("sh", "train.sh"), {},
                       Resources(1, 0, 1024, 64, 600, "debug"))
    finally:
        IMAGE = made
    assert "#SBATCH --dependency=afterok:4242\n#SBATCH --kill-on-invalid-dep=yes\n" in text
    assert f"gw_sif_offset=$({sys.executable} -m containers.sif offset " in text
    text_ready = render(9, "waits", "bwrap", DATA, ("sh", "train.sh"), {},
                        Resources(1, 0, 1024, 64, 600, "debug"))
    assert "--dependency" not in text_ready and "gw_sif_offset=4096\n" in text_ready
    assert ready == text


def test_an_image_build_job_runs_the_converter_and_no_container():
    from dataclasses import replace

    global IMAGE
    made = IMAGE
    IMAGE = replace(made, state="BUILDING", build_job_id=3, build_slurm_id=None)
    try:
        text = render(3, "image-build-detectron2-v1", "bwrap", None,
                      ("/venv/bin/python", "-m", "containers.build_job", "build-request.json"),
                      {}, Resources(2, 0, 4096, 1, 7200, "debug"), kind="image_build")
    finally:
        IMAGE = made
    check("job_image_build.sbatch", text)
    assert "bwrap --" not in text and "squashfuse" not in text and "--dependency" not in text
    assert "\n/venv/bin/python -m containers.build_job build-request.json\n" in text


def test_resumable_job():
    """--restarts: requeued by Slurm or by itself ahead of the limit, its command told the
    attempt and signalled to save (docs/resume.md)."""
    resources = Resources(2, 0, 4096, 64, 3600, "debug", restarts=3, save_seconds=90)
    text = render(13, "long", "bwrap", DATA, ("python", "train.py"), {}, resources)
    check("job_resumable_bwrap.sbatch", text)
    for flag in ("--requeue", "--open-mode=append", "--signal=B:USR1@90"):
        assert f"#SBATCH {flag}\n" in text
    assert '--setenv GW_ATTEMPT "$gw_attempt"' in text
    assert "gw_resume_end \"$gw_status\"" in text and "gw_command &" in text
    assert "gw_requeue \"exit" not in text    # a failure of its own is not restarted
    again = render(13, "long", "bwrap", DATA, ("python", "train.py"), {},
                   Resources(2, 0, 4096, 64, 3600, "debug", restarts=1, save_seconds=90,
                             restart_on_failure=True))
    assert "gw_requeue \"exit $gw_status\"" in again


def test_resumable_rendered_script():
    """A rendered script with --restarts: a requeued run (same Slurm id) keeps its
    directory, /code and /model; its first attempt lays them out as any run does."""
    resources = Resources(2, 0, 4096, 64, 3600, "debug", restarts=2, save_seconds=60)
    text = render(0, "rendered", "bwrap", DATA, ("python", "train.py"), {}, resources,
                  shape="rendered", extra={"render_id": 5})
    check("job_rendered_resumable_bwrap.sbatch", text)
    for flag in ("--requeue", "--open-mode=append", "--signal=B:USR1@60"):
        assert f"#SBATCH {flag}\n" in text
    kept = text.index('if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] && [ -d "$GW_RUN_DIR/model" ]')
    assert kept < text.index('    mkdir -m 700 -- "$GW_RUN_DIR"') < text.index("\nfi\n", kept)
    assert "gw_resume_end" in text
    gang = render(0, "ddp", "bwrap", DATA, ("python", "train.py"), {},
                  Resources(2, 0, 4096, 64, 3600, "debug", nodes=2, tasks_per_node=1,
                            restarts=1, save_seconds=60),
                  shape="rendered_gang", extra={"render_id": 7, "launcher": "srun"})
    kept = gang.index('if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]')
    assert kept < gang.index('mkdir -m 700 -p -- "$GW_RUN_DIR/tasks/$gw_rank"')
    assert "#SBATCH --requeue\n" in gang and "gw_resume_end" in gang


def test_a_job_without_restarts_is_neither_requeued_nor_signalled():
    text = render(7, "train run", "bwrap", DATA, ("python", "train.py"), {},
                  Resources(4, 0, 16384, 2048, 7200, "debug"))
    assert "requeue" not in text and "--signal" not in text and "GW_ATTEMPT" not in text
