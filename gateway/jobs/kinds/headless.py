"""A headless notebook (the web platform's background task): a notebook in the algorithm
version runs top to bottom inside the container, as a batch job.

It runs with papermill where the image has it, and otherwise with the gateway's own runner
(gateway/jobs/kinds/notebook_runner.py) in the image's Python over nbclient, which JupyterLab
brings: an image made with only ``pip3 install jupyterlab`` runs it. Both log each cell as
it starts (`gw job logs -f`), fill the cell tagged ``parameters`` from ``--param``, write
the executed notebook with its outputs next to the original in the job's /code (so `gw job
outputs` holds it), and exit non-zero when a cell raises; the end handler then names that
cell and its error.
"""

from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Any

from containers.mounts import CODE
from gateway.jobs.kinds.layout import StandardKind
from gateway.jobs.values import JobEnd

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.values import Unit

EXECUTED_SUFFIX = ".executed.ipynb"
# Cells papermill adds to the executed copy, which the person never wrote.
_ADDED_TAGS = {"papermill-error-cell-tag", "injected-parameters"}


def executed_name(notebook: str) -> str:
    """``dir/main.ipynb`` -> ``dir/main.executed.ipynb``."""
    return notebook[:-len(".ipynb")] + EXECUTED_SUFFIX


def papermill_command(notebook: str, params: dict[str, str]) -> tuple[str, ...]:
    """The container command that runs ``notebook`` (relative to /code) with papermill."""
    command = ["papermill", posixpath.join(CODE, notebook),
               posixpath.join(CODE, executed_name(notebook)),
               "--cwd", posixpath.join(CODE, posixpath.dirname(notebook)),
               "--log-output", "--log-level", "INFO", "--no-progress-bar"]
    for key, value in params.items():
        command += ["-p", key, value]
    return tuple(command)


def runner_command(python: str, notebook: str, params: dict[str, str]) -> tuple[str, ...]:
    """The container command that runs ``notebook`` (relative to /code) with the gateway's
    runner in the image's ``python`` (its text on the command line: the script stays
    self-contained, and a rendered copy needs no gw on the node)."""
    from pathlib import Path

    source = (Path(__file__).parent / "notebook_runner.py").read_text()
    command = [python, "-c", source, posixpath.join(CODE, notebook),
               posixpath.join(CODE, executed_name(notebook)),
               posixpath.join(CODE, posixpath.dirname(notebook))]
    for key, value in params.items():
        command += [key, value]
    return tuple(command)


def failing_cell(executed: Path) -> str:
    """``cell N (In [M]) raised Error: message`` from an executed notebook, or ""."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    number = 0
    for cell in cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & _ADDED_TAGS:
            continue
        number += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                count = cell.get("execution_count")
                where = f"cell {number}" + (f" (In [{count}])" if count else "")
                return f"{where} raised {output.get('ename')}: {output.get('evalue')}"[:400]
    return ""


class HeadlessKind(StandardKind):
    """The ``headless`` kind."""

    name = "headless"
    template = "sbatch/headless.sh.j2"
    arrays, renders, serves, gangs = False, False, False, False
    resumes = True

    def recipe(self, job: Job, options: dict[str, Any], command: tuple[str, ...]
               ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The notebook and its parameters; the command is made again from them."""
        extra = job.spec.extra
        return {**options, "notebook": extra.get("notebook"),
                "param": [f"{k}={v}" for k, v in (extra.get("params") or {}).items()]}, ()

    def on_end(self, gw: Gateway, job: Job, unit: Unit, end: JobEnd) -> str:
        """Name the failing cell, or harvest /model; say where the executed notebook is."""
        from spool.harvest import harvest_model

        notebook = str(job.spec.extra.get("notebook", ""))
        executed = job.job_dir / "code" / executed_name(notebook) if notebook else None
        kept = (f"executed notebook: code/{executed_name(notebook)}"
                if executed is not None and executed.exists() else "")
        if end.succeeded and end.record is not None:
            notes = [harvest_model(gw, job, unit, end.record), kept]
        else:
            notes = [failing_cell(executed) if executed else "", kept,
                     "no model version made"]
        return "; ".join(n for n in notes if n)
