"""A notebook's draft: its /code, saved as the next version of its algorithm when the
notebook ends (or on `gw notebook save`), and the token its server is opened with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.common.errors import GatewayError, InvalidInput
from gateway.common.specs import VersionRef

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.stores.versioned import VersionInfo

# What Jupyter and Python leave in a draft that is not code: never part of a saved version.
DRAFT_EXCLUDES = frozenset({".ipynb_checkpoints", "__pycache__", ".jupyter", ".local",
                            ".cache", ".ipython", ".virtual_documents"})
TOKEN_VARIABLE = "JUPYTER_TOKEN"


def saved_versions(gw: Gateway, job: Job) -> list[str]:
    """The algorithm versions this notebook saved, oldest first."""
    return [f"{name}@v{number}"
            for name, number in gw.store("algo").rows.saved_by_notebook(job.id)]


def save_draft(gw: Gateway, job: Job) -> VersionInfo | None:
    """Store the notebook's draft as the next version of its algorithm; None when it has
    not changed since the version it came from (or the last one it saved). A notebook on
    another user's shared algorithm (``alice:det@v2``) saves into your own ``det``."""
    from gateway.common.specs import parse_version_ref

    if not job.spec.algo:
        raise InvalidInput(f"notebook {job.id} has no algorithm to save into")
    started_from = parse_version_ref(job.spec.algo, "algorithm")
    name = started_from.name
    store = gw.store("algo")
    saved = saved_versions(gw, job)
    baseline: VersionInfo | None
    if saved:
        baseline = store.resolve(VersionRef(name, int(saved[-1].rsplit("@v", 1)[1])))
    elif started_from.owner:
        try:
            baseline = gw.version("algo", started_from)
        except GatewayError:  # unshared meanwhile: the draft is a new version anyway
            baseline = None
    else:
        baseline = store.by_id(job.algo_version_id)
    meta = {"description": f"saved from notebook {job.id}", "origin": f"notebook {job.id}",
            "parent": baseline.ref if baseline else job.spec.algo, "notebook_job": job.id}
    version, created = store.push(job.job_dir / "code", name, meta, exclude=DRAFT_EXCLUDES,
                                  unchanged_from=baseline)
    return version if created else None


def save_draft_note(gw: Gateway, job: Job) -> str:
    """:func:`save_draft` for the end of a notebook: a note for its reason, never an error
    (a draft that cannot be saved stays where it is, and the note says where)."""
    try:
        version = save_draft(gw, job)
    except GatewayError as exc:
        return f"code not saved ({exc}); the draft stays in {job.job_dir / 'code'}"
    return f"code saved as {version.ref}" if version else "code unchanged: no new version"
