"""A job's load: what its sampler recorded (`gw job top`) and what Slurm's accounting
says it used (`gw job show`).

The sampler (templates/sbatch/sampler.sh.j2) writes ``usage-<Slurm id>.tsv`` in the job's
directory (a unit's in its own: gateway/jobs/shapes/): a header, then one line every couple of
seconds with the time, CPU use in percent of one CPU, resident memory in KiB, and where
nvidia-smi exists the GPU utilisation and GPU memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import NotFound
from gateway.jobs.model import Job

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.values import Unit

SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Sample:
    """One line of the sampler's file."""

    time: int
    cpu_percent: float
    rss_kib: int
    gpu_percent: float | None
    gpu_mem_mib: int | None

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"time": self.time, "cpu_percent": self.cpu_percent,
                "rss_bytes": self.rss_kib * 1024, "gpu_percent": self.gpu_percent,
                "gpu_mem_bytes": None if self.gpu_mem_mib is None
                else self.gpu_mem_mib * 1024 * 1024}


def usage_file(gw: Gateway, job: Job, task: int | None = None) -> Path:
    """Where the sampler of the job's unit ``task`` (None: the default one) writes."""
    return _usage_of(job, load_units(gw, job, task)[0])


def load_units(gw: Gateway, job: Job, task: int | None = None) -> list[Unit]:
    """The units whose load `gw job top` shows (a gang's every rank; one task of a sweep),
    of a started job."""
    from gateway.jobs.shapes import shape_of

    if job.slurm_job_id is None:
        raise NotFound(f"job {job.id} has not started")
    return shape_of(job).load_units(gw, job, task)


def _usage_of(job: Job, unit: Unit) -> Path:
    if unit.usage is None:
        raise NotFound(f"job {job.id} has not started")
    return unit.usage


def read_unit_samples(job: Job, unit: Unit) -> list[Sample]:
    """What the sampler of ``unit`` has written so far ([] before its first line)."""
    try:
        return parse_samples(_usage_of(job, unit).read_text())
    except FileNotFoundError:
        return []


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_samples(text: str) -> list[Sample]:
    """The samples in a sampler file (a torn last line or a bad line is skipped)."""
    samples = []
    for line in text.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        cpu, rss = _number(fields[1]), _number(fields[2])
        if cpu is None or rss is None:
            continue
        gpu, gpu_mem = _number(fields[3]), _number(fields[4])
        samples.append(Sample(int(fields[0]), cpu, int(rss), gpu,
                              None if gpu_mem is None else int(gpu_mem)))
    return samples


def read_samples(gw: Gateway, job: Job, task: int | None = None) -> list[Sample]:
    """What the sampler of the job's unit ``task`` has written so far."""
    return read_unit_samples(job, load_units(gw, job, task)[0])


def summary(samples: list[Sample]) -> dict[str, Any]:
    """Peak memory, mean and peak CPU, mean GPU use (None where not measured)."""
    if not samples:
        return {"samples": 0, "peak_rss_bytes": None, "mean_cpu_percent": None,
                "peak_cpu_percent": None, "mean_gpu_percent": None,
                "peak_gpu_mem_bytes": None}
    gpu = [s.gpu_percent for s in samples if s.gpu_percent is not None]
    gpu_mem = [s.gpu_mem_mib for s in samples if s.gpu_mem_mib is not None]
    return {"samples": len(samples),
            "peak_rss_bytes": max(s.rss_kib for s in samples) * 1024,
            "mean_cpu_percent": round(sum(s.cpu_percent for s in samples) / len(samples), 1),
            "peak_cpu_percent": max(s.cpu_percent for s in samples),
            "mean_gpu_percent": round(sum(gpu) / len(gpu), 1) if gpu else None,
            "peak_gpu_mem_bytes": max(gpu_mem) * 1024 * 1024 if gpu_mem else None}


def sparkline(values: list[float], width: int = 60) -> str:
    """A one-line plot of ``values`` (the last ``width`` of them, scaled to their max)."""
    values = values[-width:]
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))]
                   for v in values)
