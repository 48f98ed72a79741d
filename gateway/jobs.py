"""Training jobs: submit (render + sbatch), read, cancel, logs, outputs."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpc_gateway.gateway import db
from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import InvalidInput, NotFound
from hpc_gateway.gateway.slurm.adapter import ACTIVE, TERMINAL
from hpc_gateway.gateway.specs import Resources, VersionRef, check_name, format_mib, format_time
from hpc_gateway.gateway.trees import copy_writable, remove_tree

SCRIPT_NAME = "job.sbatch"


@dataclass(frozen=True)
class JobRequest:
    """Everything `gw job submit` was asked for, validated."""

    algo: VersionRef
    image: str
    data: VersionRef | None
    name: str | None
    command: tuple[str, ...]
    env: dict[str, str]
    resources: Resources
    model_name: str | None = None


def job_slurm_flags(job_id: int, name: str, resources: Resources, job_dir: Path) -> list[str]:
    """The ``#SBATCH`` flags of a job, built from data and quoted."""
    from hpc_gateway.gateway.render import sbatch_flag, slurm_job_name

    flags = [sbatch_flag("job-name", slurm_job_name(name)),
             sbatch_flag("chdir", job_dir),
             sbatch_flag("output", job_dir / "slurm-%j.out"),
             sbatch_flag("nodes", 1), sbatch_flag("ntasks", 1),
             sbatch_flag("cpus-per-task", resources.cpus),
             sbatch_flag("mem", format_mib(resources.slurm_mem_mib)),
             sbatch_flag("time", format_time(resources.time_seconds))]
    if resources.gpus:
        flags.append(sbatch_flag("gres", f"gpu:{resources.gpus}"))
    if resources.partition:
        flags.append(sbatch_flag("partition", resources.partition))
    return flags


def node_scratch_name(job_id: int, job_dir: Path) -> str:
    """A node-local directory name unique to this job across every user's GW_HOME.

    Job ids restart at 1 in each GW_HOME, so two users' job 1 could share a node: the
    name also carries a hash of the job's directory.
    """
    import hashlib

    return f"gw-job-{job_id}-{hashlib.sha256(str(job_dir).encode()).hexdigest()[:10]}"


def render_job_script(gw: Gateway, *, job_id: int, name: str, job_dir: Path, image,
                      algo, data, request: JobRequest, runtime: str) -> str:
    """The sbatch script of a job (see templates/sbatch/job.sh.j2)."""
    from hpc_gateway.containers.runtime import ContainerSpec, Mount, container_script
    from hpc_gateway.gateway.render import render

    mounts = [Mount(str(job_dir / "code"), "/code"), Mount(str(job_dir / "model"), "/model")]
    if data is not None:
        mounts.insert(1, Mount(str(data.path), "/dataset", read_only=True))
    env: dict[str, str] = dict(image.config.get("env", {}))
    env.update({"GW_JOB_ID": str(job_id), "GW_JOB_NAME": name, "GW_ALGO": algo.ref,
                "GW_DATASET": data.ref if data else "", "GW_IMAGE": image.name})
    env.update(request.env)
    spec = ContainerSpec(
        sif=str(image.sif_path), partition_offset=image.partition_offset,
        scratch=str(Path(gw.config["node_scratch"]) / node_scratch_name(job_id, job_dir)),
        mounts=tuple(mounts), workdir="/code", env=tuple(env.items()),
        command=request.command, gpus=request.resources.gpus,
        shm_bytes=request.resources.shm_mib * 1024 * 1024)
    return render("sbatch/job.sh.j2",
                  sbatch_flags=job_slurm_flags(job_id, name, request.resources, job_dir),
                  job_id=job_id, algo_ref=algo.ref, image_name=image.name,
                  image_digest=image.digest, data_ref=data.ref if data else "none",
                  runtime=runtime, spool_dir=str(gw.layout.spool),
                  container=container_script(spec, runtime))


def submit_job(gw: Gateway, request: JobRequest) -> dict[str, Any]:
    """Render and submit a job; nothing is left behind when any step fails."""
    from hpc_gateway.containers.runtime import detect_runtime
    from hpc_gateway.gateway.images import get_image
    from hpc_gateway.gateway.specs import check_against_partitions

    if not request.command:
        raise InvalidInput("no command: put it after `--`, e.g. gw job submit ... -- python "
                           "train.py")
    algo = gw.store("algo").resolve(request.algo)
    data = gw.store("data").resolve(request.data) if request.data else None
    image = get_image(gw, request.image)
    model_name = check_name(request.model_name or algo.meta.get("model_name") or algo.name,
                            "model")
    runtime = detect_runtime(str(gw.config["runtime"]))
    partition = check_against_partitions(request.resources, gw.slurm.partitions())
    name = request.name or f"{algo.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = {"command": list(request.command), "env": request.env, "runtime": runtime,
            "resources": {**request.resources.as_dict(), "partition": partition},
            "algo": algo.ref, "image": image.name,
            "image_digest": image.digest, "dataset": data.ref if data else None}
    with db.transaction(gw.conn):
        cursor = gw.conn.execute(
            """INSERT INTO jobs (name, state, submitted, algo_version_id, data_version_id,
               image_id, model_name, spec_json, job_dir) VALUES (?, 'SUBMITTING', ?, ?, ?, ?,
               ?, ?, '')""",
            (name, time.time(), algo.id, data.id if data else None, image.id, model_name,
             db.dumps(spec)))
        job_id = int(cursor.lastrowid)
        job_dir = gw.layout.job_dir(job_id)
        gw.conn.execute("UPDATE jobs SET job_dir = ? WHERE id = ?", (str(job_dir), job_id))
    try:
        remove_tree(job_dir)
        job_dir.mkdir(parents=True)
        copy_writable(algo.path, job_dir / "code")
        (job_dir / "model").mkdir()
        script = job_dir / SCRIPT_NAME
        script.write_text(render_job_script(gw, job_id=job_id, name=name, job_dir=job_dir,
                                            image=image, algo=algo, data=data,
                                            request=request, runtime=runtime))
        slurm_id = gw.slurm.submit(script)
    except BaseException:
        remove_tree(job_dir)
        with db.transaction(gw.conn):
            gw.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        raise
    with db.transaction(gw.conn):
        gw.conn.execute("UPDATE jobs SET slurm_job_id = ?, state = 'PENDING' WHERE id = ?",
                        (slurm_id, job_id))
    return get_job(gw, job_id)


