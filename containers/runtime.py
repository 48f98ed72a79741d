"""Container command lines: the one place that builds them, for Apptainer and bubblewrap.

Both runtimes get the same :class:`ContainerSpec` (one mount spec). The result is shell
text for a job script (setup, one run line, teardown); every value goes through
:func:`shlex.quote` and is validated first, so no user value can change the script.

bubblewrap runs the SIF's squashfs partition, mounted with squashfuse at its byte offset,
read-only, with the job's bind mounts on top. It cannot create bind targets in a read-only
image, so the conversion (:mod:`containers.rootfs`) creates them. GPUs: the node's device
nodes and driver libraries are bound in, as Apptainer's ``--nv`` does.

Secrets stay off command lines: the container's environment (``--env`` values among it)
is written by the login node to a 0600 file, read by ``bwrap --args 3`` from a descriptor
(NUL-separated ``--setenv`` arguments, with ``--clearenv`` before them) or by
``apptainer --env-file``; no value appears in any process's argv (``ps``). A descriptor
rather than sourcing the file into the job shell: bwrap's ``--clearenv`` then gives the
container exactly the file's environment (nothing of the job shell's leaks in, no
readonly or special shell variable gets in the way), bash only redirects the file (the
values pass through no shell parsing at all), and bwrap closes the descriptor before the
command runs. Node-dependent values that are no secrets (``CUDA_VISIBLE_DEVICES``, a
notebook's port) are ``--setenv`` words on the command line.

The node's scratch directory is made by ``mktemp -d``: unpredictable and exclusive, so no
other user can create it first. The teardown removes only a directory of that shape.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
from dataclasses import dataclass

from gateway.common.errors import InvalidInput
from gateway.common.quoting import shell_assignments, shell_word

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

    ``env`` is ordered: the image's Env first, then the job's (a later key wins). It never
    reaches a command line: the login node writes it to ``env_file`` (0600, see
    :func:`write_env_file`) and the runtime reads it from there. ``scratch_parent`` is a
    node-local directory in which each run makes its own private scratch directory with
    ``mktemp -d`` (the image is mounted below it). ``shm_bytes`` gives the container a
    private /dev/shm of that size.
    """

    sif: str
    partition_offset: int | None   # None: read from the SIF on the node (built meanwhile)
    scratch_parent: str
    mounts: tuple[Mount, ...]
    workdir: str
    env: tuple[tuple[str, str], ...]
    command: tuple[str, ...]
    env_file: str
    gpus: int = 0
    shm_bytes: int | None = None
    # Values only the node knows (a notebook's port and address): NAME and the name of a
    # shell variable the set-up assigns. Never secrets: they travel on the command line.
    node_env: tuple[tuple[str, str], ...] = ()
    # Prefixes of the node's variables that pass into the container as they are (a site's
    # interconnect settings: NCCL_, UCX_, ...), read when the container starts.
    passed_prefixes: tuple[str, ...] = ()


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
    signal: str = ""    # defines gw_signal_command SIGNAL PID (see SIGNAL_COMMAND)


# How a job script signals the command in its container, given the PID of the background
# shell that runs the container (a resumable job's "time to save", docs/resume.md).
# Apptainer forwards signals to the container's process; bubblewrap does not (its outer
# process dies of the signal and --die-with-parent kills the rest): below a bwrap, the
# signal goes to the first process that is not bwrap, the container's own command. Never
# to every process: a data loader's workers would die of a SIGUSR1 they do not catch.
SIGNAL_COMMAND = r"""gw_first_child() {
    { cat /proc/"$1"/task/*/children 2>/dev/null || pgrep -P "$1"; } | tr ' ' '\n' |
        awk 'NF { print; exit }'
}
gw_signal_command() {
    local signal=$1 pid=$2 comm
    # $2 is the shell running the container line: the container is its child.
    read -r comm < /proc/"$pid"/comm 2>/dev/null || return 0
    if [ "$comm" = bash ]; then pid=$(gw_first_child "$pid"); fi
    while [ -n "$pid" ] && read -r comm < /proc/"$pid"/comm 2>/dev/null \
            && [ "$comm" = bwrap ]; do
        pid=$(gw_first_child "$pid")
    done
    if [ -n "$pid" ]; then kill -s "$signal" "$pid" 2>/dev/null; fi
}"""


