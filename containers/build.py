"""Building SIF images from `docker save` archives and registry images.

Three methods (:func:`build_method`):

- ``apptainer``: ``apptainer build``, where Apptainer is on PATH (and jobs run with it).
- ``stream`` (the default without Apptainer): one streaming pass, no root filesystem on
  disk. The layer check feeds a :class:`containers.flatten.LayerTree`; the layers are
  then read again and flattened into one tar, with the mount points and Apptainer's
  metadata, on the stdin of a SquashFS writer (:mod:`containers.squash`: tar2sqfs or
  sqfstar), whose output becomes the SIF in place (:func:`containers.sif.wrap_in_place`).
  An archive the kernel leases to us is hashed beside the check and copied by byte
  ranges in the second read (:func:`_stream_build`).
- ``unpack`` (the previous pipeline, where no tar writer is installed): skopeo copies the
  image into an OCI layout, ``umoci raw unpack`` applies the layers with their whiteouts,
  :func:`containers.rootfs.prepare_rootfs` adds the mount points and Apptainer's
  metadata, mksquashfs packs the rootfs and siftool wraps it.

Every SIF has the squashfs as its primary system partition: a file Apptainer runs as it
is, and bubblewrap runs through squashfuse. It is written under a temp name beside
``dest`` and renamed into place; on any failure the temp SIF and the work directory are
removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from containers.archive import (
    ImageArchive,
    ImageArchiveError,
    check_layers,
    image_config_summary,
    layer_bytes,
    layer_digests,
    pinned_archive,
)
from containers.flatten import LayerHandles, LayerTree, write_flat_ranges, write_flat_tar
from containers.layers import BackgroundDigests, ImageLimits
from containers.oci_layout import (
    check_oci_layers,
    oci_layer_digests,
    oci_layer_handles,
    read_oci_image,
)
from containers.rootfs import drop_setid_bits, prepare_rootfs
from containers.sif import sif_arch_code, sif_partition, wrap_in_place, write_sif
from containers.squash import GZIP_LEVEL, squash_tar, tar_writer
from gateway.common.errors import ContainerToolError, InvalidInput
from gateway.common.process import run_command
from gateway.common.trees import remove_tree

TOOL_TIMEOUT = 3600
OCI_REF = "img"
BUILDERS = ("auto", "apptainer", "tools", "stream", "unpack")

Progress = Callable[[str], None] | None
# (step, bytes done, bytes in all) while the layers are read: the check, then the squash.
Meter = Callable[[str, int, int], None] | None


@dataclass(frozen=True)
class SifImage:
    """A built SIF and where its squashfs partition lies inside it."""

    path: Path
    partition_offset: int
    partition_size: int
    size_bytes: int


def _tool(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    return run_command(argv, timeout=TOOL_TIMEOUT, error_type=ContainerToolError, what=what,
                       env=env).stdout


def _step(progress: Progress, name: str) -> None:
    if progress:
        progress(name)


@contextmanager
def _work_dir(workdir: Path) -> Iterator[Path]:
    """Create ``workdir`` (new or empty) for one build and remove it afterwards, always."""
    workdir = Path(workdir).absolute()
    if ":" in str(workdir):
        raise InvalidInput(f"work directory {workdir} contains ':', which skopeo and umoci "
                           "image references cannot carry")
    if workdir.exists() and any(workdir.iterdir()):
        raise InvalidInput(f"work directory {workdir} is not empty")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        yield workdir
    finally:
        remove_tree(workdir)


def _unpack(work: Path, progress: Progress) -> Path:
    _step(progress, "unpack")
    rootfs = work / "rootfs"
    argv = ["umoci", "raw", "unpack"]
    if os.geteuid() != 0:
        argv.append("--rootless")
    _tool([*argv, "--image", f"{work / 'oci'}:{OCI_REF}", str(rootfs)], "umoci unpack")
    return rootfs


def _install(tmp: Path, dest: Path) -> SifImage:
    """fsync the finished temp SIF and rename it to ``dest``."""
    offset, size = sif_partition(tmp)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, dest)
    return SifImage(dest, offset, size, dest.stat().st_size)


def remove_partials(dest: Path) -> int:
    """Remove the temp SIFs an earlier build of ``dest`` left when it was killed (SIGKILL,
    a lost node); returns how many. Only for a caller that holds the build's lock."""
    removed = 0
    for stale in dest.parent.glob(f".{dest.name}.*.partial"):
        stale.unlink(missing_ok=True)
        removed += 1
    return removed