_JOB_SELECT = """
SELECT j.*, a.number AS algo_number, ac.name AS algo_name,
       d.number AS data_number, dc.name AS data_name,
       m.number AS model_number, mc.name AS model_coll, i.digest AS image_digest
FROM jobs j
LEFT JOIN versions a ON a.id = j.algo_version_id LEFT JOIN collections ac ON ac.id = a.collection_id
LEFT JOIN versions d ON d.id = j.data_version_id LEFT JOIN collections dc ON dc.id = d.collection_id
LEFT JOIN versions m ON m.id = j.model_version_id LEFT JOIN collections mc ON mc.id = m.collection_id
LEFT JOIN images i ON i.id = j.image_id
"""


def job_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A job row as the stable dictionary `gw job show --json` prints."""
    spec = db.loads(row["spec_json"])
    model = f"{row['model_coll']}@v{row['model_number']}" if row["model_number"] else None
    job_dir = Path(row["job_dir"])
    return {
        "id": row["id"], "name": row["name"], "state": row["state"], "reason": row["reason"],
        "slurm_job_id": row["slurm_job_id"], "exit_code": row["exit_code"],
        "node": row["node"], "submitted": row["submitted"], "started": row["started"],
        "ended": row["ended"], "algo": spec["algo"], "image": spec["image"],
        "image_digest": spec["image_digest"], "dataset": spec["dataset"],
        "command": spec["command"], "env": spec["env"], "resources": spec["resources"],
        "runtime": spec["runtime"], "model_name": row["model_name"], "model": model,
        "job_dir": str(job_dir), "script": str(job_dir / SCRIPT_NAME),
        "log": str(job_dir / f"slurm-{row['slurm_job_id']}.out") if row["slurm_job_id"] else None,
    }


def get_job(gw: Gateway, job_id: int) -> dict[str, Any]:
    """One job by gateway id."""
    row = gw.conn.execute(_JOB_SELECT + " WHERE j.id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFound(f"no job {job_id} (see `gw job list`)")
    return job_dict(row)


def list_jobs(gw: Gateway, states: tuple[str, ...] = (), limit: int | None = None
              ) -> list[dict[str, Any]]:
    """Jobs, newest first, optionally filtered by state."""
    query = "SELECT id, name, state, slurm_job_id, submitted, ended, node, exit_code, " \
            "model_name, model_version_id FROM jobs"
    args: list[Any] = []
    if states:
        query += f" WHERE state IN ({','.join('?' * len(states))})"
        args.extend(s.upper() for s in states)
    query += " ORDER BY id DESC"
    if limit:
        query += " LIMIT ?"
        args.append(limit)
    return [dict(r) for r in gw.conn.execute(query, args).fetchall()]


def cancel_job(gw: Gateway, job_id: int) -> dict[str, Any]:
    """``scancel`` a job that is still active."""
    job = get_job(gw, job_id)
    if job["state"] not in ACTIVE:
        raise InvalidInput(f"job {job_id} is already {job['state']}")
    gw.slurm.cancel(job["slurm_job_id"])
    return job


def log_path(job: dict[str, Any]) -> Path:
    """The job's Slurm output file."""
    if not job["log"]:
        raise NotFound(f"job {job['id']} has no log yet")
    return Path(job["log"])


def write_outputs(job: dict[str, Any], out: Path) -> int:
    """Pack what the job left in /code and its logs into ``out`` (.tar.gz); returns bytes."""
    import tarfile

    job_dir = Path(job["job_dir"])
    if not (job_dir / "code").exists():
        raise NotFound(f"job {job['id']} has no outputs (its directory {job_dir} is gone)")
    if job["state"] not in TERMINAL:
        raise InvalidInput(f"job {job['id']} is {job['state']}; outputs are ready when it ends")
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(job_dir / "code", arcname="code")
            for log in sorted(job_dir.glob("slurm-*.out")):
                tar.add(log, arcname=f"logs/{log.name}")
            tar.add(job_dir / SCRIPT_NAME, arcname=f"logs/{SCRIPT_NAME}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size
