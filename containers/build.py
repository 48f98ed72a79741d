"""Building SIF images from `docker save` archives and registry images.

With Apptainer installed: ``apptainer build``. Without it (as on Debian 12, where
Apptainer is not packaged): skopeo copies the image into an OCI layout, ``umoci raw
unpack`` applies the layers with their whiteouts, the mount points and Apptainer's
metadata are added, mksquashfs packs the rootfs and siftool wraps it as the SIF's primary
system partition: a file Apptainer runs as it is, and bubblewrap runs through squashfuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from containers.archive import ImageArchive, ImageArchiveError, image_config_summary
from gateway.errors import ContainerToolError
from gateway.process import run_command

# The bind targets a job needs: bubblewrap cannot create them in a read-only image.
MOUNT_POINTS = ("code", "dataset", "model", "proc", "dev", "tmp", "sys",
                ".singularity.d/env", ".singularity.d/libs",
                ".singularity.d/bin", ".singularity.d/actions")
SIF_ARCH = {"386": 1, "amd64": 2, "arm": 3, "arm64": 4, "ppc64": 5, "ppc64le": 6, "mips": 7,
            "mipsle": 8, "mips64": 9, "mips64le": 10, "s390x": 11, "riscv64": 12}
TOOL_TIMEOUT = 3600

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class SifImage:
    """A built SIF and where its squashfs partition lies inside it."""

    path: Path
    partition_offset: int
    partition_size: int
    size_bytes: int


def _tool(argv: list[str], what: str) -> str:
    return run_command(argv, timeout=TOOL_TIMEOUT, error_type=ContainerToolError,
                       what=what).stdout


def sif_partition(path: Path) -> tuple[int, int]:
    """(offset, size) of the SIF's squashfs system partition, from ``siftool list``."""
    listing = _tool(["siftool", "list", str(path)], "siftool list")
    for line in listing.splitlines():
        match = re.search(r"\|(\d+)-(\d+)\s*\|FS \(Squashfs/\*?System", line)
        if match:
            start, end = int(match.group(1)), int(match.group(2))
            return start, end - start
    raise ContainerToolError(["siftool", "list", str(path)], 0,
                             f"no squashfs system partition in {path}", "siftool list")


def _safe_dir(root: Path, rel: str) -> Path:
    """Create ``root/rel`` as real directories, refusing links an image may plant."""
    current = root
    for part in rel.split("/"):
        current = current / part
        if current.is_symlink():
            raise ImageArchiveError(f"the image's /{rel} goes through a symlink "
                                    f"(/{current.relative_to(root)}); it cannot be a mount point")
        if not current.exists():
            current.mkdir(mode=0o755)
        elif not current.is_dir():
            raise ImageArchiveError(f"the image's /{current.relative_to(root)} is not a "
                                    "directory; it cannot be a mount point")
    return current


def _safe_write(root: Path, rel: str, text: str, mode: int = 0o644,
                keep_existing: bool = False) -> None:
    parent = _safe_dir(root, posixpath_dirname(rel)) if "/" in rel else root
    target = parent / rel.rsplit("/", 1)[-1]
    if target.is_symlink() or (target.exists() and not target.is_file()):
        if keep_existing:
            return
        raise ImageArchiveError(f"the image's /{rel} is a link or not a file")
    if keep_existing and target.exists():
        return
    target.write_text(text)
    os.chmod(target, mode)


def posixpath_dirname(rel: str) -> str:
    """The directory part of a '/'-separated relative path."""
    return rel.rsplit("/", 1)[0]


def prepare_rootfs(rootfs: Path, config: dict[str, Any]) -> None:
    """Add the mount points, Apptainer's env file and runscript, /etc/hosts, resolv.conf."""
    summary = image_config_summary(config)
    for rel in MOUNT_POINTS:
        _safe_dir(rootfs, rel)
    exports = "".join(f"export {key}={shlex.quote(value)}\n"
                      for key, value in summary["env"].items()
                      if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key))
    _safe_write(rootfs, ".singularity.d/env/10-docker2singularity.sh",
                "#!/bin/sh\n" + exports, 0o755)
    command = " ".join(shlex.quote(a) for a in summary["entrypoint"] + summary["cmd"])
    _safe_write(rootfs, ".singularity.d/runscript",
                f"#!/bin/sh\nexec {command or '/bin/sh'} \"$@\"\n", 0o755)
    _safe_write(rootfs, ".singularity.d/labels.json", json.dumps({}) + "\n")
    _safe_dir(rootfs, "etc")
    for name in ("hosts", "resolv.conf"):
        _safe_write(rootfs, f"etc/{name}", "", keep_existing=True)


