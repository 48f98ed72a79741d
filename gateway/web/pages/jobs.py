"""训练管理: training jobs (list with state filters, the submit form with its flavor picker,
submit as a sweep, save as a template, a job from a template prefilled, cancel, rerun),
the job's page (summary, live log, load chart, script, outputs, tasks), and background
tasks (a notebook of the algorithm run top to bottom, with parameters)."""

from __future__ import annotations

import shlex
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from gateway.common.errors import GatewayError, InvalidInput

pages = Blueprint("jobs", __name__)
PAGE_SIZE = 200
# The form's fields that are recipe options as typed (the CLI's --OPTION).
OPTION_FIELDS = ("algo", "image", "data", "name", "flavor", "cpus", "gpus", "nodes", "mem",
                 "shm", "time", "partition", "model_name", "notebook", "restarts",
                 "save_seconds")
INT_FIELDS = ("cpus", "nodes", "restarts", "save_seconds")
FIELDS = (*OPTION_FIELDS, "command", "param", "sweep", "template_name")
LOG_CHUNK = 256 << 10


@pages.get("/jobs")
def job_list() -> str:
    from gateway.jobs.actions import check_listing
    from gateway.jobs.quick_list import STATE_NAMES
    from spool.sync import sync_state

    gw = g.gw
    state = request.args.get("state", "")
    states = check_listing((state,) if state else (), None)
    sync_state(gw, quiet=True)
    rows = gw.jobs.summary_rows(states, PAGE_SIZE, ("id", "name", "kind", "state",
                                                    "slurm_job_id", "node", "submitted",
                                                    "exit_code"))
    return render_template("jobs.html.j2", rows=rows, state=state, states=STATE_NAMES,
                           page_size=PAGE_SIZE)


def _form_choices() -> dict[str, Any]:
    """What the form's pickers offer: images, algorithms, datasets, flavors (with what
    fits on idle nodes now), templates."""
    from gateway.common.errors import SlurmError
    from gateway.home.flavors import available_now, flavors
    from gateway.jobs.saved_recipes import list_recipes
    from gateway.stores.images import list_images

    gw = g.gw
    try:
        shown = available_now(gw)
    except SlurmError:
        shown = [{"name": name, "fits_now": None} for name in flavors(gw.config)]
    return {"images": [i for i in list_images(gw) if i.state != "FAILED"],
            "algos": [r["name"] for r in gw.store("algo").collections()],
            "datasets": [r["name"] for r in gw.store("data").collections()],
            "flavors": shown, "templates": [r.name for r in list_recipes(gw)]}


def _recipe_form(options: dict[str, Any], command: tuple[str, ...] | list[str]
                 ) -> dict[str, str]:
    """A recipe as the form's fields."""
    form = {key: str(options[key]) for key in OPTION_FIELDS if options.get(key) is not None}
    form["command"] = shlex.join(command)
    form["param"] = "\n".join(options.get("param") or ())
    return form


@pages.get("/jobs/new")
def job_new() -> str:
    form: dict[str, str] = {}
    template = request.args.get("template", "")
    if template:
        from gateway.jobs.recipes import normalize_options
        from gateway.jobs.saved_recipes import get_recipe

        saved = get_recipe(g.gw, template)
        form = _recipe_form(normalize_options(dict(saved.options)), saved.command)
    elif request.args.get("from"):
        from gateway.jobs.recipes import normalize_options

        job = g.gw.jobs.get(_job_id(request.args["from"]))
        recorded = job.spec.recipe
        form = _recipe_form(normalize_options(dict(recorded.get("options") or {})),
                            recorded.get("command") or job.spec.command)
    for key in OPTION_FIELDS:   # a link may prefill fields (an algorithm's "train")
        if request.args.get(key):
            form[key] = request.args[key]
    return _job_form(form, template)


def _job_form(form: Any, template: str, **context: Any) -> str:
    """The job form, its optional sections open where they hold something."""
    return render_template("job_new.html.j2", form=form, template=template,
                           open_task=bool(form.get("notebook") or form.get("param")),
                           open_values=bool(form.get("sweep")), **_form_choices(),
                           **context)


