"""The dashboard's pages, one module per menu entry of the web platform (the seeds):
images (镜像管理), algorithms and datasets (算法管理, 数据集管理), notebooks, training jobs
(训练管理, with templates and background tasks) and models (我的模型).

Every page calls the gateway's Python API, as the CLI does; a form's error is the
gateway's own one line, shown next to the field it names (:func:`field_of`).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Response, redirect, render_template, url_for
from werkzeug.exceptions import HTTPException

from gateway.common.errors import GatewayError, NotFound

# A form field's name -> the words of the gateway's errors that name it.
FIELD_WORDS = {
    "algo": ("--algo", "algorithm"), "image": ("--image", "image"),
    "data": ("--data", "dataset"), "name": ("--name", "name"),
    "flavor": ("--flavor", "flavor"), "cpus": ("--cpus",), "gpus": ("--gpus",),
    "mem": ("--mem",), "shm": ("--shm",), "time": ("--time",),
    "partition": ("--partition", "partition"), "command": ("command",),
    "notebook": ("--notebook", "notebook"), "param": ("--param",),
    "reference": ("reference", "registry"), "path": ("no such file", "path"),
    "group": ("group",), "archive": ("zip", "archive"),
}


def field_of(message: str, fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` the error ``message`` is about (None: the form as a whole)."""
    lowered = message.lower()
    for options in (True, False):   # an option's name (--image) first, then other words
        for field in fields:
            for word in FIELD_WORDS.get(field, (field,)):
                if word.startswith("--") == options and re.search(
                        rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", lowered):
                    return field
    return None


def form_error(template: str, exc: GatewayError, fields: tuple[str, ...],
               **context: Any) -> tuple[str, int]:
    """The page again, the error next to its field, status 400 (404 for a missing
    thing)."""
    message = str(exc)
    status = 404 if isinstance(exc, NotFound) else 400
    return render_template(template, error=message, error_field=field_of(message, fields),
                           **context), status


def register(app: Flask) -> None:
    """Add every page to ``app``."""
    from gateway.web.pages import images, jobs, models, notebooks, stores

    for module in (images, stores, jobs, models, notebooks):
        app.register_blueprint(module.pages)

    @app.get("/")
    def home() -> Response:
        return redirect(url_for("jobs.job_list"))  # type: ignore[return-value]

    @app.errorhandler(GatewayError)
    def gateway_error(exc: GatewayError) -> tuple[str, int]:
        status = 404 if isinstance(exc, NotFound) else 400
        return render_template("error.html.j2", error=str(exc)), status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        return render_template("error.html.j2", error=exc.description), exc.code or 500