def _squash_to_sif(rootfs: Path, work: Path, dest: Path, architecture: str,
                   progress: Progress) -> SifImage:
    squashfs = work / "rootfs.squashfs"
    if progress:
        progress("squash")
    _tool(["mksquashfs", str(rootfs), str(squashfs), "-noappend", "-quiet", "-no-progress"],
          "mksquashfs")
    if progress:
        progress("sif")
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        _tool(["siftool", "new", str(tmp)], "siftool new")
        _tool(["siftool", "add", "--datatype", "4", "--parttype", "2", "--partfs", "1",
               "--partarch", str(SIF_ARCH.get(architecture, 2)), "--groupid", "1",
               str(tmp), str(squashfs)], "siftool add")
        offset, size = sif_partition(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return SifImage(dest, offset, size, dest.stat().st_size)


def _unpack_oci(oci_ref: str, work: Path, config: dict[str, Any], progress: Progress) -> Path:
    if progress:
        progress("unpack")
    rootfs = work / "rootfs"
    argv = ["umoci", "raw", "unpack"]
    if os.geteuid() != 0:
        argv.append("--rootless")
    _tool([*argv, "--image", oci_ref, str(rootfs)], "umoci unpack")
    prepare_rootfs(rootfs, config)
    return rootfs


def _apptainer_build(source: str, dest: Path, progress: Progress) -> SifImage:
    if progress:
        progress("apptainer build")
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        _tool(["apptainer", "build", "--force", str(tmp), source], "apptainer build")
        offset, size = sif_partition(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return SifImage(dest, offset, size, dest.stat().st_size)


def build_sif_from_archive(archive: ImageArchive, dest: Path, workdir: Path,
                           progress: Progress = None) -> SifImage:
    """Convert a checked archive into the SIF ``dest`` (written atomically)."""
    transport = "docker-archive" if archive.has_manifest_json else "oci-archive"
    if shutil.which("apptainer"):
        return _apptainer_build(f"{transport}:{archive.path}", dest, progress)
    workdir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress("copy")
    _tool(["skopeo", "copy", "--quiet", f"{transport}:{archive.path}",
           f"oci:{workdir}/oci:img"], "skopeo copy")
    rootfs = _unpack_oci(f"{workdir}/oci:img", workdir, archive.config, progress)
    return _squash_to_sif(rootfs, workdir, dest, archive.architecture, progress)


def _docker_reference(reference: str) -> str:
    return reference if "://" in reference else f"docker://{reference}"


def inspect_registry_image(reference: str, *, tls_verify: bool = True) -> tuple[str, dict]:
    """(config digest, config) of a registry image, without pulling its layers."""
    raw = _tool(["skopeo", "inspect", "--config", "--raw", f"--tls-verify={str(tls_verify).lower()}",
                 _docker_reference(reference)], "skopeo inspect")
    config_bytes = raw.encode()
    try:
        config = json.loads(config_bytes)
    except ValueError as exc:
        raise ContainerToolError(["skopeo", "inspect"], 0, "the registry returned a config "
                                 "that is not JSON", "skopeo inspect") from exc
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest(), config


def build_sif_from_registry(reference: str, dest: Path, workdir: Path, *,
                            tls_verify: bool = True, progress: Progress = None
                            ) -> tuple[str, dict, SifImage]:
    """Pull ``reference`` and convert it into the SIF ``dest``."""
    digest, config = inspect_registry_image(reference, tls_verify=tls_verify)
    if shutil.which("apptainer"):
        return digest, config, _apptainer_build(_docker_reference(reference), dest, progress)
    workdir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress("pull")
    _tool(["skopeo", "copy", "--quiet", f"--src-tls-verify={str(tls_verify).lower()}",
           _docker_reference(reference), f"oci:{workdir}/oci:img"], "skopeo copy")
    rootfs = _unpack_oci(f"{workdir}/oci:img", workdir, config, progress)
    arch = image_config_summary(config)["architecture"]
    return digest, config, _squash_to_sif(rootfs, workdir, dest, arch, progress)
