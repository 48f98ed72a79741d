"""Notebooks: start JupyterLab as a job, describe it, save its draft back as a version.

A notebook is a job of kind ``notebook`` (gateway/jobs/kinds/notebook.py). What this module
adds is what a person sees: the notebook's state (PENDING, STARTING, RUNNING, then STOPPED,
TIMEOUT or FAILED), its URL with the token, the ssh tunnel command, the time left, and the
algorithm versions it saved.
"""

from __future__ import annotations

import json
import posixpath
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.common.specs import Resources, VersionRef, parse_time_seconds
from gateway.context import Gateway
from gateway.jobs.kinds.notebook import (
    BASE_URL,
    CONNECTION_FILE,
    END_FILE,
    JUPYTER_COMMAND,
)
from gateway.jobs.kinds.notebook_drafts import TOKEN_VARIABLE, saved_versions
from gateway.jobs.model import Job
from gateway.jobs.request import JobRequest
from gateway.jobs.submit import submit_job

if TYPE_CHECKING:
    from gateway.stores.images import ImageRecord



def _image_path_dirs(image: ImageRecord) -> list[str]:
    path = image.config.get("env", {}).get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    return [d.rstrip("/") for d in path.split(":") if d.startswith("/")]


def require_program(gw: Gateway, image_name: str, program: str, needs: str) -> None:
    """Refuse an image with no ``program`` on its PATH, before anything is submitted.
    A BUILDING image has no SIF to look into yet: the job waits for its build, and a
    missing program ends it with the runtime's error."""
    from containers.sif import find_in_sif
    from gateway.jobs.submit import check_runnable
    from gateway.stores.images import get_image

    image = get_image(gw, image_name)
    check_runnable(image)
    if not image.ready:
        return
    dirs = _image_path_dirs(image)
    if not find_in_sif(image.sif_path, image.partition_offset, [f"{d}/{program}" for d in dirs]):
        raise InvalidInput(f"image {image.name} has no `{program}` on its PATH "
                           f"({':'.join(dirs)}): {needs}")


def _interpreter(shebang: str) -> str:
    """The Python a script's ``#!`` line names ("" when it names no Python)."""
    words = shebang[2:].split() if shebang.startswith("#!") else []
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    if words and posixpath.basename(words[0]).startswith("python"):
        return words[0]
    return ""


def headless_engine(gw: Gateway, image_name: str) -> tuple[str, str]:
    """How ``image_name`` runs a notebook headless: ("papermill", "") where papermill is on
    its PATH, else ("nbclient", PYTHON) with the Python whose nbclient (JupyterLab's)
    runs the gateway's runner. Refused, before anything is submitted, when the image has
    no Jupyter kernel, or neither papermill nor nbclient."""
    from containers.sif import find_in_sif, first_line_in_sif
    from gateway.stores.images import get_image

    image = get_image(gw, image_name)
    if not image.ready:
        raise InvalidInput(f"image {image.name} is {image.state}: a background task looks "
                           "into the image for its notebook runner first; submit it once "
                           f"the build is READY (gw image import ... --wait; gw image show "
                           f"{image.name})")
    sif, offset = image.sif_path, image.partition_offset
    dirs = _image_path_dirs(image)
    on_path = {f"{d}/{p}": p for d in dirs
               for p in ("papermill", "jupyter-execute", "jupyter", "python3", "python")}
    prefixes = ["/usr/local", "/usr", "/opt/conda",
                *(posixpath.dirname(d) for d in dirs if d.endswith("/bin"))]
    kernels = {f"{prefix}/share/jupyter/kernels/*/kernel.json" for prefix in prefixes}
    kernels |= {f"{prefix}/lib/python3*/*-packages/ipykernel_launcher.py" for prefix in prefixes}
    kernels.add("/usr/lib/python3/dist-packages/ipykernel_launcher.py")
    found = find_in_sif(sif, offset, [*on_path, *sorted(kernels)])
    programs: dict[str, str] = {}
    for path in found:
        if path in on_path:
            programs.setdefault(on_path[path], path)
    needs = ("a headless notebook needs JupyterLab in the image (`pip3 install jupyterlab` "
             "brings nbclient and the ipykernel kernel), or papermill and ipykernel")
    has_kernel = any(path not in on_path for path in found)
    has_runner = bool({"papermill", "jupyter-execute"} & set(programs))
    if not (has_kernel and has_runner):
        missing = " and no ".join(what for what, ok in (("Jupyter kernel", has_kernel),
                                                        ("nbclient or papermill", has_runner))
                                  if not ok)
        raise InvalidInput(f"image {image.name} has no {missing}: {needs}")
    if "papermill" in programs:
        return "papermill", ""
    python = _interpreter(first_line_in_sif(sif, offset, programs["jupyter-execute"]))
    return "nbclient", python or programs.get("python3") or programs.get("python") or "python3"


