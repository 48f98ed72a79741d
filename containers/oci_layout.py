"""Reading an OCI image layout directory (what ``skopeo copy ... oci:DIR:REF`` writes).

Used for registry pulls: the config is read from the bytes skopeo stored (so its digest
is exact), and the layers get the same streaming checks as a `docker save` archive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from containers.archive import ImageArchiveError, blob_path
from containers.layers import ImageLimits, LayerGuard, LayerProgress, scan_layer

if TYPE_CHECKING:
    from containers.flatten import LayerTree


@dataclass(frozen=True)
class OciImage:
    """One image of an OCI layout: its config (and digest) and its layer blobs."""

    layout: Path
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Path, ...]
    diff_ids: tuple[str, ...]


def _blob_bytes(layout: Path, digest: str, what: str) -> bytes:
    data = (layout / blob_path(digest)).read_bytes()
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ImageArchiveError(f"{layout}: {what} {digest} does not match its digest")
    return data


def _manifest_for(layout: Path, ref: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_bytes())
    for descriptor in index.get("manifests") or []:
        names = (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if names == ref:
            manifest: dict[str, Any] = json.loads(_blob_bytes(layout, descriptor["digest"],
                                                              "manifest"))
            return manifest
    raise ImageArchiveError(f"{layout}: no image {ref!r} in index.json")


def read_oci_image(layout: Path, ref: str) -> OciImage:
    """The image tagged ``ref`` in the OCI layout ``layout``, digests verified."""
    try:
        manifest = _manifest_for(layout, ref)
        config_digest = manifest["config"]["digest"]
        config_bytes = _blob_bytes(layout, config_digest, "config")
        config = json.loads(config_bytes)
        layers = tuple(layout / blob_path(layer["digest"]) for layer in manifest["layers"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageArchiveError(f"{layout}: unreadable OCI image {ref!r} ({exc})") from exc
    diff_ids = tuple((config.get("rootfs") or {}).get("diff_ids") or ())
    if len(diff_ids) != len(layers):
        raise ImageArchiveError(f"{layout}: the config lists {len(diff_ids)} layer digests for "
                                f"{len(layers)} layers")
    return OciImage(layout, config_digest, config, layers, diff_ids)


def oci_layer_handles(image: OciImage) -> Iterator[tuple[str, IO[bytes]]]:
    """(where, handle) of every layer blob, in order."""
    for path in image.layers:
        with path.open("rb") as handle:
            yield f"layer {path.name}", handle


def oci_layer_digests(image: OciImage) -> list[tuple[str | None, str | None]]:
    """(blob digest, diff_id) of every layer, in order."""
    return [(f"sha256:{path.name}", diff_id)
            for path, diff_id in zip(image.layers, image.diff_ids, strict=False)]


def check_oci_layers(image: OciImage,
                     progress: Callable[[int, int], None] | None = None,
                     limits: ImageLimits | None = None,
                     tree: LayerTree | None = None, digests: bool = True) -> LayerGuard:
    """Stream every layer blob: the checks of :func:`containers.archive.check_layers`."""
    guard = LayerGuard(limits or ImageLimits(), tree=tree)
    meter = LayerProgress(sum(p.stat().st_size for p in image.layers), progress)
    for (where, handle), path, diff_id in zip(oci_layer_handles(image), image.layers,
                                              image.diff_ids, strict=False):
        scan_layer(handle, where, meter, diff_id=diff_id,
                   blob_digest=f"sha256:{path.name}", error_type=ImageArchiveError,
                   guard=guard, digests=digests)
    meter.finish()
    return guard
