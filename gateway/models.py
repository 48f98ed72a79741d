"""Reading model versions: single files and whole-version downloads."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import BinaryIO

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import InvalidInput, NotFound
from hpc_gateway.gateway.specs import parse_version_ref


def open_model_file(gw: Gateway, ref: str, path: str) -> BinaryIO:
    """Open ``path`` inside model version ``ref``; paths may not leave the version."""
    version = gw.store("model").resolve(parse_version_ref(ref, "model"))
    root = version.path.resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"{path!r} is outside {version.ref}")
    if not target.is_file():
        raise NotFound(f"{version.ref} has no file {path!r} (see `gw model files {version.ref}`)")
    return target.open("rb")


def download_model(gw: Gateway, ref: str, out: Path) -> int:
    """Write model version ``ref`` to ``out`` as a .tar.gz (atomically); returns its size."""
    version = gw.store("model").resolve(parse_version_ref(ref, "model"))
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(version.path, arcname=f"{version.name}-v{version.number}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size
