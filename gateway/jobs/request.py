"""What a submission asks for: one typed request, made by the CLI, recipes, reruns,
notebooks and sweeps, checked and submitted by gateway/jobs/submit.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.common.specs import Resources, VersionRef


@dataclass(frozen=True)
class JobRequest:
    """Everything a submission asks for, validated."""

    algo: VersionRef | None
    image: str
    data: VersionRef | None
    name: str | None
    command: tuple[str, ...]
    env: dict[str, str]
    resources: Resources
    model_name: str | None = None
    kind: str = "training"
    shape: str = "single"
    origin: str = "cli"
    extra: dict[str, object] = field(default_factory=dict)
    recipe: dict[str, object] = field(default_factory=dict)   # see gateway/jobs/recipes.py
