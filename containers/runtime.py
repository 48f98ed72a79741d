"""Container command lines: the one place that builds them, for Apptainer and bubblewrap.

Both runtimes get the same :class:`ContainerSpec` (one mount spec). The result is shell
text for a job script (setup, one run line, teardown); every value goes through
:func:`shlex.quote` and is validated first, so no user value can change the script.

bubblewrap runs the SIF's squashfs partition, mounted with squashfuse at its byte offset,
read-only, with the job's bind mounts on top. It cannot create bind targets in a read-only
image, so the conversion (:mod:`containers.rootfs`) creates them. GPUs: the node's device
nodes and driver libraries are bound in, as Apptainer's ``--nv`` does.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import shutil
from dataclasses import dataclass

from hpc_gateway.gateway.errors import InvalidInput

RUNTIMES = ("apptainer", "bwrap")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Apptainer's nvliblist.conf, the part CUDA programs use.
NVIDIA_LIBRARIES = ("libcuda.so", "libcudadebugger.so", "libnvidia-ml.so",
                    "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so", "libnvidia-gpucomp.so",
                    "libnvidia-opencl.so", "libnvidia-allocator.so", "libnvidia-cfg.so")
NVIDIA_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                  "/dev/nvidia-modeset", "/dev/nvidia-caps")
CONTAINER_LIBS = "/.singularity.d/libs"
CONTAINER_BIN = "/.singularity.d/bin"


@dataclass(frozen=True)
class Mount:
    """A host path bound into the container (both paths absolute)."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that decides how a job's container runs.

    ``env`` is ordered: the image's Env first, then the job's (a later key wins).
    ``scratch`` is a node-local directory private to this job; the image is mounted
    below it. ``shm_bytes`` gives the container a private /dev/shm of that size.
    """

    sif: str
    partition_offset: int
    scratch: str
    mounts: tuple[Mount, ...]
    workdir: str
    env: tuple[tuple[str, str], ...]
    command: tuple[str, ...]
    gpus: int = 0
    shm_bytes: int | None = None


@dataclass(frozen=True)
class ContainerScript:
    """Shell text for a job script.

    ``setup`` runs first (its failure must stop the job), ``run`` is one command whose
    exit status is the job's, ``teardown`` undoes setup: safe to run twice, and after a
    setup that failed half-way.
    """

    setup: str
    run: str
    teardown: str


def detect_runtime(preferred: str = "auto") -> str:
    """``apptainer`` when on PATH, else ``bwrap`` (with squashfuse); a named one must exist."""
    if preferred not in ("auto", *RUNTIMES):
        raise InvalidInput(f"unknown container runtime {preferred!r}: use auto, apptainer or "
                           "bwrap")
    candidates = RUNTIMES if preferred == "auto" else (preferred,)
    for runtime in candidates:
        if shutil.which(runtime) and (runtime != "bwrap" or _has_squashfuse()):
            return runtime
    if preferred == "bwrap" and shutil.which("bwrap"):
        raise InvalidInput("runtime bwrap needs squashfuse, which is not on PATH")
    raise InvalidInput(f"no container runtime found ({' or '.join(candidates)} is not on "
                       "PATH): install apptainer, or bubblewrap and squashfuse")


def _has_squashfuse() -> bool:
    return bool(shutil.which("squashfuse_ll") or shutil.which("squashfuse"))


def container_script(spec: ContainerSpec, runtime: str) -> ContainerScript:
    """The setup, run and teardown shell text of ``spec`` under ``runtime``.

    Raises :class:`InvalidInput` for a value no runtime can carry safely (an env name
    that is not a shell identifier, a NUL byte, a relative path, a ``:`` or ``,`` in a
    mount path for Apptainer).
    """
    if runtime not in RUNTIMES:
        raise InvalidInput(f"unknown container runtime {runtime!r}: use apptainer or bwrap")
    check_spec(spec, runtime)
    return _bwrap(spec) if runtime == "bwrap" else _apptainer(spec)


def check_spec(spec: ContainerSpec, runtime: str) -> None:
    """Refuse values that would be ambiguous or unsafe on a command line."""
    for key, value in spec.env:
        if not ENV_KEY.fullmatch(key):
            raise InvalidInput(f"invalid environment variable name {key!r}: use letters, "
                               "digits and '_', not starting with a digit")
        _check_text(value, f"the value of {key}")
    for arg in spec.command:
        _check_text(arg, "the command")
    if not spec.command:
        raise InvalidInput("the container needs a command")
    for path, what in [(spec.sif, "image"), (spec.scratch, "scratch directory"),
                       (spec.workdir, "working directory")]:
        _check_path(path, what, runtime)
    for mount in spec.mounts:
        _check_path(mount.source, "mount source", runtime)
        _check_path(mount.target, "mount target", runtime)
        if posixpath.normpath(mount.target) == "/":
            raise InvalidInput(f"cannot mount {mount.source} over the container's root")
    if int(spec.partition_offset) < 0 or int(spec.gpus) < 0 or (spec.shm_bytes or 0) < 0:
        raise InvalidInput("partition offset, GPU count and shm size must not be negative")


def _check_text(value: str, what: str) -> None:
    if "\0" in value:
        raise InvalidInput(f"{what} contains a NUL byte")


def _check_path(path: str, what: str, runtime: str) -> None:
    _check_text(path, f"the {what}")
    if not path.startswith("/"):
        raise InvalidInput(f"the {what} {path!r} must be an absolute path")
    if runtime == "apptainer" and ("," in path or ":" in path):
        raise InvalidInput(f"the {what} {path!r} contains ',' or ':', which Apptainer's "
                           "--bind cannot carry")


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _line(words: list[str]) -> str:
    return " ".join(_q(w) for w in words)


def container_env(spec: ContainerSpec) -> dict[str, str]:
    """The container's environment: image env, then the job's (later wins), HOME=/tmp."""
    env = dict(spec.env)
    env.setdefault("HOME", "/tmp")
    return env


def _bwrap_env(spec: ContainerSpec) -> dict[str, str]:
    """:func:`container_env` plus, with GPUs, the bound driver libraries and nvidia-smi."""
    env = container_env(spec)
    if spec.gpus:
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (CONTAINER_LIBS, env.get("LD_LIBRARY_PATH", "")) if p)
        if env.get("PATH"):
            env["PATH"] = f"{env['PATH']}:{CONTAINER_BIN}"
    return env


def _bwrap(spec: ContainerSpec) -> ContainerScript:
    scratch, rootfs = spec.scratch, f"{spec.scratch}/rootfs"
    setup = [
        f"mkdir -p -m 700 {_q(scratch)}",
        f"if [ -L {_q(scratch)} ] || [ ! -O {_q(scratch)} ]; then "
        f"echo {_q(f'gw: {scratch} is not a directory of this user')} >&2; false; fi",
        f"mkdir -p {_q(rootfs)}",
        # squashfuse_ll (what Apptainer uses) keeps the kernel's caches: a warm
        # `import numpy` took 0.23 s with it and 0.45 s with squashfuse (docs/containers.md).
        "gw_squashfuse=$(command -v squashfuse_ll || command -v squashfuse) || "
        "{ echo 'gw: squashfuse is not installed on this node' >&2; false; }",
        f'"$gw_squashfuse" -o offset={int(spec.partition_offset)} {_q(spec.sif)} {_q(rootfs)}',
        *_identity_files(scratch, rootfs),
    ]
    argv = ["bwrap", "--ro-bind", rootfs, "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp"]
    if spec.shm_bytes:
        argv += ["--size", str(int(spec.shm_bytes)), "--tmpfs", "/dev/shm"]
    argv += ["--ro-bind", f"{scratch}/passwd", "/etc/passwd",
             "--ro-bind", f"{scratch}/group", "/etc/group",
             "--ro-bind-try", "/etc/hosts", "/etc/hosts",
             "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    for mount in spec.mounts:
        argv += ["--ro-bind" if mount.read_only else "--bind", mount.source, mount.target]
    argv += ["--chdir", spec.workdir, "--clearenv"]
    for key, value in _bwrap_env(spec).items():
        argv += ["--setenv", key, value]
    argv += ["--unshare-pid", "--die-with-parent", "--new-session"]
    run = _line(argv)
    if spec.gpus:
        setup += _gpu_binds_shell()
        run += ' "${gw_gpu_args[@]}"'
    run += " -- " + _line(list(spec.command))
    teardown = [
        f"fusermount3 -u {_q(rootfs)} 2>/dev/null || fusermount3 -uz {_q(rootfs)} "
        f"2>/dev/null || umount {_q(rootfs)} 2>/dev/null || true",
        f"rm -f {_q(scratch + '/passwd')} {_q(scratch + '/group')}",
        f"rmdir {_q(rootfs)} 2>/dev/null || true",
        f"rmdir {_q(scratch)} 2>/dev/null || true",
    ]
    return ContainerScript("\n".join(setup), run, "\n".join(teardown))


def _identity_files(scratch: str, rootfs: str) -> list[str]:
    """Shell writing the image's passwd/group plus this user's entries (as Apptainer does).

    Without them, programs that look the user up (``getpass.getuser()``, ``whoami``)
    fail. The image's files are read only when neither they nor /etc are symlinks, so an
    image cannot make the host read a host file.
    """
    lines = []
    for name, lookup in (("passwd", '"$(id -u)"'), ("group", '"$(id -g)"')):
        image_file, out = f"{rootfs}/etc/{name}", f"{scratch}/{name}"
        lines.append(f"{{ if [ ! -L {_q(rootfs + '/etc')} ] && [ ! -L {_q(image_file)} ] && "
                     f"[ -f {_q(image_file)} ]; then cat {_q(image_file)}; fi; "
                     f"getent {name} {lookup} || true; }} > {_q(out)}")
    return lines


def _gpu_binds_shell() -> list[str]:
    """Shell collecting bwrap arguments for the node's NVIDIA devices, libraries, nvidia-smi."""
    libs = "|".join(lib.replace(".", r"\.") for lib in NVIDIA_LIBRARIES)
    # ldconfig -p: "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1";
    # only 64-bit entries (AArch64, 64bit on ppc64le/s390x), first of each name.
    awk = (f"$1 ~ /^({libs})/ && $2 ~ /x86-64|AArch64|64bit/ && $NF ~ /^\\// "
           "&& !seen[$1]++ {print $1, $NF}")
    return [
        "# GPU passthrough: the node's NVIDIA device nodes and driver libraries (as --nv).",
        "gw_gpu_args=()",
        "for gw_dev in /dev/nvidia[0-9]* " + " ".join(NVIDIA_DEVICES) + "; do",
        '    if [ -e "$gw_dev" ]; then gw_gpu_args+=(--dev-bind "$gw_dev" "$gw_dev"); fi',
        "done",
        f"gw_gpu_args+=(--tmpfs {CONTAINER_LIBS} --tmpfs {CONTAINER_BIN})",
        "gw_ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)",
        "while read -r gw_name gw_lib; do",
        f'    gw_gpu_args+=(--ro-bind "$gw_lib" "{CONTAINER_LIBS}/$gw_name")',
        f"done < <(\"$gw_ldconfig\" -p | awk {_q(awk)})",
        "if gw_smi=$(command -v nvidia-smi); then",
        f'    gw_gpu_args+=(--ro-bind "$gw_smi" {CONTAINER_BIN}/nvidia-smi)',
        "fi",
        'if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then',
        '    gw_gpu_args+=(--setenv CUDA_VISIBLE_DEVICES "$CUDA_VISIBLE_DEVICES")',
        "fi",
    ]