def _job_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"invalid job id {text!r}")
    return int(text)


def _recipe_from_form() -> tuple[dict[str, Any], tuple[str, ...]]:
    """The recipe and command the form describes, checked as the CLI checks its options."""
    from gateway.commands.submit_options import recipe_from_options
    from gateway.jobs.recipes import split_command_line

    options: dict[str, Any] = {}
    for key in OPTION_FIELDS:
        value = request.form.get(key, "").strip()
        if not value:
            continue
        if key in INT_FIELDS:
            if not value.isdigit():
                raise InvalidInput(f"invalid --{key} {value!r}: a whole number")
            options[key] = int(value)
        else:
            options[key] = value
    params = [line.strip() for line in request.form.get("param", "").splitlines()
              if line.strip()]
    if params:
        options["param"] = tuple(params)
    return recipe_from_options(options), split_command_line(request.form.get("command", ""))


@pages.post("/jobs/new")
def job_submit() -> Response | tuple[str, int]:
    from gateway.commands.submit_options import build_request
    from gateway.jobs.recipes import check_values_used, fill, parse_sweeps
    from gateway.jobs.submit import submit_job

    gw = g.gw
    template = request.form.get("template", "")
    try:
        recipe, command = _recipe_from_form()
        if request.form.get("action") == "save_template":
            return _save_template(recipe, command)
        if not command and not recipe.get("notebook"):
            raise InvalidInput("no command: give the command to run (or a notebook)")
        provenance: dict[str, Any] = {}
        origin = "cli"
        if template:
            from gateway.jobs.saved_recipes import get_recipe

            saved = get_recipe(gw, template)
            overrides = {k: v for k, v in recipe.items() if saved.options.get(k) != v}
            if command != tuple(saved.command):
                overrides["command"] = list(command)
            provenance, origin = {"template": template, "overrides": overrides}, "template"
        sweeps = [line.strip() for line in request.form.get("sweep", "").splitlines()
                  if line.strip()]
        if sweeps:
            from gateway.jobs.sweeps import submit_sweep

            tasks = parse_sweeps(sweeps)
            check_values_used(command, list(tasks[0]), "--sweep")
            commands = [fill(command, task) for task in tasks]
            request_ = build_request(gw, recipe, commands[0], origin=origin,
                                     provenance={**provenance, "sweep": sweeps})
            job = submit_sweep(gw, request_, tasks, commands, None)
        else:
            job = submit_job(gw, build_request(gw, recipe, command, origin=origin,
                                               provenance=provenance))
    except GatewayError as exc:
        return _form_failed(exc, template)
    return redirect(url_for("jobs.job_detail", job_id=job.id))  # type: ignore[return-value]


def _save_template(recipe: dict[str, Any], command: tuple[str, ...]) -> Response:
    from gateway.jobs.saved_recipes import save_recipe

    name = request.form.get("template_name", "").strip()
    if not name:
        raise InvalidInput("missing template_name: the name to save the template under")
    for key in ("algo", "image"):
        if not recipe.get(key):
            raise InvalidInput(f"missing --{key}: a template needs an algorithm and an image")
    if not command and not recipe.get("notebook"):
        raise InvalidInput("no command: give the command to run (or a notebook)")
    save_recipe(g.gw, name, recipe, command)
    return redirect(url_for("jobs.template_list"))  # type: ignore[return-value]


def _form_failed(exc: GatewayError, template: str) -> tuple[str, int]:
    from gateway.web.pages import field_of

    message = str(exc)
    return _job_form(request.form, template, error=message,
                     error_field=field_of(message, FIELDS)), 400


@pages.get("/templates")
def template_list() -> str:
    from gateway.jobs.saved_recipes import list_recipes

    return render_template("templates.html.j2", templates=list_recipes(g.gw))