def _offset_setup(spec: ContainerSpec) -> list[str]:
    """``gw_sif_offset``: the squashfs partition's offset in the SIF, as recorded, or read
    from the SIF on the node by the gateway's Python when the job was submitted while
    its image was still being built (the same Python the build job ran)."""
    import sys

    if spec.partition_offset is not None:
        return [f"gw_sif_offset={int(spec.partition_offset)}"]
    return [f"gw_sif_offset=$({_q(sys.executable)} -m containers.sif offset {_q(spec.sif)})"]


class Shell(str):
    """A word that is already shell text (a variable expansion), not a value to quote."""


# The job's scratch directory: made by `mktemp -d` in the set-up, unpredictable and
# exclusive, so another user cannot create it first.
SCRATCH = Shell('"$gw_scratch"')
SCRATCH_RANDOM = 10  # mktemp's random characters: gw-job.XXXXXXXXXX


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
    for path, what in [(spec.sif, "image"), (spec.scratch_parent, "scratch directory"),
                       (spec.workdir, "working directory"), (spec.env_file, "env file")]:
        _check_path(path, what, runtime)
    for mount in spec.mounts:
        _check_path(mount.source, "mount source", runtime)
        _check_path(mount.target, "mount target", runtime)
        if posixpath.normpath(mount.target) == "/":
            raise InvalidInput(f"cannot mount {mount.source} over the container's root")
    for key, variable in spec.node_env:
        if not ENV_KEY.fullmatch(key) or not ENV_KEY.fullmatch(variable):
            raise InvalidInput(f"invalid node environment {key}={variable}")
    if int(spec.partition_offset or 0) < 0 or int(spec.gpus) < 0 or (spec.shm_bytes or 0) < 0:
        raise InvalidInput("partition offset, GPU count and shm size must not be negative")


def _check_text(value: str, what: str) -> None:
    if "\0" in value:
        raise InvalidInput(f"{what} contains a NUL byte")


def _check_path(path: str, what: str, runtime: str) -> None:
    _check_text(path, f"the {what}")
    if isinstance(path, Shell):
        return  # gw's own shell text naming a path known on the node (a sweep task's)
    if not path.startswith("/"):
        raise InvalidInput(f"the {what} {path!r} must be an absolute path")
    if runtime == "apptainer" and ("," in path or ":" in path):
        raise InvalidInput(f"the {what} {path!r} contains ',' or ':', which Apptainer's "
                           "--bind cannot carry")


def _q(value: object) -> str:
    return value if isinstance(value, Shell) else shell_word(value)


def _in_scratch(rel: str) -> Shell:
    return Shell(f"{SCRATCH}/{shell_word(rel)}")


def _line(words: list[str]) -> str:
    return " ".join(_q(w) for w in words)


def env_file_content(spec: ContainerSpec, runtime: str) -> bytes:
    """What :func:`write_env_file` writes for ``runtime``: for bubblewrap, NUL-separated
    ``--setenv NAME VALUE`` arguments that ``bwrap --args FD`` reads from a descriptor; for
    Apptainer, ``NAME='value'`` lines for ``--env-file``."""
    check_spec(spec, runtime)
    if runtime == "bwrap":
        words = [w for key, value in _bwrap_env(spec).items() for w in ("--setenv", key, value)]
        return b"".join(w.encode() + b"\0" for w in words)
    env = container_env(spec)
    env.pop("HOME")  # Apptainer refuses to set HOME this way; --containall makes one
    return shell_assignments(env).encode()


