"""An image as the stores know it: one name of a stored (or site) SIF image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
                "site": self.site}
