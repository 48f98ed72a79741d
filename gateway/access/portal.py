"""Jobs a portal submits: Open OnDemand runs a gateway job as its own batch job.

The gateway records and lays out the job as `gw job submit` or `gw notebook start` would
(state SUBMITTING), but does not call sbatch: the portal does, with the options this module
reads from the job's own ``#SBATCH`` lines, among them the ``--comment`` identity
``gw:<home>:<job>``. Reconciliation adopts the portal's Slurm job by that identity, as it
adopts a job whose sbatch answer was lost, so a session started from the portal and one
started from the command line are the same thing. The portal's job runs the job's script
with bash; the script writes the gateway's log, spool file and, for a notebook, its
connection details as always. A job the portal never submits ends FAILED after the grace
of a lost submission (spool/reconcile.py).
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.jobs.model import Job

# A notebook's token, for the portal's job to read (0600, in the 0700 job directory).
TOKEN_FILE = "notebook.token"
# sbatch options a portal does not take from the job: it names its own job, output and
# working directory (the job's script writes the gateway's log itself).
PORTAL_OWN_OPTIONS = ("job-name", "chdir", "output")


def sbatch_directives(script: str) -> list[str]:
    """The options of a script's ``#SBATCH`` lines, as sbatch reads them: up to the first
    command, values unquoted (the gateway double-quotes values with spaces)."""
    args: list[str] = []
    for line in script.splitlines()[1:]:
        if line.startswith("#SBATCH"):
            args += shlex.split(line[len("#SBATCH"):])
        elif line.strip() and not line.lstrip().startswith("#"):
            break
    return args


def portal_session(job: Job, token: str | None = None) -> dict[str, Any]:
    """What a portal needs to run ``job`` as its own batch job: the sbatch options (with the
    identity it is adopted by and, for a notebook, the signal that saves the code before the
    time limit), the script, the log, and a notebook's ``token`` (written 0600 to
    ``TOKEN_FILE`` for the job to read)."""

    script = job.layout.script
    args = [arg for arg in sbatch_directives(script.read_text())
            if arg.partition("=")[0].lstrip("-") not in PORTAL_OWN_OPTIONS]
    session: dict[str, Any] = {"id": job.id, "kind": job.kind, "job_dir": str(job.job_dir),
                               "script": str(script), "log": str(job.job_dir / "slurm-%j.out"),
                               "sbatch_args": args}
    if token is not None:
        fd = os.open(job.job_dir / TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        session["token"] = token
        session["proxy_prefix"] = job.spec.extra.get("proxy_prefix") or ""
    return session
