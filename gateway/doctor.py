"""`gw doctor`: check what jobs need and say what to fix."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from gateway.common.errors import GatewayError
from gateway.context import Gateway


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
    from containers.runtime import detect_runtime

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


def _check_build_tools(gw: Gateway) -> Check:
    """The tools of the SIF builder this home uses (``image_builder``)."""
    from containers.build import build_method
    from gateway.stores.images import sif_builder

    try:
        method = build_method(sif_builder(gw))
    except GatewayError as exc:
        return Check("image build", False, str(exc), "set image_builder to auto")
    if method == "apptainer":
        return Check("image build", True, "apptainer build")
    if method == "stream":
        from containers.squash import tar_writer

        tools: tuple[str, ...] = (str(tar_writer()), "skopeo")   # skopeo: registry pulls
        fix = "apt-get install squashfs-tools-ng skopeo"
    else:
        tools = ("skopeo", "umoci", "mksquashfs", "siftool")
        fix = ("apt-get install skopeo umoci squashfs-tools siftool (or squashfs-tools-ng "
               "for the streaming converter)")
    missing = [t for t in tools if shutil.which(t) is None]
    return Check("image build", not missing,
                 f"{method}: {', '.join(tools)}" if not missing else
                 f"{method}: missing {', '.join(missing)}", fix)


_LOCK_PROBE = """
import fcntl, sys
with open(sys.argv[1], "r+") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(0)   # refused: the lock held by the parent is seen
    sys.exit(3)       # granted: locks are not enforced on this filesystem
"""


def _check_locks(gw: Gateway) -> Check:
    """SQLite and the spool rely on POSIX locks: one process's lock must stop another."""
    import fcntl
    import subprocess
    import sys

    from gateway.home.layout import filesystem_type

    kind = filesystem_type(gw.config.home)
    fix = ("mount Lustre with -o flock, NFS without nolock (with lockd/statd running), "
           "or keep the home on a filesystem that has them")
    probe = gw.layout.tmp / f".lock-probe-{os.getpid()}"
    try:
        gw.layout.ensure()
        with open(probe, "w+") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)
            child = subprocess.run([sys.executable, "-c", _LOCK_PROBE, str(probe)],
                                   capture_output=True, timeout=30, check=False)
    except OSError as exc:
        return Check("locks", False, f"{kind}: taking a POSIX lock failed ({exc})", fix)
    except subprocess.TimeoutExpired:
        return Check("locks", False, f"{kind}: a POSIX lock probe hung", fix)
    finally:
        probe.unlink(missing_ok=True)
    if child.returncode != 0:
        return Check("locks", False, f"{kind}: a lock held by one process did not stop "
                     "another", fix)
    return Check("locks", True, f"POSIX locks work on {gw.config.home} ({kind})")


def _check_database(gw: Gateway) -> Check:
    try:
        mode = gw.conn.execute("PRAGMA journal_mode").fetchone()[0]
    except GatewayError as exc:
        return Check("database", False, str(exc), "see the message")
    ok = mode.lower() != "wal"
    return Check("database", ok, f"{gw.config.database} (journal {mode})",
                 "" if ok else "run `sqlite3 DB 'PRAGMA journal_mode=DELETE'`: WAL needs "
                 "shared memory that network filesystems do not give")


def _check_spool(gw: Gateway) -> Check:
    """Spool files that could not be ingested yet (retried by every command), and those
    put aside (named: they changed nothing, and someone should look at them)."""
    import time

    from spool.format import SpoolFormatError, read_record
    from spool.layout import pending_spool_files

    stuck: list[str] = []
    kept: list[str] = []
    pending = pending_spool_files(gw.layout.spool)
    for path in pending:
        try:
            read_record(path)
        except (OSError, SpoolFormatError) as exc:
            try:
                old = time.time() - path.stat().st_mtime > 60
            except OSError:
                continue
            (stuck if old else kept).append(f"{path.name} ({exc})")
    aside = gw.layout.spool / "aside"
    set_aside = sorted(p.name for p in aside.iterdir()) if aside.is_dir() else []
    detail = f"{len(pending)} pending"
    if kept:
        detail += f"; kept for a retry: {', '.join(kept[:5])}"
    if set_aside:
        shown = ", ".join(set_aside[:5]) + (f" and {len(set_aside) - 5} more"
                                            if len(set_aside) > 5 else "")
        detail += f"; {len(set_aside)} put aside in {aside} (they changed nothing): {shown}"
    if stuck:
        return Check("spool", False, f"{detail}; unreadable for over a minute: "
                     f"{', '.join(stuck[:5])}", "read the files; a job that wrote half a "
                     "file may have lost its node: `gw job show` says what Slurm knows")
    return Check("spool", True, detail)


def _check_watcher(gw: Gateway) -> Check:
    """Whether a spool watcher runs (informational: gw commands harvest without one)."""
    from spool.watcher import running_watchers

    watchers = running_watchers(gw.layout.spool)
    if not watchers:
        return Check("watcher", True, "none running: gw commands harvest as they run; start "
                     "`gw spool watch` to harvest as jobs end (docs/watcher.md)")
    each = "; ".join(f"on {info.get('host')} (pid {info.get('pid')}, {info.get('mode')})"
                     for info in watchers)
    return Check("watcher", True, f"running {each}" if len(watchers) == 1
                 else f"{len(watchers)} running: {each}")


def _check_sharing(gw: Gateway) -> list[Check]:
    """share_root and site_images, when the site set them (docs/sharing.md)."""
    from gateway.common.errors import InvalidInput

    checks = []
    if gw.config["share_root"]:
        from gateway.stores.sharing import share_root

        try:
            checks.append(Check("sharing", True, f"share_root {share_root(gw.config)}"))
        except InvalidInput as exc:
            checks.append(Check("sharing", False, str(exc),
                                f"install -d -m 1777 {gw.config['share_root']}"))
    if gw.config["site_images"]:
        from gateway.stores.site_images import list_site_images

        try:
            count = len(list_site_images(gw.config))
            checks.append(Check("site images", True,
                                f"{count} in {gw.config['site_images']}"))
        except InvalidInput as exc:
            checks.append(Check("site images", False, str(exc),
                                f"chmod go-w {gw.config['site_images']} and what it holds"))
    return checks


def run_checks(gw: Gateway) -> list[Check]:
    """Every check, in the order a person would fix them."""
    home = _check_home(gw)
    slurm = _check_slurm(gw)
    accounting = _check_accounting(gw) if slurm.ok else Check(
        "accounting", False, "skipped: Slurm is not reachable", "fix the slurm check first")
    local = ([_check_locks(gw), _check_database(gw), _check_spool(gw), _check_watcher(gw)]
             if home.ok else [])
    return [home, *local, slurm, accounting, *_check_runtime(gw), _check_build_tools(gw),
            *_check_sharing(gw)]