@contextmanager
def _temp_sif(dest: Path) -> Iterator[Path]:
    """A unique temp name beside ``dest`` (same file system), removed unless renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _convert(work: Path, config: dict[str, Any], dest: Path, progress: Progress) -> SifImage:
    """OCI layout in ``work/oci`` -> rootfs -> squashfs -> SIF at ``dest``."""
    architecture = image_config_summary(config)["architecture"]
    rootfs = _unpack(work, progress)
    drop_setid_bits(rootfs)
    prepare_rootfs(rootfs, config)
    _step(progress, "squash")
    squashfs = work / "rootfs.squashfs"
    _tool(["mksquashfs", str(rootfs), str(squashfs), "-noappend", "-comp", "gzip",
           "-Xcompression-level", str(GZIP_LEVEL), "-quiet", "-no-progress"], "mksquashfs")
    _step(progress, "sif")
    config_json = work / "image-config.json"
    config_json.write_text(json.dumps(config, sort_keys=True))
    with _temp_sif(dest) as tmp:
        write_sif(tmp, squashfs, architecture, config_json)
        return _install(tmp, dest)


def _apptainer_build(source: str, dest: Path, work: Path, progress: Progress) -> SifImage:
    _step(progress, "build")
    tmpdir = work / "apptainer-tmp"
    tmpdir.mkdir()
    with _temp_sif(dest) as tmp:
        _tool(["apptainer", "build", "--force", "--disable-cache", str(tmp), source],
              "apptainer build", env={"APPTAINER_TMPDIR": str(tmpdir)})
        return _install(tmp, dest)


def use_apptainer(builder: str = "auto") -> bool:
    """Whether ``apptainer build`` makes the SIF: ``auto`` (when on PATH), ``apptainer``;
    never for ``tools`` (the project's own converter: ``stream`` where a tar writer is
    installed, else ``unpack``), ``stream`` or ``unpack``.

    Only the tools' SIF has the bind targets bubblewrap needs (/code, /dataset, /model);
    Apptainer's runs under Apptainer alone, which creates missing targets itself.
    """
    if builder not in BUILDERS:
        raise InvalidInput(f"unknown SIF builder {builder!r}: use {', '.join(BUILDERS)}")
    if builder == "apptainer" and not shutil.which("apptainer"):
        raise InvalidInput("builder apptainer: apptainer is not on PATH")
    return builder == "apptainer" or (builder == "auto" and bool(shutil.which("apptainer")))


def build_method(builder: str = "auto") -> str:
    """``apptainer``, ``stream`` or ``unpack``: how ``builder`` (see :func:`use_apptainer`)
    builds on this machine."""
    if use_apptainer(builder):
        return "apptainer"
    if builder == "unpack":
        return "unpack"
    writer = tar_writer()
    if builder == "stream" and writer is None:
        raise InvalidInput("builder stream: neither tar2sqfs (squashfs-tools-ng) nor sqfstar "
                           "4.6+ (squashfs-tools) is installed")
    return "stream" if writer else "unpack"


def _stream_build(layers: LayerHandles, layer_total: int, config: dict[str, Any],
                  check: Callable[[LayerTree, BackgroundDigests | None], object],
                  digests: list[tuple[str | None, str | None]], dest: Path, work: Path,
                  progress: Progress, meter: Meter,
                  unchanged: Callable[[], bool] | None = None) -> SifImage:
    """Check the layers into a tree, then flatten them into the SquashFS writer and wrap
    its output as the SIF (see the module).

    ``unchanged`` (the layers' file is leased: :mod:`containers.read_lease`) lets a
    helper process hash the plain layers beside the check and the squash, and the second
    read copy the kept entries' byte ranges unread
    (:func:`containers.flatten.write_flat_ranges`); the digests and the lease, still
    held after the squash, prove that what was copied is what the config names and
    what was checked. Without it the second read checks and hashes every entry again
    (:func:`containers.flatten.write_flat_tar`).
    """
    architecture = image_config_summary(config)["architecture"]
    sif_arch_code(architecture)          # refused before anything is squashed
    writer = tar_writer()
    if writer is None:
        raise InvalidInput("neither tar2sqfs (squashfs-tools-ng) nor sqfstar 4.6+ is "
                           "installed")
    tree = LayerTree(keep_offsets=unchanged is not None)
    _step(progress, "check")
    squash_meter = (lambda done, total: meter("squash", done, total)) if meter else None
    config_json = json.dumps(config, sort_keys=True).encode()
    with _temp_sif(dest) as tmp:
        if unchanged is not None:
            background = BackgroundDigests()
            try:     # the digests are hashed beside the check and the squash
                check(tree, background)
                tree.finish(config)
                _step(progress, "squash")
                try:
                    squash_tar(lambda out: write_flat_ranges(layers, tree, out, squash_meter,
                                                             layer_total), tmp, writer)
                except ContainerToolError:
                    background.verify(ImageArchiveError)   # a corrupt layer says better why
                    raise
                background.verify(ImageArchiveError)
            finally:
                background.close()
            if not unchanged():
                raise ImageArchiveError("the archive was opened for writing while it was "
                                        "converted; import it again once it is written")
        else:
            check(tree, None)
            tree.finish(config)
            _step(progress, "squash")
            squash_tar(lambda out: write_flat_tar(layers, tree, out, squash_meter,
                                                  layer_total, digests), tmp, writer)
        _step(progress, "sif")
        if not wrap_in_place(tmp, architecture, config_json):
            squashfs = work / "rootfs.squashfs"   # this file system cannot: siftool copies
            os.replace(tmp, squashfs)
            (work / "image-config.json").write_bytes(config_json)
            write_sif(tmp, squashfs, architecture, work / "image-config.json")
        return _install(tmp, dest)


def build_sif_from_archive(archive: ImageArchive, dest: Path, workdir: Path,
                           progress: Progress = None, *, builder: str = "auto",
                           before_unpack: Callable[[], object] | None = None,
                           limits: ImageLimits | None = None, meter: Meter = None,
                           ) -> SifImage:
    """Convert a `docker save` archive into the SIF ``dest``, atomically.

    ``workdir`` must be new or empty; it is removed when the build ends. ``progress``
    gets the step names: ``check``, ``squash``, ``sif`` (streamed); ``copy``, ``unpack``,
    ``squash``, ``sif`` (unpacked); ``build`` (Apptainer). ``meter`` follows the bytes of
    the streamed build's two reads. ``builder``: see :func:`use_apptainer`.

    The streamed build checks the layers itself (with ``limits``). The others expect the
    caller to check them: ``before_unpack`` runs after the copy and before anything is
    unpacked (or before Apptainer starts); an import passes the wait for its layer check
    there, so the check overlaps the copy.
    """
    dest = Path(dest).absolute()
    transport = "docker-archive" if archive.has_manifest_json else "oci-archive"
    method = build_method(builder)
    if method == "stream":
        with _work_dir(workdir) as work, pinned_archive(archive) as pinned:
            check_meter = (lambda done, total: meter("check", done, total)) if meter else None
            return _stream_build(
                pinned.handles, layer_bytes(archive), archive.config,
                lambda tree, background: check_layers(
                    archive, check_meter, limits, tree=tree, digests=False,
                    handles=pinned.handles, background=background),
                layer_digests(archive), dest, work, progress, meter, pinned.unchanged)
    apptainer = method == "apptainer"
    with _work_dir(workdir) as work:
        source = work / "image.tar"  # a link: the archive's own path may hold ':'
        source.symlink_to(Path(archive.path).absolute())
        if apptainer:
            if before_unpack:
                before_unpack()
            return _apptainer_build(f"{transport}:{source}", dest, work, progress)
        _step(progress, "copy")
        _tool(["skopeo", "copy", "--quiet", f"{transport}:{source}",
               f"oci:{work / 'oci'}:{OCI_REF}"], "skopeo copy")
        if before_unpack:
            before_unpack()
        return _convert(work, archive.config, dest, progress)


def _docker_reference(reference: str) -> str:
    if "://" in reference:
        if not reference.startswith("docker://"):
            raise InvalidInput(f"{reference!r}: only docker:// registry references are pulled")
        return reference
    return f"docker://{reference}"


def inspect_registry_image(reference: str, *, tls_verify: bool = True) -> tuple[str, dict]:
    """(config digest, config) of a registry image, without pulling its layers.

    The digest is the one the image manifest names when the registry serves a plain
    image manifest, else the sha256 of the config bytes.
    """
    ref = _docker_reference(reference)
    tls = f"--tls-verify={str(tls_verify).lower()}"
    raw = _tool(["skopeo", "inspect", "--config", "--raw", tls, ref], "skopeo inspect")
    manifest_text = _tool(["skopeo", "inspect", "--raw", tls, ref], "skopeo inspect")
    try:
        config = json.loads(raw)
        manifest = json.loads(manifest_text)
    except ValueError as exc:
        raise ContainerToolError(["skopeo", "inspect", ref], 0, "the registry returned a "
                                 "config or manifest that is not JSON", "skopeo inspect") from exc
    digest = (manifest.get("config") or {}).get("digest") if isinstance(manifest, dict) else None
    if not digest:
        digest = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    return digest, config


def build_sif_from_registry(reference: str, dest: Path, workdir: Path, *,
                            tls_verify: bool = True, progress: Progress = None,
                            expected_digest: str | None = None, builder: str = "auto",
                            limits: ImageLimits | None = None
                            ) -> tuple[str, dict, SifImage]:
    """Pull ``reference`` and convert it into the SIF ``dest``; returns (digest, config, SIF).

    The digest is the registry's (as :func:`inspect_registry_image` gives it): skopeo
    re-serialises the config when it converts to OCI, so the pulled copy's own digest
    differs. A pulled config that is not the inspected one (the tag moved meanwhile), or
    a digest other than ``expected_digest``, is refused. The layers get the same checks
    as an imported archive. ``builder``: see :func:`use_apptainer`.
    """
    dest = Path(dest).absolute()
    method = build_method(builder)
    digest, config = inspect_registry_image(reference, tls_verify=tls_verify)
    if expected_digest and digest != expected_digest:
        raise ImageArchiveError(f"{reference} is now {digest}, not {expected_digest}; "
                                "try again")
    with _work_dir(workdir) as work:
        _step(progress, "copy")
        _tool(["skopeo", "copy", "--quiet", f"--src-tls-verify={str(tls_verify).lower()}",
               _docker_reference(reference), f"oci:{work / 'oci'}:{OCI_REF}"], "skopeo copy")
        image = read_oci_image(work / "oci", OCI_REF)
        if image.config != config:
            raise ImageArchiveError(f"{reference} changed while it was pulled (config "
                                    f"{digest} expected); try again")
        if method == "stream":
            layer_total = sum(path.stat().st_size for path in image.layers)
            sif = _stream_build(lambda: oci_layer_handles(image), layer_total, config,
                                lambda tree, _background: check_oci_layers(
                                    image, limits=limits, tree=tree, digests=False),
                                oci_layer_digests(image), dest, work, progress, None)
            return digest, config, sif
        _step(progress, "check")
        check_oci_layers(image, limits=limits)
        if method == "apptainer":
            sif = _apptainer_build(f"oci:{work / 'oci'}:{OCI_REF}", dest, work, progress)
        else:
            sif = _convert(work, config, dest, progress)
        return digest, config, sif


__all__ = ["SifImage", "build_method", "build_sif_from_archive", "build_sif_from_registry",
           "inspect_registry_image", "remove_partials", "sif_partition", "use_apptainer"]
