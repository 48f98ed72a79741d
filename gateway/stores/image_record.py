"""An image as the stores know it: one name of a stored (or site) SIF image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What an image can be: its SIF being made by a build job, made, or not made (reason says why).
IMAGE_STATES = ("BUILDING", "READY", "FAILED")


@dataclass(frozen=True)
class ImageRecord:
    """A stored image and one of its names."""

    id: int
    name: str
    digest: str
    sif_path: Path
    partition_offset: int
    size_bytes: int
    config: dict[str, Any]
    source: str
    created: float
    site: bool = False  # published by the site's administrators (gateway/stores/site_images.py)
    state: str = "READY"            # BUILDING, READY or FAILED (see IMAGE_STATES)
    reason: str = ""                # why it FAILED (the converter's or Slurm's words)
    build_job_id: int | None = None  # the gateway job that builds (or built) its SIF
    build_slurm_id: str | None = None  # that job's Slurm id (None: not submitted yet)

    @property
    def ready(self) -> bool:
        """Its SIF is built: jobs can run it."""
        return self.state == "READY"

    @property
    def pending_build(self) -> str | None:
        """The Slurm id of the build a job of this image must wait for (``afterok``);
        None when there is none to wait for."""
        return self.build_slurm_id if self.state == "BUILDING" else None

    @property
    def record_id(self) -> int | None:
        """The id a job records; None for a site image, which is in no table of this
        home (the job's spec keeps its name and digest)."""
        return None if self.site else self.id

    def as_dict(self) -> dict[str, Any]:
        """Stable fields for ``--json``."""
        return {"name": self.name, "digest": self.digest, "sif": str(self.sif_path),
                "partition_offset": self.partition_offset, "bytes": self.size_bytes,
                "source": self.source, "created": self.created, "config": self.config,
                "site": self.site, "state": self.state, "reason": self.reason,
                "build_job": self.build_job_id, "build_slurm_job": self.build_slurm_id}
