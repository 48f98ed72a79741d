"""算法管理 and 数据集管理: algorithms and datasets, their versions, a new version from an
uploaded zip (stored as it is laid out: its top folder stays) or a folder on the cluster,
an algorithm's framework, task, description and model name, sharing with a group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from gateway.common.errors import GatewayError, InvalidInput

pages = Blueprint("stores", __name__)
# URL segment -> (store kind, label); the seed's two menus.
KINDS = {"algorithms": ("algo", "algorithm"), "datasets": ("data", "dataset")}
FIELDS = ("name", "archive", "path", "group")
META_FIELDS = {"algo": ("description", "framework", "task", "model_name"),
               "data": ("description",)}


def _kind(section: str) -> tuple[str, str]:
    if section not in KINDS:
        abort(404)
    return KINDS[section]


def _listing(section: str, **context: Any) -> str:
    from gateway.stores.sharing import my_shares

    kind, label = _kind(section)
    rows = g.gw.store(kind).collections()
    shares = my_shares(g.gw, kind)
    latest = {}
    for row in rows:
        row["shared_with"] = shares.get(row["name"])
        versions = g.gw.store(kind).versions(row["name"])
        latest[row["name"]] = versions[-1].meta if versions else {}
    return render_template("stores.html.j2", section=section, label=label,
                           rows=rows, latest=latest, form=request.form,
                           meta_fields=META_FIELDS[kind], **context)


@pages.get("/<section>")
def store_list(section: str) -> str:
    return _listing(section)


@pages.post("/<section>/new")
def store_new(section: str) -> Response | tuple[str, int]:
    kind, label = _kind(section)
    upload = request.files.get("archive")
    folder = request.form.get("path", "").strip()
    meta = {key: request.form.get(key, "").strip() for key in META_FIELDS[kind]}
    try:
        name = request.form.get("name", "").strip()
        if upload is not None and upload.filename:
            if not upload.filename.lower().endswith(".zip"):
                raise InvalidInput(f"archive {upload.filename!r}: upload a .zip")
            source = Path(upload.stream.name)
            upload.stream.flush()
        elif folder:
            source = Path(folder).expanduser()
            if not source.is_dir():
                raise InvalidInput(f"path {folder!r}: no such folder on the cluster")
        else:
            raise InvalidInput(f"give the {label} as a zip (archive) or a folder on the "
                               "cluster (path)")
        version, _created = g.gw.store(kind).push(source, name,
                                                  {k: v for k, v in meta.items() if v})
    except GatewayError as exc:
        return _failed(section, exc)
    return redirect(url_for("stores.store_versions", section=section,  # type: ignore[return-value]
                            name=version.name))


@pages.get("/<section>/<name>")
def store_versions(section: str, name: str) -> str:
    kind, label = _kind(section)
    versions = g.gw.versions(kind, name)
    if not versions:
        from gateway.common.errors import NotFound

        raise NotFound(f"no {label} named {name!r}")
    return render_template("versions.html.j2", section=section, trains=kind == "algo",
                           label=label,
                           name=name, versions=list(reversed(versions)))


@pages.post("/<section>/<name>/share")
def store_share(section: str, name: str) -> Response | tuple[str, int]:
    from gateway.stores.sharing import share

    kind, _label = _kind(section)
    try:
        share(g.gw, kind, name, request.form.get("group", "").strip())
    except GatewayError as exc:
        return _failed(section, exc)
    return redirect(url_for("stores.store_list", section=section))  # type: ignore[return-value]


def _failed(section: str, exc: GatewayError) -> tuple[str, int]:
    from gateway.web.pages import field_of

    message = str(exc)
    return _listing(section, error=message, error_field=field_of(message, FIELDS)), 400
