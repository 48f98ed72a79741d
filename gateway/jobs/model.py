"""The job: one typed record, its states, and how Slurm's state words map onto them.

This module owns the gateway's states and is the one place that maps Slurm's words onto
them (the Slurm adapter only parses). The database side is gateway/jobs/repository.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.jobs.layout import JobLayout
from gateway.jobs.states import ACTIVE, STATES, TERMINAL

__all__ = ["ACTIVE", "STATES", "TERMINAL", "Job", "JobSpec", "JobTask", "hide_env_values",
           "state_from_slurm"]

_SLURM_STATES = {
    "PENDING": "PENDING", "CONFIGURING": "PENDING", "REQUEUED": "PENDING",
    "REQUEUE_FED": "PENDING", "REQUEUE_HOLD": "PENDING", "RESV_DEL_HOLD": "PENDING",
    "RUNNING": "RUNNING", "COMPLETING": "RUNNING", "SUSPENDED": "RUNNING",
    "STAGE_OUT": "RUNNING", "SIGNALING": "RUNNING", "RESIZING": "RUNNING", "STOPPED": "RUNNING",
    "COMPLETED": "COMPLETED", "FAILED": "FAILED", "BOOT_FAIL": "FAILED", "DEADLINE": "TIMEOUT",
    "CANCELLED": "CANCELLED", "REVOKED": "CANCELLED", "PREEMPTED": "CANCELLED",
    "TIMEOUT": "TIMEOUT", "OUT_OF_MEMORY": "OUT_OF_MEMORY", "NODE_FAIL": "NODE_FAIL",
}


def state_from_slurm(slurm_state: str) -> str:
    """The gateway state for a Slurm state word (``CANCELLED by 0`` -> ``CANCELLED``);
    a word Slurm may add later maps to UNKNOWN, never to a guess."""
    word = slurm_state.split()[0].rstrip("+") if slurm_state.strip() else ""
    return _SLURM_STATES.get(word, "UNKNOWN")


@dataclass(frozen=True)
class JobSpec:
    """What a job was asked to run, as recorded at submission (``spec_json``)."""

    command: tuple[str, ...]
    env: dict[str, str]
    runtime: str
    resources: dict[str, Any]
    algo: str | None
    image: str
    image_digest: str
    dataset: str | None
    extra: dict[str, Any] = field(default_factory=dict)   # what a kind adds of its own
    # How it was asked for: the template or job it came from, the options as typed, what
    # was overridden and the --set values (gateway/jobs/recipes.py).
    recipe: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"command": list(self.command), "env": self.env, "runtime": self.runtime,
                "resources": self.resources, "algo": self.algo, "image": self.image,
                "image_digest": self.image_digest, "dataset": self.dataset,
                "extra": self.extra, "recipe": self.recipe}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        """Read the stored form (schema-1 rows lack ``extra``)."""
        return cls(command=tuple(data["command"]), env=dict(data.get("env") or {}),
                   runtime=data.get("runtime", ""), resources=dict(data["resources"]),
                   algo=data.get("algo"), image=data["image"],
                   image_digest=data.get("image_digest", ""), dataset=data.get("dataset"),
                   extra=dict(data.get("extra") or {}),
                   recipe=dict(data.get("recipe") or {}))


def hide_env_values(options: dict[str, Any]) -> dict[str, Any]:
    """Recipe options for display: ``--env`` values are secrets, only names are shown."""
    if "env" not in options:
        return dict(options)
    return {**options, "env": [str(e).partition("=")[0] for e in options["env"]]}


@dataclass(frozen=True)
class Job:
    """One gateway job, as the repository reads it."""

    id: int
    kind: str
    origin: str
    name: str
    state: str
    reason: str
    slurm_job_id: str | None
    node: str
    exit_code: int | None
    submitted: float
    started: float | None
    ended: float | None
    updated: float | None
    job_dir: Path
    model_name: str
    spec: JobSpec
    algo_version_id: int | None = None
    data_version_id: int | None = None
    image_id: int | None = None
    model_version_id: int | None = None
    model_ref: str | None = None          # NAME@vN of the model version it made
    shape: str = "single"                 # how many units run and how (gateway/jobs/shapes/)

    @property
    def active(self) -> bool:
        """Not finished yet."""
        return self.state in ACTIVE

    @property
    def layout(self) -> JobLayout:
        """Every path of the job."""
        return JobLayout(self.job_dir)

    @property
    def script_path(self) -> Path:
        """The sbatch script that was (or was to be) submitted."""
        return self.layout.script

    @property
    def log_path(self) -> Path | None:
        """Slurm's output file of the job's own run (None before Slurm gave it an id)."""
        return self.layout.log(self.slurm_job_id) if self.slurm_job_id else None

    def as_dict(self) -> dict[str, Any]:
        """The stable dictionary ``gw job show --json`` prints. ``--env`` values are
        secrets: only their names are shown."""
        return {
            "id": self.id, "kind": self.kind, "shape": self.shape, "origin": self.origin,
            "name": self.name,
            "state": self.state, "reason": self.reason, "slurm_job_id": self.slurm_job_id,
            "exit_code": self.exit_code, "node": self.node, "submitted": self.submitted,
            "started": self.started, "ended": self.ended, "updated": self.updated,
            "algo": self.spec.algo, "image": self.spec.image,
            "image_digest": self.spec.image_digest, "dataset": self.spec.dataset,
            "command": list(self.spec.command), "env": sorted(self.spec.env),
            "resources": self.spec.resources, "runtime": self.spec.runtime,
            "model_name": self.model_name, "model": self.model_ref,
            # the saved recipe it was run from (also "template": its name until recipes
            # were called so)
            "recipe": self.spec.recipe.get("template"),
            "template": self.spec.recipe.get("template"),
            "rerun_of": self.spec.recipe.get("rerun_of"),
            "overrides": hide_env_values(self.spec.recipe.get("overrides") or {}),
            "set": self.spec.recipe.get("set") or {},
            "job_dir": str(self.job_dir), "script": str(self.script_path),
            "log": str(self.log_path) if self.log_path else None,
        }


@dataclass(frozen=True)
class JobTask:
    """One task of a job of array shape (a sweep): its sweep values, state and model."""

    job_id: int
    task: int
    params: dict[str, str]
    state: str
    reason: str = ""
    exit_code: int | None = None
    node: str = ""
    started: float | None = None
    ended: float | None = None
    model_version_id: int | None = None
    model_ref: str | None = None

    @property
    def active(self) -> bool:
        """Not finished yet."""
        return self.state in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        """The stable dictionary `gw job show --json` lists under ``tasks``."""
        return {"task": self.task, "params": self.params, "state": self.state,
                "reason": self.reason, "exit_code": self.exit_code, "node": self.node,
                "started": self.started, "ended": self.ended, "model": self.model_ref}