def require_jupyter(gw: Gateway, image_name: str) -> None:
    """Refuse an image with no ``jupyter``, before anything is submitted."""
    require_program(gw, image_name, "jupyter", "a notebook image needs JupyterLab installed "
                    "(for example `pip install jupyterlab` in its Dockerfile)")


def headless_request(gw: Gateway, *, notebook: str, params: dict[str, str], image: str,
                     algo: VersionRef, data: VersionRef | None, name: str | None,
                     env: dict[str, str], resources: Resources,
                     model_name: str | None) -> JobRequest:
    """The request that runs ``notebook`` (a path inside the algorithm version) headless,
    checked before anything is recorded: the file exists, the image can run it
    (:func:`headless_engine`)."""
    from gateway.jobs.kinds.headless import papermill_command, runner_command

    clean = posixpath.normpath(notebook.strip())
    if (not clean.endswith(".ipynb") or clean.startswith(("/", "../")) or clean == ".."
            or "\0" in clean):
        raise InvalidInput(f"--notebook {notebook!r}: expected a .ipynb path inside the "
                           "algorithm, e.g. main.ipynb or notebooks/train.ipynb")
    version = gw.version("algo", algo)
    if not (version.path / clean).is_file():
        raise InvalidInput(f"--notebook {clean!r}: {version.ref} has no such file (see `gw "
                           f"algo show {version.ref}`)")
    engine, python = headless_engine(gw, image)
    command = (papermill_command(clean, params) if engine == "papermill"
               else runner_command(python, clean, params))
    return JobRequest(algo=VersionRef(version.name, version.number, version.owner),
                      image=image, data=data,
                      name=name or f"{version.name}-{posixpath.basename(clean)[:-6]}",
                      command=command, env=env, resources=resources,
                      model_name=model_name, kind="headless",
                      extra={"notebook": clean, "params": params})


def notebook_resources(gw: Gateway, *, flavor: str | None = None, time: str | None = None,
                       cpus: int | None = None, gpus: str | None = None,
                       mem: str | None = None, shm: str | None = None,
                       partition: str | None = None) -> Resources:
    """A notebook's resources: these, then the flavor's, then the site's defaults; its
    time limit the flavor's, else ``notebook_time`` (the seed's 2 hours)."""
    from gateway.common.specs import parse_resources

    shape = None
    if flavor:
        from gateway.home.flavors import get_flavor

        shape = get_flavor(gw.config, flavor)
    return parse_resources(cpus=cpus, gpus=gpus, mem=mem, shm=shm,
                           time=time or (None if shape and shape.time
                                         else str(gw.config["notebook_time"])),
                           partition=partition, flavor=shape, defaults=gw.config)


def start_notebook(gw: Gateway, *, image: str, algo: VersionRef, data: VersionRef | None,
                   resources: Resources, name: str | None, proxy_prefix: str = "",
                   submit: bool = True) -> Job:
    """Submit JupyterLab over a draft of ``algo``; returns the job as recorded. With
    ``proxy_prefix`` (Open OnDemand's ``/node``) the server answers under
    ``<prefix>/<node host>/<port>/``, the path the proxy forwards. ``submit=False``
    records and lays out the notebook for a portal to submit (:func:`portal_session`)."""
    import re

    from gateway.jobs.kinds.notebook import PROXY_PREFIX_RE

    proxy_prefix = proxy_prefix.rstrip("/") if proxy_prefix != "/" else ""
    if proxy_prefix and not re.fullmatch(PROXY_PREFIX_RE, proxy_prefix):
        raise InvalidInput(f"invalid --proxy-prefix {proxy_prefix!r}: a path such as /node "
                           "(letters, digits, '.', '_', '-' between slashes)")
    require_jupyter(gw, image)
    token = secrets.token_urlsafe(32)  # never empty: Jupyter is never open
    request = JobRequest(algo=algo, image=image, data=data,
                         name=name or f"notebook-{algo.name}", command=JUPYTER_COMMAND,
                         env={TOKEN_VARIABLE: token}, resources=resources, kind="notebook",
                         extra={"base_url": BASE_URL, "proxy_prefix": proxy_prefix})
    if submit:
        return submit_job(gw, request)
    from gateway.jobs.submit import prepare_job

    job, _script = prepare_job(gw, request)
    return job


