"""Reading model versions: single files and whole-version downloads."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from gateway.common.atomic import check_output_path
from gateway.common.errors import InvalidInput, NotFound
from gateway.common.specs import parse_version_ref
from gateway.common.trees import unsafe_entries
from gateway.stores.context import StoresContext


def open_model_file(gw: StoresContext, ref: str, path: str) -> BinaryIO:
    """Open ``path`` inside model version ``ref``; paths may not leave the version."""
    version = gw.version("model", parse_version_ref(ref, "model"))
    root = version.path.resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"{path!r} is outside {version.ref}")
    if not target.is_file():
        raise NotFound(f"{version.ref} has no file {path!r} (see `gw model files {version.ref}`)")
    return target.open("rb")


def download_model(gw: StoresContext, ref: str, out: Path,
                   progress: Callable[[int, int], None] | None = None) -> int:
    """Write model version ``ref`` to ``out`` as a .tar.gz (atomically); returns its size.
    ``progress(bytes_packed, bytes_total)`` follows the files as they are packed."""
    version = gw.version("model", parse_version_ref(ref, "model"))
    check_output_path(out, ".tar.gz file")
    unsafe = {os.path.normpath(rel) for rel, _why in unsafe_entries(version.path)}
    top = f"{version.name}-v{version.number}"
    packed = [0]

    def only_safe(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        rel = os.path.normpath(os.path.relpath(member.name, top))
        if rel in unsafe or not (member.isfile() or member.isdir() or member.issym()):
            return None  # never a FIFO, a device, or a link leading outside the version
        if progress and member.isfile():
            progress(packed[0], version.size_bytes)
            packed[0] += member.size
        return member

    from gateway.common.atomic import replacing

    try:
        with replacing(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
            tar.add(version.path, arcname=top, filter=only_safe)
    except OSError as exc:
        raise InvalidInput(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out.stat().st_size