@pages.get("/jobs/<int:job_id>")
def job_detail(job_id: int) -> str:
    from gateway.jobs.shapes import shape_of
    from gateway.web.charts import load_chart
    from spool.sync import sync_state

    gw = g.gw
    sync_state(gw, quiet=True)
    job = gw.jobs.get(job_id)
    from gateway.jobs.attempts import job_attempts

    info = {**job.as_dict(), **shape_of(job).summary(gw, job),
            "attempts": job_attempts(gw, job)}
    script = job.script_path.read_text() if job.script_path.exists() else ""
    return render_template("job.html.j2", job=job, info=info, script=script,
                           chart=load_chart(_samples(job)))


def _samples(job: Any) -> list[Any]:
    from gateway.common.errors import NotFound
    from gateway.jobs.usage import read_samples

    try:
        return read_samples(g.gw, job)
    except (NotFound, OSError):
        return []


@pages.get("/jobs/<int:job_id>/log")
def job_log(job_id: int) -> Response:
    """The log from byte ``offset`` on (at most 256 KiB), and whether the job still runs:
    the page polls it to show the log growing."""
    from gateway.common.errors import NotFound
    from gateway.jobs.actions import log_path
    from spool.sync import sync_state

    gw = g.gw
    offset = int(request.args.get("offset", "0") or 0) if request.args.get(
        "offset", "0").isdigit() else 0
    job = gw.jobs.get(job_id)
    if job.active:
        sync_state(gw, quiet=True)
        job = gw.jobs.get(job_id)
    text = b""
    try:
        path = log_path(gw, job)
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read(LOG_CHUNK)
    except NotFound:
        pass
    return jsonify({"text": text.decode(errors="replace"), "offset": offset + len(text),
                    "active": job.active, "state": job.state})


@pages.get("/jobs/<int:job_id>/load")
def job_load(job_id: int) -> Response:
    """The load chart alone (SVG), for the page to refresh."""
    from gateway.web.charts import load_chart

    return Response(load_chart(_samples(g.gw.jobs.get(job_id))), mimetype="image/svg+xml")


@pages.post("/jobs/<int:job_id>/cancel")
def job_cancel(job_id: int) -> Response:
    from gateway.jobs.actions import cancel_job

    cancel_job(g.gw, job_id)
    return redirect(url_for("jobs.job_detail", job_id=job_id))  # type: ignore[return-value]


@pages.post("/jobs/<int:job_id>/rerun")
def job_rerun(job_id: int) -> Response:
    from gateway.commands.submit_options import build_request
    from gateway.jobs.kinds import kind_of
    from gateway.jobs.recipes import exact_recipe
    from gateway.jobs.shapes import shape_of
    from gateway.jobs.submit import submit_job

    gw = g.gw
    earlier = gw.jobs.get(job_id)
    base, base_command = exact_recipe(earlier)
    shape = shape_of(earlier)
    request_ = kind_of(earlier).rerun_request(
        earlier, build_request(gw, base, base_command, origin="rerun",
                               provenance={"rerun_of": job_id, "overrides": {}}))
    job = submit_job(gw, replace(request_, shape=shape.reruns_as,
                                 extra={**request_.extra, **shape.rerun_extra(earlier, ())}))
    return redirect(url_for("jobs.job_detail", job_id=job.id))  # type: ignore[return-value]


@pages.get("/jobs/<int:job_id>/outputs")
def job_outputs(job_id: int) -> Response:
    """What the job left in /code, its log and script, as a .tar.gz."""
    from gateway.jobs.actions import write_outputs

    gw = g.gw
    job = gw.jobs.get(job_id)
    gw.layout.uploads.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=gw.layout.uploads)) / f"job-{job_id}-outputs.tar.gz"
    write_outputs(gw, job, out)
    return _send_and_remove(out)


def _send_and_remove(out: Path) -> Response:
    """Send a file made for this response; it (and its directory) goes afterwards."""
    handle = out.open("rb")   # send_file closes it when the response is done
    out.unlink()
    out.parent.rmdir()
    return send_file(handle, as_attachment=True, download_name=out.name,
                     mimetype="application/gzip")