def notebook_jobs(gw: Gateway) -> list[Job]:
    """Every notebook job (of a kind that serves), newest first: SQLite picks them out,
    no job of another kind is loaded."""
    from gateway.jobs.kinds import KINDS

    serving = [name for name, kind in KINDS.items() if kind.serves]
    return [gw.jobs.get(row["id"]) for row in gw.jobs.summaries(kinds=serving)]


def get_notebook(gw: Gateway, job_id: int) -> Job:
    """The notebook job ``job_id`` (another kind of job is refused)."""
    from gateway.jobs.kinds import kind_of

    job = gw.jobs.get(job_id)
    if not kind_of(job).serves:
        raise InvalidInput(f"job {job_id} is a {job.kind} job, not a notebook (see "
                           "`gw notebook list`)")
    return job


def connection(job: Job) -> dict[str, Any] | None:
    """What the job wrote of its server (node, ip, port, base URL), once it has."""
    try:
        return dict(json.loads((job.job_dir / CONNECTION_FILE).read_text()))
    except (OSError, ValueError):
        return None


def notebook_state(job: Job) -> str:
    """The state a person sees: PENDING, STARTING, RUNNING, STOPPED, TIMEOUT, FAILED."""
    if job.state in ("SUBMITTING", "PENDING"):
        return "PENDING"
    if job.state == "RUNNING":
        return "RUNNING" if connection(job) else "STARTING"
    if job.state == "UNKNOWN":
        return "UNKNOWN"
    if job.state == "TIMEOUT":
        return "TIMEOUT"
    if job.state in ("COMPLETED", "CANCELLED"):
        try:
            ended = (job.job_dir / END_FILE).read_text().strip()
        except OSError:
            ended = ""
        return "TIMEOUT" if ended == "time limit" else "STOPPED"
    return "FAILED"


def describe(gw: Gateway, job: Job) -> dict[str, Any]:
    """The notebook as `gw notebook show --json` prints it."""
    conn = connection(job)
    token = job.spec.env.get(TOKEN_VARIABLE, "")
    login = str(gw.config["login_host"]) or socket.getfqdn()
    node = conn["node"] if conn else (job.node or None)
    port = conn["port"] if conn else None
    base_url = conn["base_url"] if conn else BASE_URL
    url = tunnel = None
    if conn and job.active:
        url = f"http://{conn['ip']}:{port}{base_url}lab?token={token}"
        tunnel = f"ssh -N -L {port}:{conn['ip']}:{port} {login}"
    started = job.started or (conn or {}).get("started")
    limit = parse_time_seconds(str(job.spec.resources.get("time", "0:01:00")))
    ends_at = started + limit if started else None
    return {
        "id": job.id, "name": job.name, "state": notebook_state(job), "job_state": job.state,
        "reason": job.reason, "slurm_job_id": job.slurm_job_id, "node": node, "port": port,
        "token": token, "url": url, "tunnel": tunnel,
        "local_url": f"http://localhost:{port}{base_url}lab?token={token}" if url else None,
        "algo": job.spec.algo, "image": job.spec.image, "data": job.spec.dataset,
        "started": started, "ends_at": ends_at,
        "time_left": max(0, int(ends_at - time.time())) if ends_at and job.active else None,
        "saved_versions": saved_versions(gw, job), "draft": str(job.job_dir / "code"),
    }


def answers(info: dict[str, Any], timeout: float = 3) -> bool:
    """Whether the notebook's server answers Jupyter's ``/api/status`` with its token."""
    import urllib.error
    import urllib.request

    url = info["url"].split("lab?token=")[0] + "api/status"
    request = urllib.request.Request(url, headers={"Authorization": f"token {info['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
