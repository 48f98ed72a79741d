"""Every path of one job, in one place: its directory, its code and model, its script and
env file, its Slurm output and load samples, its units' directories.

Nothing else composes a job's paths: kinds, shapes, templates and commands ask this object
(templates receive the paths it gives, never build them).
"""

from __future__ import annotations

from pathlib import Path

SCRIPT_NAME = "job.sbatch"
ENV_FILE = "container.env"
UNITS_DIR = "tasks"


class JobLayout:
    """The paths of the job whose directory is ``directory``."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def script(self) -> Path:
        """The sbatch script that was (or was to be) submitted."""
        return self.directory / SCRIPT_NAME

    @property
    def env_file(self) -> Path:
        """The container's 0600 environment file (secrets never go on a command line)."""
        return self.directory / ENV_FILE

    @property
    def code(self) -> Path:
        """The job's writable copy of its algorithm version (/code)."""
        return self.directory / "code"

    @property
    def model(self) -> Path:
        """What the job leaves in /model, harvested as a model version."""
        return self.directory / "model"

    @property
    def units(self) -> Path:
        """Where the units of a job of many units keep their own directories."""
        return self.directory / UNITS_DIR

    def unit_dir(self, index: int) -> Path:
        """Unit ``index``'s own directory (its command, code copy, /model, log)."""
        return self.units / str(index)

    @staticmethod
    def log_in(directory: Path, slurm_id: str) -> Path:
        """Slurm's output file of the run ``slurm_id`` (``123`` or ``123_4``) there."""
        return directory / f"slurm-{slurm_id}.out"

    @staticmethod
    def usage_in(directory: Path, slurm_id: str) -> Path:
        """The load sampler's file of the run ``slurm_id`` there."""
        return directory / f"usage-{slurm_id}.tsv"

    def log(self, slurm_id: str) -> Path:
        """Slurm's output file of the job's run ``slurm_id``."""
        return self.log_in(self.directory, slurm_id)

    def logs(self) -> list[Path]:
        """Every Slurm output file in the job's own directory."""
        return sorted(self.directory.glob("slurm-*.out"))
