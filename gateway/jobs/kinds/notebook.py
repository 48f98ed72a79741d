"""A notebook: JupyterLab in the job's container, on a free port of the node, for a time.

Its /code is a draft copy of the algorithm version; when the notebook ends (stopped, its
time limit, scancel, a failure) the draft becomes the next algorithm version if it changed
(gateway/jobs/notebooks.py), then /model is harvested as for training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containers.mounts import CODE
from gateway.jobs.kinds.layout import StandardKind
from gateway.jobs.values import JobEnd, SubmitContext

if TYPE_CHECKING:

    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import Unit

CONNECTION_FILE = "notebook.json"   # written by the job: node, ip, port, base URL
END_FILE = "notebook.end"           # written by the job: why the server ended
BASE_URL = "/"
# A reverse proxy's prefix (Open OnDemand's is /node): the server then lives under
# <prefix>/<node>/<port>/, which only the node knows, so the job script computes it.
PROXY_PREFIX_RE = r"(/[A-Za-z0-9._-]+)+"

# What runs in the container. The token comes from JUPYTER_TOKEN (the 0600 env file); the
# address and port from the node (node_env below); the image's own CMD is never used.
JUPYTER_COMMAND = (
    "sh", "-c",
    'exec jupyter lab --no-browser --ServerApp.ip="$GW_NOTEBOOK_IP" '
    '--ServerApp.port="$GW_NOTEBOOK_PORT" --ServerApp.port_retries=0 '
    f'--ServerApp.root_dir={CODE} --ServerApp.base_url="$GW_NOTEBOOK_BASE_URL" '
    # --allow-root: a site may run jobs as root (this project's CI does); the token and
    # the private home protect the server, not the uid.
    "--ServerApp.allow_remote_access=True --allow-root",
)


class NotebookKind(StandardKind):
    """The ``notebook`` kind."""

    name = "notebook"
    template = "sbatch/notebook.sh.j2"
    node_env: tuple[tuple[str, str], ...] = (("GW_NOTEBOOK_IP", "gw_nb_ip"),
                                             ("GW_NOTEBOOK_PORT", "gw_nb_port"),
                                             ("GW_NOTEBOOK_BASE_URL", "gw_nb_base_url"))
    arrays, renders, serves, gangs = False, False, True, False
    resumes = False     # a notebook saves its code and stops at its limit

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Where the job writes its connection details, and when Slurm warns it."""
        from gateway.common.specs import parse_time_seconds

        limit = parse_time_seconds(str(ctx.job.spec.resources["time"]))
        # Slurm may signal up to a minute early; a short notebook still gets half its time.
        warn = min(int(ctx.gw.config["notebook_save_seconds"]), limit // 2)
        return {"connection_file": str(ctx.job.job_dir / CONNECTION_FILE),
                "end_file": str(ctx.job.job_dir / END_FILE),
                "proxy_prefix": str(ctx.job.spec.extra.get("proxy_prefix") or ""),
                "save_seconds": max(warn, 1)}

    def rerun_request(self, job: Job, request: JobRequest) -> JobRequest:
        """A notebook again: JupyterLab over a new draft of the same version, with a new
        token (the old one is never reused) and the same base URL and proxy prefix."""
        import secrets
        from dataclasses import replace

        from gateway.jobs.kinds.notebook_drafts import TOKEN_VARIABLE

        env = {**request.env, TOKEN_VARIABLE: secrets.token_urlsafe(32)}
        extra = {**request.extra, "base_url": job.spec.extra.get("base_url", BASE_URL),
                 "proxy_prefix": job.spec.extra.get("proxy_prefix", "")}
        return replace(request, kind=self.name, command=JUPYTER_COMMAND, env=env, extra=extra)

    def on_end(self, gw: Gateway, job: Job, unit: Unit, end: JobEnd) -> str:
        """Save the draft as the next algorithm version (if it changed), then harvest."""
        from gateway.jobs.kinds.notebook_drafts import save_draft_note
        from spool.harvest import harvest_model

        notes = [save_draft_note(gw, job)]
        if end.succeeded and end.record is not None:
            notes.append(harvest_model(gw, job, unit, end.record))
        return "; ".join(n for n in notes if n)