def _apptainer(spec: ContainerSpec) -> ContainerScript:
    # `env -i` keeps the host's environment (APPTAINER_BIND, proxies, TERM, ...) out of
    # the container; values travel as APPTAINERENV_* because `--env K=V` is parsed as CSV.
    env = container_env(spec)
    env.pop("HOME")  # Apptainer refuses to set HOME this way; --containall makes one
    setup = [": # apptainer mounts the SIF itself"]
    prefix = 'env -i PATH="$PATH" HOME="${HOME:-/tmp}"'
    if spec.gpus:
        setup = ["gw_gpu_env=()",
                 'if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then',
                 '    gw_gpu_env=("APPTAINERENV_CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")',
                 "fi"]
        prefix += ' "${gw_gpu_env[@]}"'
    words = [f"APPTAINERENV_{key}={value}" for key, value in env.items()]
    words += ["apptainer", "exec", "--containall", "--cleanenv", "--pwd", spec.workdir]
    for mount in spec.mounts:
        suffix = ":ro" if mount.read_only else ""
        words += ["--bind", f"{mount.source}:{mount.target}{suffix}"]
    if spec.gpus:
        words.append("--nv")
    words += [spec.sif, *spec.command]
    return ContainerScript("\n".join(setup), f"{prefix} {_line(words)}", ": # nothing to undo")
