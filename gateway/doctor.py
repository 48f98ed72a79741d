"""`gw doctor`: check what jobs need and say what to fix."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import GatewayError


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, object]:
        """Stable fields for ``--json``."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _check_home(gw: Gateway) -> Check:
    try:
        gw.layout.ensure()
        probe = gw.layout.tmp / f".doctor-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("home", False, f"{gw.config.home}: {exc}",
                     "set GW_HOME to a writable directory on a filesystem the compute "
                     "nodes share")
    return Check("home", True, str(gw.config.home))


def _check_slurm(gw: Gateway) -> Check:
    if shutil.which("sbatch") is None:
        return Check("slurm", False, "sbatch is not on PATH",
                     "install the Slurm client commands (Debian: slurm-client)")
    try:
        partitions = gw.slurm.partitions()
    except GatewayError as exc:
        return Check("slurm", False, str(exc),
                     "check SLURM_CONF and that slurmctld runs (scripts/cluster.sh status)")
    if not partitions:
        return Check("slurm", False, "sinfo lists no partition", "configure a partition")
    desc = ", ".join(f"{p.name}{'*' if p.default else ''} ({p.cpus} cpus, {p.mem_mib} MiB, "
                     f"{p.gpus} gpus)" for p in partitions.values())
    return Check("slurm", True, desc)


def _check_accounting(gw: Gateway) -> Check:
    try:
        gw.slurm.query_finished(["1"])
    except GatewayError as exc:
        return Check("accounting", False, str(exc),
                     "configure slurmdbd so sacct works; without it finished jobs that "
                     "wrote no spool file stay UNKNOWN")
    return Check("accounting", True, "sacct answers")


def _check_runtime(gw: Gateway) -> list[Check]:
    from hpc_gateway.containers.runtime import detect_runtime

    try:
        runtime = detect_runtime(str(gw.config["runtime"]))
    except GatewayError as exc:
        return [Check("runtime", False, str(exc), "install apptainer, or bubblewrap + squashfuse")]
    checks = [Check("runtime", True, f"{runtime} ({shutil.which(runtime)})")]
    if runtime == "bwrap":
        missing = [t for t in ("squashfuse", "fusermount3") if shutil.which(t) is None]
        checks.append(Check("squashfuse", not missing, "found" if not missing else
                            f"missing: {', '.join(missing)}", "apt-get install squashfuse fuse3"))
        fuse_ok = os.access("/dev/fuse", os.R_OK | os.W_OK)
        checks.append(Check("fuse", fuse_ok, "/dev/fuse usable" if fuse_ok else
                            "/dev/fuse is missing or not readable/writable by this user",
                            "chmod 0666 /dev/fuse (or load the fuse module)"))
    return checks


def _check_build_tools() -> Check:
    if shutil.which("apptainer"):
        return Check("image build", True, "apptainer build")
    tools = ("skopeo", "umoci", "mksquashfs", "siftool")
    missing = [t for t in tools if shutil.which(t) is None]
    return Check("image build", not missing,
                 "skopeo, umoci, mksquashfs, siftool" if not missing else
                 f"missing: {', '.join(missing)}",
                 "apt-get install skopeo umoci squashfs-tools siftool")


def run_checks(gw: Gateway) -> list[Check]:
    """Every check, in the order a person would fix them."""
    slurm = _check_slurm(gw)
    accounting = _check_accounting(gw) if slurm.ok else Check(
        "accounting", False, "skipped: Slurm is not reachable", "fix the slurm check first")
    return [_check_home(gw), slurm, accounting, *_check_runtime(gw), _check_build_tools()]
