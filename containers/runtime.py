"""Container command lines: the one place that builds them, for Apptainer and bubblewrap.

Both runtimes get the same :class:`ContainerSpec` (one mount spec). The result is shell
text for the job script, every value passed through :func:`shlex.quote`.

bubblewrap runs the SIF's squashfs partition mounted with squashfuse at its byte offset
(``squashfuse -o offset=N``), read-only, with the job's bind mounts on top; it cannot
create bind targets in a read-only image, so the conversion creates /code, /dataset and
/model. GPUs: the device nodes and the host's driver libraries are bound in, as
Apptainer's ``--nv`` does.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass

from gateway.errors import InvalidInput

RUNTIMES = ("apptainer", "bwrap")
# Apptainer's nvliblist.conf, the libraries that matter for CUDA programs.
NVIDIA_LIBRARIES = ("libcuda.so", "libcudadebugger.so", "libnvidia-ml.so",
                    "libnvidia-ptxjitcompiler.so", "libnvidia-nvvm.so",
                    "libnvidia-gpucomp.so", "libnvidia-opencl.so", "libnvidia-allocator.so",
                    "libnvidia-cfg.so")
NVIDIA_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                  "/dev/nvidia-modeset")
CONTAINER_LIBS = "/.singularity.d/libs"


@dataclass(frozen=True)
class Mount:
    """A host path bound into the container."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """Everything that decides how a job's container runs."""

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
    """Shell text for a job script: before, the run line, after."""

    setup: str
    run: str
    teardown: str


def detect_runtime(preferred: str = "auto") -> str:
    """``apptainer`` when installed, else ``bwrap``; a named runtime must be installed."""
    if preferred not in ("auto", *RUNTIMES):
        raise InvalidInput(f"unknown runtime {preferred!r}: use auto, apptainer or bwrap")
    candidates = RUNTIMES if preferred == "auto" else (preferred,)
    for runtime in candidates:
        if shutil.which(runtime):
            return runtime
    raise InvalidInput(f"no container runtime found ({' or '.join(candidates)} is not on "
                       "PATH): install apptainer, or bubblewrap and squashfuse")


def container_script(spec: ContainerSpec, runtime: str) -> ContainerScript:
    """The setup, run and teardown shell text of ``spec`` under ``runtime``."""
    if runtime == "bwrap":
        return _bwrap(spec)
    if runtime == "apptainer":
        return _apptainer(spec)
    raise InvalidInput(f"unknown runtime {runtime!r}: use apptainer or bwrap")


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _env(spec: ContainerSpec) -> dict[str, str]:
    """The container's environment: image env, then the job's (later wins)."""
    env: dict[str, str] = {}
    for key, value in spec.env:
        env[key] = value
    env.setdefault("HOME", "/tmp")
    return env


def _bwrap(spec: ContainerSpec) -> ContainerScript:
    rootfs = f"{spec.scratch}/rootfs"
    setup = [f"mkdir -p {_q(rootfs)}",
             f"squashfuse -o offset={int(spec.partition_offset)} {_q(spec.sif)} {_q(rootfs)}"]
    argv = ["bwrap", "--ro-bind", rootfs, "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp"]
    if spec.shm_bytes:
        argv += ["--size", str(int(spec.shm_bytes)), "--tmpfs", "/dev/shm"]
    for mount in spec.mounts:
        argv += ["--ro-bind" if mount.read_only else "--bind", mount.source, mount.target]
    env = _env(spec)
    if spec.gpus:
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (CONTAINER_LIBS, env.get("LD_LIBRARY_PATH", "")) if p)
    argv += ["--chdir", spec.workdir, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--unshare-pid", "--die-with-parent"]
    run = " ".join(_q(a) for a in argv)
    if spec.gpus:
        setup += _gpu_binds_shell()
        run += ' "${gw_gpu_args[@]}"'
    run += " -- " + " ".join(_q(a) for a in spec.command)
    teardown = [f"fusermount3 -u {_q(rootfs)} 2>/dev/null || umount {_q(rootfs)} "
                "2>/dev/null || true",
                f"rmdir {_q(rootfs)} {_q(spec.scratch)} 2>/dev/null || true"]
    return ContainerScript("\n".join(setup), run, "\n".join(teardown))


def _gpu_binds_shell() -> list[str]:
    """Shell that collects bwrap arguments for the node's NVIDIA devices and libraries."""
    libs = "|".join(lib.replace(".", r"\.") for lib in NVIDIA_LIBRARIES)
    return [
        "# GPU passthrough: the node's NVIDIA device nodes and driver libraries.",
        "gw_gpu_args=()",
        "for dev in /dev/nvidia[0-9]* " + " ".join(NVIDIA_DEVICES) + "; do",
        '    [ -e "$dev" ] && gw_gpu_args+=(--dev-bind "$dev" "$dev")',
        "done",
        '[ -d /dev/nvidia-caps ] && gw_gpu_args+=(--dev-bind /dev/nvidia-caps /dev/nvidia-caps)',
        f'gw_gpu_args+=(--tmpfs {CONTAINER_LIBS})',
        "while read -r lib; do",
        f'    gw_gpu_args+=(--ro-bind "$lib" "{CONTAINER_LIBS}/$(basename "$lib")")',
        f"done < <(ldconfig -p | awk '$1 ~ /^({libs})/ && $NF ~ /^\\// {{print $NF}}' | sort -u)",
        'if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then',
        '    gw_gpu_args+=(--setenv CUDA_VISIBLE_DEVICES "$CUDA_VISIBLE_DEVICES")',
        "fi",
    ]


def _apptainer(spec: ContainerSpec) -> ContainerScript:
    # Values go through APPTAINERENV_* variables: `--env K=V` splits values on commas.
    assignments = [f"APPTAINERENV_{key}={_q(value)}" for key, value in _env(spec).items()]
    argv = ["apptainer", "exec", "--containall", "--cleanenv", "--pwd", spec.workdir]
    for mount in spec.mounts:
        argv += ["--bind", f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")]
    if spec.gpus:
        argv.append("--nv")
    argv += [spec.sif, *spec.command]
    run = " ".join([*assignments, *(_q(a) for a in argv)])
    return ContainerScript(": # apptainer mounts the SIF itself", run, ": # nothing to undo")
