"""Harvest: a successful job's /model becomes the next version of its model, with lineage.

Crash-safe and idempotent. The steps, each safe to repeat:
1. rename ``jobs/<id>/model`` to ``models/<name>/.incoming-job<id>`` (claims it);
2. in one transaction, record version N (path ``models/<name>/vN``) and link the job to it;
3. rename the incoming directory to ``vN`` and make it read-only.
A crash after 2 is finished by the next run: the job already points at vN and the incoming
directory is still there. Renames stay on one filesystem, so 1 GB costs no copy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hpc_gateway.gateway import db
from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.trees import make_read_only, tree_size


def incoming_dir(gw: Gateway, model_name: str, job_id: int) -> Path:
    """Where a job's /model waits between claim and version."""
    return gw.layout.kind_root("model") / model_name / f".incoming-job{job_id}"


def lineage(gw: Gateway, job: Any, record: dict[str, Any]) -> dict[str, Any]:
    """What a model version records of the job that made it."""
    spec = db.loads(job["spec_json"])
    return {"job_id": job["id"], "job_name": job["name"], "slurm_job_id": job["slurm_job_id"],
            "algo": spec["algo"], "image": spec["image"], "image_digest": spec["image_digest"],
            "dataset": spec["dataset"], "command": spec["command"],
            "resources": spec["resources"], "node": record.get("node", ""),
            "started": record.get("started"), "ended": record.get("ended")}


def harvest_model(gw: Gateway, job_id: int, record: dict[str, Any]) -> str:
    """Turn job ``job_id``'s /model into a model version; returns a note for the job."""
    job = gw.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if job["model_version_id"] is not None:
        _finish(gw, job["model_version_id"], incoming_dir(gw, job["model_name"], job_id))
        return ""
    source = Path(job["job_dir"]) / "model"
    incoming = incoming_dir(gw, job["model_name"], job_id)
    if source.is_dir():
        incoming.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, incoming)
    if not incoming.is_dir():
        return "the job left no /model directory; no model version made"
    file_count, size = tree_size(incoming)
    if file_count == 0:
        os.rename(incoming, source)
        return "/model was empty; no model version made"
    store = gw.store("model")
    with db.transaction(gw.conn):
        collection_id = store.ensure_collection(job["model_name"])
        number = store.next_number(collection_id, job["model_name"])
        final = gw.layout.version_dir("model", job["model_name"], number)
        cursor = gw.conn.execute(
            """INSERT INTO versions (collection_id, number, path, file_count, size_bytes,
               meta_json, job_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (collection_id, number, str(final), file_count, size,
             db.dumps(lineage(gw, job, record)), job_id, time.time()))
        gw.conn.execute("UPDATE jobs SET model_version_id = ? WHERE id = ?",
                        (cursor.lastrowid, job_id))
    _finish(gw, int(cursor.lastrowid), incoming)
    return ""


def _finish(gw: Gateway, version_id: int, incoming: Path) -> None:
    row = gw.conn.execute("SELECT path FROM versions WHERE id = ?", (version_id,)).fetchone()
    if row is None or not incoming.is_dir():
        return
    final = Path(row["path"])
    if not final.exists():
        os.rename(incoming, final)
        make_read_only(final)
