"""Notebook: JupyterLab jobs (list with time left, start from a form, open, save, stop).

Under Open OnDemand a notebook is opened through its ``/node/<host>/<port>/`` proxy (the
notebook is started with that prefix, so JupyterLab answers under it); from `gw web` its
own address is shown, as `gw notebook show` gives it.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from gateway.common.errors import GatewayError, InvalidInput

pages = Blueprint("notebooks", __name__)
FIELDS = ("image", "algo", "data", "name", "flavor", "time")


def _proxy_prefix() -> str:
    """OnDemand's node proxy when the app runs under it (else the configured one)."""
    if os.environ.get("PASSENGER_BASE_URI") or os.environ.get("OOD_PORTAL"):
        return "/node"
    return str(g.gw.config["notebook_proxy_prefix"])


def open_url(info: dict[str, object], prefix: str) -> str | None:
    """Where the browser opens a running notebook: the node proxy's path, else its URL."""
    if not info.get("url"):
        return None
    if prefix:
        return f"{prefix}/{info['node']}/{info['port']}/lab?token={info['token']}"
    return str(info["url"])


def _listing(**context: object) -> str:
    from gateway.jobs.notebooks import describe, notebook_jobs
    from gateway.web.pages.jobs import _form_choices
    from spool.sync import sync_state

    gw = g.gw
    sync_state(gw, quiet=True)
    prefix = _proxy_prefix()
    rows = []
    for job in notebook_jobs(gw):
        info = describe(gw, job)
        rows.append({**info, "open": open_url(info, prefix)})
    return render_template("notebooks.html.j2", rows=rows, form=request.form,
                           hours=str(gw.config["notebook_time"]), **_form_choices(),
                           **context)


@pages.get("/notebooks")
def notebook_list() -> str:
    return _listing()


@pages.post("/notebooks/new")
def notebook_start() -> Response | tuple[str, int]:
    from gateway.common.specs import check_image_name, parse_version_ref
    from gateway.jobs.notebooks import notebook_resources, start_notebook

    gw = g.gw
    form = request.form
    try:
        image, algo = form.get("image", "").strip(), form.get("algo", "").strip()
        if not image or not algo:
            raise InvalidInput("missing --image or --algo: a notebook needs an image and an "
                               "algorithm")
        resources = notebook_resources(gw, flavor=form.get("flavor") or None,
                                       time=form.get("time") or None)
        data = form.get("data", "").strip()
        start_notebook(gw, image=check_image_name(image),
                       algo=parse_version_ref(algo, "algorithm"),
                       data=parse_version_ref(data, "dataset") if data else None,
                       resources=resources, name=form.get("name", "").strip() or None,
                       proxy_prefix=_proxy_prefix())
    except GatewayError as exc:
        from gateway.web.pages import field_of

        message = str(exc)
        return _listing(error=message, error_field=field_of(message, FIELDS)), 400
    return redirect(url_for("notebooks.notebook_list"))  # type: ignore[return-value]


@pages.post("/notebooks/<int:job_id>/save")
def notebook_save(job_id: int) -> Response:
    from gateway.jobs.kinds.notebook_drafts import save_draft
    from gateway.jobs.notebooks import get_notebook

    save_draft(g.gw, get_notebook(g.gw, job_id))
    return redirect(url_for("notebooks.notebook_list"))  # type: ignore[return-value]


@pages.post("/notebooks/<int:job_id>/stop")
def notebook_stop(job_id: int) -> Response:
    from gateway.jobs.actions import cancel_job
    from gateway.jobs.notebooks import get_notebook

    cancel_job(g.gw, get_notebook(g.gw, job_id).id)
    return redirect(url_for("notebooks.notebook_list"))  # type: ignore[return-value]
