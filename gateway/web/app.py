"""The dashboard's WSGI application: the web platform's pages over the gateway's own API.

One app serves both places it runs (docs/dashboard.md):

- Open OnDemand's per-user server, through ``gw_dashboard/passenger_wsgi.py`` (written by
  `gw ood install`): the person is already authenticated, and the app answers under the
  base URI Passenger mounts it at (``SCRIPT_NAME``, else ``PASSENGER_BASE_URI``).
- `gw web`, on localhost, with ``access_token``: nothing is served without it.

Each request opens its own :class:`gateway.context.Gateway` (the person's home and
database) and closes it at the end. Forms that change state carry the CSRF token of
:mod:`gateway.web.security`; every error of the gateway is shown as its one line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flask import Flask, Request, Response, g, redirect, request
from werkzeug.exceptions import Forbidden, RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from gateway.web import security

if TYPE_CHECKING:
    from gateway.context import Gateway

# Scripts from the app alone (static/dashboard.js): a file of a model or a log shown
# on a page can never run as the person.
CONTENT_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                  "img-src 'self' data:; frame-ancestors 'self'; form-action 'self'; "
                  "base-uri 'self'")
# Disk an upload must leave free on the home's file system, beyond its own size.
UPLOAD_HEADROOM = 1 << 30


def _template_dir() -> Path:
    import templates

    return Path(templates.__file__).resolve().parent / "web"


class UploadRequest(Request):
    """A request whose uploaded files stream to disk in the home's upload directory (the
    home's file system, so a push links rather than copies), never into memory, and are
    refused before a byte is written when the home's disk cannot take them."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> IO[bytes]:
        directory = Path(g.gw.layout.uploads)
        directory.mkdir(parents=True, exist_ok=True)
        wanted = total_content_length or 0
        free = shutil.disk_usage(directory).free
        if wanted + UPLOAD_HEADROOM > free:
            raise RequestEntityTooLarge(
                f"the upload ({wanted} bytes) does not fit on the home's disk "
                f"({free} bytes free, {UPLOAD_HEADROOM} kept free)")
        suffix = Path(filename or "").suffix.lower()
        suffix = suffix if suffix in (".zip", ".tar", ".ipynb") else ""
        return tempfile.NamedTemporaryFile(  # removed when the request closes it
            "w+b", dir=directory, prefix="upload-", suffix=suffix)


class BaseURI:
    """WSGI middleware: the app mounted under Passenger's base URI when the server does
    not say so in ``SCRIPT_NAME`` (links are made from ``SCRIPT_NAME`` by ``url_for``)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], base: str) -> None:
        self.app = app
        self.base = base.rstrip("/")

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.base and not environ.get("SCRIPT_NAME") and (
                path == self.base or path.startswith(self.base + "/")):
            environ["SCRIPT_NAME"] = self.base
            environ["PATH_INFO"] = path[len(self.base):] or "/"
        return self.app(environ, start_response)


def _open_gateway() -> Gateway:
    if "gw" not in g:
        from gateway.context import Gateway

        g.gw = Gateway()
    return g.gw  # type: ignore[no-any-return]


def create_app(access_token: str | None = None) -> Flask:
    """The dashboard. ``access_token``: required on every request (`gw web`); None under
    Open OnDemand, which authenticates the person itself. Uploads larger than the home's
    ``max_upload_bytes`` are refused from their Content-Length, before any is read."""
    from gateway.home.config import load_config

    max_upload = int(load_config()["max_upload_bytes"])
    app = Flask("gw_dashboard", template_folder=str(_template_dir()),
                static_folder=str(_template_dir() / "static"), static_url_path="/static")
    app.request_class = UploadRequest
    app.jinja_env.autoescape = True
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    from gateway.common.display import human_time

    app.jinja_env.filters["timestamp"] = lambda value: human_time(value) if value else ""
    app.config["MAX_CONTENT_LENGTH"] = max_upload
    app.config["MAX_FORM_MEMORY_SIZE"] = 1 << 20

    @app.before_request
    def _guard() -> BaseResponse | None:
        gw = _open_gateway()
        if access_token is not None:
            given = request.args.get("token")
            if given is not None and security.same_token(given, access_token):
                args = {k: v for k, v in request.args.items() if k != "token"}
                from urllib.parse import urlencode

                target = request.script_root + request.path + (
                    f"?{urlencode(args)}" if args else "")
                response = redirect(target)
                response.set_cookie(security.TOKEN_COOKIE, access_token, httponly=True,
                                    samesite="Strict", path=request.script_root or "/")
                return response
            if not security.same_token(request.cookies.get(security.TOKEN_COOKIE),
                                       access_token):
                raise Forbidden("open the address `gw web` printed (it carries the token)")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if security.foreign_origin(request.headers.get("Origin"),
                                       request.headers.get("Referer"), request.host):
                raise Forbidden("a request from another site was refused")
            expected = security.csrf_token(security.load_secret(gw.layout.web_secret))
            given = request.headers.get(security.CSRF_HEADER) or (
                request.form.get(security.CSRF_FIELD) if request.mimetype in (
                    "application/x-www-form-urlencoded", "multipart/form-data") else None)
            if not security.same_token(given, expected):
                raise Forbidden("the form's token is missing or wrong: reload the page")
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        gw = g.pop("gw", None)
        if gw is not None and "conn" in gw.__dict__:
            gw.conn.close()

    @app.context_processor
    def _common() -> dict[str, Any]:
        from gateway.stores.sharing import user_name

        gw = _open_gateway()
        return {"csrf_token": security.csrf_token(security.load_secret(gw.layout.web_secret)),
                "user": user_name(), "csrf_field": security.CSRF_FIELD}

    from gateway.web.pages import register

    register(app)
    base = os.environ.get("PASSENGER_BASE_URI", "")
    if base:
        app.wsgi_app = BaseURI(app.wsgi_app, base)  # type: ignore[method-assign]
    return app
