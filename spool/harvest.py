"""Harvest: a successful job's /model becomes the next version of its model, with lineage.

Crash-safe and idempotent. The steps, each safe to repeat:
1. rename ``jobs/<id>/model`` to ``models/<name>/.incoming-job<id>`` (claims it);
2. in one transaction, record version N (path ``models/<name>/vN``) and link the job to it;
3. rename the incoming directory to ``vN`` and make it read-only.
A crash after 2 is finished by the next run: the job already points at vN and the incoming
directory is still there. Renames stay on one filesystem, so 1 GB costs no copy. Entries a
model may not hold (FIFOs, devices, links leading outside it) are dropped and named.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.trees import make_read_only, remove_unsafe_entries, tree_size
from gateway.context import Gateway
from gateway.home import database as db
from gateway.jobs.model import Job
from spool.format import SpoolRecord

if TYPE_CHECKING:
    from gateway.jobs.values import Unit


def incoming_dir(gw: Gateway, model_name: str, job_id: int, unit: int | None = None) -> Path:
    """Where a job's (or one of its units') /model waits between claim and version."""
    suffix = "" if unit is None else f"-task{unit}"
    return gw.layout.kind_root("model") / model_name / f".incoming-job{job_id}{suffix}"


def lineage(job: Job, record: SpoolRecord) -> dict[str, Any]:
    """What a model version records of the job that made it."""
    spec = job.spec
    return {"job_id": job.id, "job_name": job.name, "slurm_job_id": job.slurm_job_id,
            "kind": job.kind, "shape": job.shape, "algo": spec.algo, "image": spec.image,
            "image_digest": spec.image_digest, "dataset": spec.dataset,
            "command": list(spec.command), "resources": spec.resources,
            "node": record.node, "started": record.started, "ended": record.ended}


def harvest_model(gw: Gateway, job: Job, unit: Unit, record: SpoolRecord) -> str:
    """Turn the unit's /model into a model version; returns a note for the unit."""
    # fresh: another ingester may have harvested it meanwhile
    linked = gw.jobs.unit_model_version(job.id, unit.index)
    extra = {**unit.lineage, "slurm_job_id": unit.slurm_id or job.slurm_job_id}
    return harvest_tree(gw, job, record, source=unit.model,
                        incoming=incoming_dir(gw, job.model_name, job.id, unit.index),
                        linked_version_id=linked,
                        link=lambda version_id: gw.jobs.link_unit_model(job.id, unit.index,
                                                                        version_id),
                        lineage_extra=extra)


def harvest_tree(gw: Gateway, job: Job, record: SpoolRecord, *, source: Path, incoming: Path,
                 linked_version_id: int | None, link: Callable[[int], object],
                 lineage_extra: dict[str, Any] | None = None) -> str:
    """Turn ``source`` (a unit's /model) into the next version of the
    job's model. ``link`` records the version on its owner inside the same transaction;
    ``linked_version_id`` says it already was (a crash after step 2: finish the rename)."""
    if linked_version_id is not None:
        _finish(gw, linked_version_id, incoming)
        return ""
    if source.is_dir():
        incoming.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.rename(source, incoming)
    if not incoming.is_dir():
        return "the job left no /model directory; no model version made"
    dropped = remove_unsafe_entries(incoming)
    file_count, size = tree_size(incoming)
    if file_count == 0:
        os.rename(incoming, source)
        return "/model was empty; no model version made"
    make_read_only(incoming)
    store = gw.store("model")
    with db.transaction(gw.conn):
        collection_id = store.ensure_collection(job.model_name)
        number = store.next_number(collection_id, job.model_name)
        final = gw.layout.version_dir("model", job.model_name, number)
        version_id = store.rows.insert(
            collection_id=collection_id, number=number, path=str(final),
            file_count=file_count, size_bytes=size,
            meta={**lineage(job, record), **(lineage_extra or {})}, job_id=job.id)
        link(version_id)
    _finish(gw, version_id, incoming)
    store.changed(job.model_name)  # a shared model publishes its new version
    return f"left out of the model: {'; '.join(dropped)}"[:500] if dropped else ""


def _finish(gw: Gateway, version_id: int, incoming: Path) -> None:
    path = gw.store("model").rows.path_of(version_id)
    if path is None or not incoming.is_dir():
        return
    final = Path(path)
    if not final.exists():
        os.rename(incoming, final)
