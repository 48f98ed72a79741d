"""镜像管理: the images, their state (BUILDING shows as the seed's 制作中, READY as 制作成功),
import from a file on the cluster, pull from a registry, remove, the build's log."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from gateway.common.errors import GatewayError

pages = Blueprint("images", __name__)
FIELDS = ("name", "path", "reference", "archive")


def _listing(**context: object) -> str:
    from gateway.stores.images import list_images
    from spool.sync import sync_state

    gw = g.gw
    if gw.conn.execute("SELECT 1 FROM images WHERE state = 'BUILDING' LIMIT 1").fetchone():
        sync_state(gw, quiet=True)
    return render_template("images.html.j2", images=list_images(gw), form=request.form,
                           **context)


@pages.get("/images")
def image_list() -> str:
    return _listing()


@pages.post("/images/import")
def image_import() -> Response | tuple[str, int]:
    from gateway.jobs.image_builds import BuildOptions, import_image

    try:
        path = request.form.get("path", "").strip()
        if not path:
            raise _missing("path", "the archive's path on the cluster (a `docker save` .tar)")
        import_image(g.gw, Path(path).expanduser(), request.form.get("name", "").strip(),
                     BuildOptions())
    except GatewayError as exc:
        return _failed(exc)
    return redirect(url_for("images.image_list"))  # type: ignore[return-value]


@pages.post("/images/upload")
def image_upload() -> Response | tuple[str, int]:
    """An archive uploaded from the browser: kept in the home's ``archives`` (a link to
    the streamed upload, on the same file system) until its build has read it."""
    import os
    import uuid

    from gateway.jobs.image_builds import BuildOptions, import_image

    upload = request.files.get("archive")
    try:
        if upload is None or not upload.filename:
            raise _missing("archive", "the `docker save` .tar to upload")
        if not upload.filename.lower().endswith(".tar"):
            from gateway.common.errors import InvalidInput

            raise InvalidInput(f"archive {upload.filename!r}: not a .tar (`docker save` "
                               "writes one)")
        upload.stream.flush()
        kept = g.gw.layout.archives / f"{uuid.uuid4().hex}.tar"
        kept.parent.mkdir(mode=0o700, exist_ok=True)
        os.link(upload.stream.name, kept)
        import_image(g.gw, kept, request.form.get("name", "").strip(), BuildOptions(),
                     consume=True)
    except GatewayError as exc:
        return _failed(exc)
    return redirect(url_for("images.image_list"))  # type: ignore[return-value]


@pages.post("/images/pull")
def image_pull() -> Response | tuple[str, int]:
    from gateway.jobs.image_builds import BuildOptions, pull_image

    try:
        reference = request.form.get("reference", "").strip()
        if not reference:
            raise _missing("reference", "the registry reference, e.g. docker.io/library/"
                           "python:3.11")
        pull_image(g.gw, reference, request.form.get("name", "").strip(), BuildOptions(),
                   tls_verify=not request.form.get("insecure"))
    except GatewayError as exc:
        return _failed(exc)
    return redirect(url_for("images.image_list"))  # type: ignore[return-value]


@pages.post("/images/remove")
def image_remove() -> Response | tuple[str, int]:
    from gateway.jobs.image_builds import remove_image

    try:
        remove_image(g.gw, request.form.get("name", ""))
    except GatewayError as exc:
        return _failed(exc)
    return redirect(url_for("images.image_list"))  # type: ignore[return-value]


@pages.get("/images/<path:name>/log")
def image_log(name: str) -> Response:
    from gateway.jobs.image_builds import build_log
    from gateway.stores.images import get_image

    path = build_log(g.gw, get_image(g.gw, name))
    text = path.read_text(errors="replace") if path.exists() else ""
    return Response(text, mimetype="text/plain")


def _missing(field: str, what: str) -> GatewayError:
    from gateway.common.errors import InvalidInput

    return InvalidInput(f"missing {field}: {what}")


def _failed(exc: GatewayError) -> tuple[str, int]:
    from gateway.web.pages import field_of

    message = str(exc)
    return _listing(error=message, error_field=field_of(message, FIELDS)), 400
