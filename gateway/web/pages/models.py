"""我的模型: models by name (the algorithm's, unless a job said otherwise), a version per
successful run with its lineage, a preview of a version's files (text shown, images
shown, others listed) and the download of a version."""

from __future__ import annotations

import mimetypes
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, g, render_template, send_file

from gateway.common.errors import NotFound

pages = Blueprint("models", __name__)
# Shown as pictures; never SVG or anything else a browser could run script in.
PICTURES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".gif": "image/gif", ".webp": "image/webp"}
TEXT_SUFFIXES = frozenset({".txt", ".log", ".json", ".yaml", ".yml", ".csv", ".tsv", ".md",
                           ".py", ".cfg", ".ini", ".toml", ".sh", ".xml", ".html"})
PREVIEW_BYTES = 64 << 10


def _version(name: str, number: int) -> Any:
    from gateway.common.specs import VersionRef

    return g.gw.version("model", VersionRef(name, number))


@pages.get("/models")
def model_list() -> str:
    from spool.sync import sync_state

    sync_state(g.gw, quiet=True)
    rows = g.gw.store("model").collections()
    return render_template("models.html.j2", rows=rows)


@pages.get("/models/<name>")
def model_versions(name: str) -> str:
    versions = g.gw.versions("model", name)
    if not versions:
        raise NotFound(f"no model named {name!r}")
    return render_template("model_versions.html.j2", name=name,
                           versions=list(reversed(versions)))


def preview_kind(path: str, size: int) -> str:
    """How the page shows a file: ``picture``, ``text`` or ``listed``."""
    suffix = Path(path).suffix.lower()
    if suffix in PICTURES:
        return "picture"
    guessed = mimetypes.guess_type(path)[0] or ""
    if suffix in TEXT_SUFFIXES or guessed.startswith("text/"):
        return "text"
    return "listed"


@pages.get("/models/<name>/v<int:number>")
def model_version(name: str, number: int) -> str:
    from gateway.common.trees import list_files

    version = _version(name, number)
    files = []
    for rel, size in list_files(version.path):
        kind = preview_kind(rel, size)
        text = None
        if kind == "text":
            with (version.path / rel).open("rb") as handle:
                text = handle.read(PREVIEW_BYTES).decode(errors="replace")
        files.append({"path": rel, "size": size, "preview": kind, "text": text,
                      "cut": kind == "text" and size > PREVIEW_BYTES})
    return render_template("model_version.html.j2", version=version, files=files)


@pages.get("/models/<name>/v<int:number>/files/<path:rel>")
def model_file(name: str, number: int, rel: str) -> Response:
    """One file: a picture as itself, anything else as plain text or a download (never
    as something the browser would render as a page)."""
    from gateway.stores.model_downloads import open_model_file

    handle = open_model_file(g.gw, f"{name}@v{number}", rel)
    suffix = Path(rel).suffix.lower()
    if suffix in PICTURES:
        return send_file(handle, mimetype=PICTURES[suffix])
    if preview_kind(rel, 0) == "text":
        return send_file(handle, mimetype="text/plain")
    return send_file(handle, as_attachment=True, download_name=Path(rel).name,
                     mimetype="application/octet-stream")


@pages.get("/models/<name>/v<int:number>/download")
def model_download(name: str, number: int) -> Response:
    from gateway.stores.model_downloads import download_model
    from gateway.web.pages.jobs import _send_and_remove

    gw = g.gw
    version = _version(name, number)
    gw.layout.uploads.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(dir=gw.layout.uploads)) / f"{name}-v{number}.tar.gz"
    download_model(gw, version.ref, out)
    return _send_and_remove(out)
