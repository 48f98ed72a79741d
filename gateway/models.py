"""Reading model versions: single files and whole-version downloads."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import InvalidInput, NotFound
from hpc_gateway.gateway.specs import parse_version_ref
from hpc_gateway.gateway.trees import unsafe_entries


def open_model_file(gw: Gateway, ref: str, path: str) -> BinaryIO:
    """Open ``path`` inside model version ``ref``; paths may not leave the version."""
    version = gw.version("model", parse_version_ref(ref, "model"))
    root = version.path.resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"{path!r} is outside {version.ref}")
    if not target.is_file():
        raise NotFound(f"{version.ref} has no file {path!r} (see `gw model files {version.ref}`)")
    return target.open("rb")


def check_output_file(out: Path) -> None:
    """``out`` can be written as a new file: not a directory, in a directory that exists."""
    if out.is_dir():
        raise InvalidInput(f"{out} is a directory: name the .tar.gz file to write")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent} does not exist: create it first")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write in {out.parent}: permission denied; choose another "
                           "place with -o")


def download_model(gw: Gateway, ref: str, out: Path,
                   progress: Callable[[int, int], None] | None = None) -> int:
    """Write model version ``ref`` to ``out`` as a .tar.gz (atomically); returns its size.
    ``progress(bytes_packed, bytes_total)`` follows the files as they are packed."""
    version = gw.version("model", parse_version_ref(ref, "model"))
    check_output_file(out)
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

    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(version.path, arcname=top, filter=only_safe)
        os.replace(tmp, out)
    except OSError as exc:
        raise InvalidInput(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size