def write_env_file(spec: ContainerSpec, runtime: str) -> None:
    """Write the container's environment to ``spec.env_file``: created exclusively, mode
    0600 whatever the umask, never through a link. The values (``--env`` secrets) appear
    in no command line, on the login node or the compute node."""
    content = env_file_content(spec, runtime)
    fd = os.open(spec.env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        # Never leave a half-written environment behind (a full disk, an interrupt): the
        # file is ours (O_EXCL made it), so removing it cannot remove someone else's.
        with contextlib.suppress(OSError):
            os.unlink(spec.env_file)
        raise


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
    rootfs = _in_scratch("rootfs")
    prefix = spec.scratch_parent + "/gw-job."
    setup = [
        f"gw_scratch=$(mktemp -d {_q(prefix + 'X' * SCRATCH_RANDOM)})",
        f"mkdir {rootfs}",
        # squashfuse_ll (what Apptainer uses) keeps the kernel's caches: a warm
        # `import numpy` took 0.23 s with it and 0.45 s with squashfuse (docs/containers.md).
        "gw_squashfuse=$(command -v squashfuse_ll || command -v squashfuse) || "
        "{ echo 'gw: squashfuse is not installed on this node' >&2; false; }",
        *_offset_setup(spec),
        f'"$gw_squashfuse" -o offset="$gw_sif_offset" {_q(spec.sif)} {rootfs}',
        *_reaper(rootfs),
        *_identity_files(),
    ]
    argv: list[str] = ["bwrap", "--ro-bind", rootfs, "/", "--dev", "/dev", "--proc", "/proc",
                       "--tmpfs", "/tmp"]
    if spec.shm_bytes:
        argv += ["--size", str(int(spec.shm_bytes)), "--tmpfs", "/dev/shm"]
    argv += ["--ro-bind", _in_scratch("passwd"), "/etc/passwd",
             "--ro-bind", _in_scratch("group"), "/etc/group",
             "--ro-bind-try", "/etc/hosts", "/etc/hosts",
             "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    for mount in spec.mounts:
        argv += ["--ro-bind" if mount.read_only else "--bind", mount.source, mount.target]
    # The environment comes from the 0600 env file on descriptor 3, never from argv.
    argv += ["--chdir", spec.workdir, "--clearenv", "--args", "3"]
    for key, variable in spec.node_env:
        argv += ["--setenv", key, Shell(f'"${variable}"')]
    argv += ["--unshare-pid", "--die-with-parent", "--new-session"]
    run = _line(argv)
    if spec.passed_prefixes:
        setup += _passed_env_shell(spec.passed_prefixes, '--setenv "$gw_var" "${!gw_var}"')
        run += ' "${gw_passed[@]}"'
    if spec.gpus:
        setup += _gpu_binds_shell()
        run += ' "${gw_gpu_args[@]}"'
    run += " -- " + _line(list(spec.command)) + f" 3< {_q(spec.env_file)}"
    # Only a directory named as mktemp names ours: before the set-up ran, gw_scratch may
    # still hold a value from the submitter's environment (sbatch exports it by default).
    teardown = [
        f'case "${{gw_scratch:-}}" in {_q(prefix)}{"?" * SCRATCH_RANDOM})',
        f"    fusermount3 -u {rootfs} 2>/dev/null || fusermount3 -uz {rootfs} 2>/dev/null "
        f"|| umount {rootfs} 2>/dev/null || true",
        f"    rm -f {_in_scratch('passwd')} {_in_scratch('group')}",
        f"    rmdir {rootfs} 2>/dev/null || true",
        f"    rmdir {SCRATCH} 2>/dev/null || true",
        "esac",
    ]
    return ContainerScript("\n".join(setup), run, "\n".join(teardown), SIGNAL_COMMAND)


# squashfuse daemonizes, so Slurm's kill of a job (proctrack/linuxproc follows parentage)
# never reaches it, and a script killed outright (SIGKILL: over its memory, a rank of a
# failed gang past KillWait) runs no EXIT trap: its image would stay mounted, its daemon
# running, for good. The reaper leaves the job's process tree at once (a subshell that
# forks it and exits) and unmounts the image when the script is gone, however it ended.
REAPER_POLL_SECONDS = 2


def _reaper(rootfs: Shell) -> list[str]:
    """The set-up line that starts the image's reaper (see REAPER_POLL_SECONDS)."""
    body = ('while kill -0 "$1" 2>/dev/null; do sleep ' + str(REAPER_POLL_SECONDS)
            + '; done; fusermount3 -u "$2" 2>/dev/null || fusermount3 -uz "$2" 2>/dev/null;'
            ' rm -f "$3/passwd" "$3/group"; rmdir "$2" "$3" 2>/dev/null')
    return [f"( setsid sh -c {_q(body)} gw-reaper $$ {rootfs} {SCRATCH} "
            "< /dev/null > /dev/null 2>&1 & )"]


def _passed_env_shell(prefixes: tuple[str, ...], words: str) -> list[str]:
    """Shell collecting into ``gw_passed`` the words (``words``, over ``$gw_var``) that
    pass each exported variable named with one of ``prefixes`` into the container."""
    for prefix in prefixes:
        if not prefix.replace("_", "").isalnum() or not prefix.isupper():
            raise ValueError(f"not a variable prefix: {prefix!r}")
    patterns = "|".join(f"{prefix}*" for prefix in prefixes)
    return ["# The node's interconnect settings pass into the container as they are.",
            "gw_passed=()",
            "for gw_var in $(compgen -e); do",
            f'    case $gw_var in {patterns}) gw_passed+=({words}) ;; esac',
            "done"]


def _identity_files() -> list[str]:
    """Shell writing the image's passwd/group plus this user's entries (as Apptainer does).

    Without them, programs that look the user up (``getpass.getuser()``, ``whoami``)
    fail. The image's files are read only when neither they nor /etc are symlinks, so an
    image cannot make the host read a host file.
    """
    lines = []
    rootfs_etc = _in_scratch("rootfs/etc")
    for name, lookup in (("passwd", '"$(id -u)"'), ("group", '"$(id -g)"')):
        image_file = _in_scratch(f"rootfs/etc/{name}")
        lines.append(f"{{ if [ ! -L {rootfs_etc} ] && [ ! -L {image_file} ] && "
                     f"[ -f {image_file} ]; then cat {image_file}; fi; "
                     f"getent {name} {lookup} || true; }} > {_in_scratch(name)}")
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
    # the container; the job's environment comes from the 0600 file (--env-file).
    setup = [": # apptainer mounts the SIF itself"]
    prefix = 'env -i PATH="$PATH" HOME="${HOME:-/tmp}"'
    for key, variable in spec.node_env:
        prefix += f' APPTAINERENV_{key}="${variable}"'
    if spec.gpus:
        setup = ["gw_gpu_env=()",
                 'if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then',
                 '    gw_gpu_env=("APPTAINERENV_CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")',
                 "fi"]
        prefix += ' "${gw_gpu_env[@]}"'
    if spec.passed_prefixes:
        setup += _passed_env_shell(spec.passed_prefixes, '"APPTAINERENV_$gw_var=${!gw_var}"')
        prefix += ' "${gw_passed[@]}"'
    words = ["apptainer", "exec", "--containall", "--cleanenv", "--env-file", spec.env_file,
             "--pwd", spec.workdir]
    for mount in spec.mounts:
        suffix = ":ro" if mount.read_only else ""
        if isinstance(mount.source, Shell):
            words += ["--bind", Shell(f"{mount.source}:{shell_word(mount.target + suffix)}")]
        else:
            words += ["--bind", f"{mount.source}:{mount.target}{suffix}"]
    if spec.gpus:
        words.append("--nv")
    words += [spec.sif, *spec.command]
    return ContainerScript("\n".join(setup), f"{prefix} {_line(words)}", ": # nothing to undo",
                           SIGNAL_COMMAND)
