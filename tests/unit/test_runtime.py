"""Container command lines for bubblewrap and Apptainer, parsed back by a real bash."""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from containers import runtime
from containers.runtime import (
    ContainerScript,
    ContainerSpec,
    Mount,
    container_script,
    detect_runtime,
)
from gateway.common.errors import InvalidInput

HOSTILE = "it's \"q\" $(echo x) `y` \nnew\nline  spaces; rm -rf / & \\ *"
IMAGE_ENV = (("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("MSG", "from image"))


ENV_FILE = "/tmp/gw-test-env-42"


def spec(**changes) -> ContainerSpec:
    base = {"sif": "/shared/gw/images/x y.sif", "partition_offset": 32768,
            "scratch_parent": "/tmp", "env_file": ENV_FILE,
            "mounts": (Mount("/jobs/42/code", "/code"), Mount("/data/coco v1", "/dataset", True),
                       Mount("/jobs/42/model", "/model")),
            "workdir": "/code", "env": (*IMAGE_ENV, ("MSG", HOSTILE), ("EMPTY", "")),
            "command": ("python", "-c", HOSTILE, "--lr=0.1")}
    base.update(changes)
    return ContainerSpec(**base)


def argv_of(script: ContainerScript, program: str, setup: str = "") -> list[str]:
    """The argv bash really passes to ``program`` when it runs ``script.run`` (with the
    scratch directory the set-up would have made, and an env file to redirect from)."""
    Path(ENV_FILE).write_bytes(b"")
    shim = f"{program}() {{ printf '%s\\0' \"$@\"; }}\ngw_scratch=/tmp/gw-job.SCRATCH\n"
    try:
        out = subprocess.run(["bash", "-c", shim + setup + script.run], capture_output=True,
                             check=True).stdout.decode()
    finally:
        Path(ENV_FILE).unlink(missing_ok=True)
    return out.split("\0")[:-1]


def bwrap_env(content: bytes) -> list[tuple[str, str]]:
    """The --setenv pairs bwrap reads from the env file (``--args 3``)."""
    words = content.decode().split("\0")[:-1]
    assert words[0::3] == ["--setenv"] * (len(words) // 3) and len(words) % 3 == 0
    return list(zip(words[1::3], words[2::3], strict=True))


def pairs(argv: list[str], flag: str) -> list[tuple[str, ...]]:
    """The values after each ``flag`` (two for --setenv and binds, one otherwise)."""
    width = 1 if flag in ("--chdir", "--size", "--tmpfs", "--pwd") else 2
    return [tuple(argv[i + 1:i + 1 + width]) for i, a in enumerate(argv[:argv.index("--")])
            if a == flag]


# -- bubblewrap ---------------------------------------------------------------------------

def test_bwrap_run_line_reaches_bwrap_literally():
    argv = argv_of(container_script(spec(), "bwrap"), "bwrap")
    assert argv[:4] == ["--ro-bind", "/tmp/gw-job.SCRATCH/rootfs", "/", "--dev"]
    split = argv.index("--")
    assert argv[split + 1:] == ["python", "-c", HOSTILE, "--lr=0.1"]
    assert pairs(argv, "--bind") == [("/jobs/42/code", "/code"), ("/jobs/42/model", "/model")]
    assert ("/data/coco v1", "/dataset") in pairs(argv, "--ro-bind")
    assert pairs(argv, "--chdir") == [("/code",)]
    assert pairs(argv, "--setenv") == []  # no value on the command line
    assert argv[argv.index("--clearenv") + 1:argv.index("--clearenv") + 3] == ["--args", "3"]
    env = bwrap_env(runtime.env_file_content(spec(), "bwrap"))
    assert env == [("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("MSG", HOSTILE),
                   ("EMPTY", ""), ("HOME", "/tmp")]
    for flag in ("--unshare-pid", "--die-with-parent", "--new-session"):
        assert flag in argv[:split]


def test_bwrap_bind_order_mounts_after_root_and_dev():
    argv = argv_of(container_script(spec(shm_bytes=1 << 30), "bwrap"), "bwrap")
    order = [argv.index(x) for x in ("/", "--dev", "--proc", "/dev/shm", "/code", "--chdir")]
    assert order == sorted(order)


def test_bwrap_shm_size_immediately_precedes_its_tmpfs():
    argv = argv_of(container_script(spec(shm_bytes=8 << 30), "bwrap"), "bwrap")
    at = argv.index("--size")
    assert argv[at:at + 4] == ["--size", str(8 << 30), "--tmpfs", "/dev/shm"]
    assert "--size" not in argv_of(container_script(spec(), "bwrap"), "bwrap")


def test_bwrap_without_gpus_binds_no_devices():
    script = container_script(spec(), "bwrap")
    assert "nvidia" not in script.setup + script.run
    assert "LD_LIBRARY_PATH" not in script.run


def test_bwrap_gpu_setup_collects_devices_and_64bit_driver_libraries(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    libs = tmp_path / "lib"
    libs.mkdir()
    for name in ("libcuda.so.1", "libnvidia-ml.so.1", "libcuda32.so.1"):
        (libs / name).write_text("")
    (fake_bin / "ldconfig").write_text(
        "#!/bin/sh\ncat <<EOF\n"
        "42 libs found in cache\n"
        f"\tlibcuda.so.1 (libc6) => {libs}/libcuda32.so.1\n"
        f"\tlibcuda.so.1 (libc6,x86-64) => {libs}/libcuda.so.1\n"
        f"\tlibnvidia-ml.so.1 (libc6,x86-64) => {libs}/libnvidia-ml.so.1\n"
        f"\tlibnvidia-ml.so.1 (libc6,x86-64) => {libs}/duplicate.so\n"
        "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\nEOF\n")
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\n")
    for tool in ("ldconfig", "nvidia-smi"):
        os.chmod(fake_bin / tool, 0o755)
    script = container_script(spec(gpus=2, env=(*IMAGE_ENV, ("LD_LIBRARY_PATH", "/opt/x"))),
                              "bwrap")
    gpu_part = script.setup[script.setup.index("# GPU"):]
    env = f"export PATH={shlex.quote(str(fake_bin))}:$PATH CUDA_VISIBLE_DEVICES=1,3\n"
    argv = argv_of(script, "bwrap", env + gpu_part + "\n")
    split = argv.index("--")
    gpu_args = argv[argv.index("--new-session") + 1:split]
    assert ("--tmpfs", "/.singularity.d/libs") in itertools.pairwise(gpu_args)
    binds = [tuple(gpu_args[i + 1:i + 3]) for i, a in enumerate(gpu_args) if a == "--ro-bind"]
    assert binds == [(f"{libs}/libcuda.so.1", "/.singularity.d/libs/libcuda.so.1"),
                     (f"{libs}/libnvidia-ml.so.1", "/.singularity.d/libs/libnvidia-ml.so.1"),
                     (f"{fake_bin}/nvidia-smi", "/.singularity.d/bin/nvidia-smi")]
    assert ("--setenv", "CUDA_VISIBLE_DEVICES", "1,3") in zip(gpu_args, gpu_args[1:],
                                                              gpu_args[2:], strict=False)
    for device in Path("/dev").glob("nvidia*"):
        assert str(device) in gpu_args
    env_pairs = bwrap_env(runtime.env_file_content(
        spec(gpus=2, env=(*IMAGE_ENV, ("LD_LIBRARY_PATH", "/opt/x"))), "bwrap"))
    assert ("LD_LIBRARY_PATH", "/.singularity.d/libs:/opt/x") in env_pairs
    assert ("PATH", "/usr/bin:/bin:/.singularity.d/bin") in env_pairs


def test_bwrap_setup_and_teardown_are_quoted_and_repeatable(tmp_path):
    parent = tmp_path / "scr $(touch pwned) 'x'"
    parent.mkdir()
    script = container_script(spec(scratch_parent=str(parent)), "bwrap")
    assert "gw_sif_offset=32768\n" in script.setup
    assert f'-o offset="$gw_sif_offset" {shlex.quote("/shared/gw/images/x y.sif")}' in script.setup
    first = script.setup.splitlines()[0]  # gw_scratch=$(mktemp -d ...)
    made = subprocess.run(["bash", "-ec", f'{first}\nmkdir "$gw_scratch/rootfs"\n'
                           f'echo "$gw_scratch"'], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert Path(made).parent == parent and Path(made).name.startswith("gw-job.")
    for _ in range(2):  # safe twice
        subprocess.run(["bash", "-c", f"gw_scratch={shlex.quote(made)}\n{script.teardown}"],
                       check=True, cwd=tmp_path)
        assert not Path(made).exists()
    subprocess.run(["bash", "-uc", script.teardown], check=True)  # set-up never ran
    assert not (tmp_path / "pwned").exists() and list(parent.iterdir()) == []


def test_bwrap_scratch_is_unpredictable_and_cannot_be_taken_first(tmp_path):
    """Another user may create any guessable name first: mktemp picks a fresh one."""
    script = container_script(spec(scratch_parent=str(tmp_path)), "bwrap")
    first = script.setup.splitlines()[0]
    for name in ("gw-job-42", "gw-job.XXXXXXXXXX", "gw-job"):
        (tmp_path / name).mkdir()
    made = {subprocess.run(["bash", "-ec", f'{first}\necho "$gw_scratch"'],
                           capture_output=True, text=True, check=True).stdout.strip()
            for _ in range(5)}
    assert len(made) == 5
    for path in made:
        assert Path(path).stat().st_mode & 0o777 == 0o700


def test_bwrap_teardown_ignores_a_scratch_path_it_did_not_make(tmp_path):
    """Before the set-up runs, gw_scratch may come from the submitter's environment
    (sbatch exports it): the teardown touches only a directory named as mktemp names ours."""
    parent = tmp_path / "scratch"
    parent.mkdir()
    script = container_script(spec(scratch_parent=str(parent)), "bwrap")
    for planted in (tmp_path / "mine", parent / "gw-job.short", parent / "other.ABCDEFGHIJ"):
        planted.mkdir()
        (planted / "passwd").write_text("keep\n")
        subprocess.run(["bash", "-uc", script.teardown], check=True,
                       env={**os.environ, "gw_scratch": str(planted)})
        assert (planted / "passwd").read_text() == "keep\n"
    ours = parent / "gw-job.ABCDEFGHIJ"
    (ours / "rootfs").mkdir(parents=True)
    (ours / "passwd").write_text("made by the set-up\n")
    subprocess.run(["bash", "-uc", script.teardown], check=True,
                   env={**os.environ, "gw_scratch": str(ours)})
    assert not ours.exists()


def test_env_file_values_round_trip_through_bash(tmp_path):
    """What bwrap reads from descriptor 3 is exactly the values, byte for byte: bash
    redirects the file, a reader prints each NUL-separated word back."""
    target = tmp_path / "container.env"
    runtime.write_env_file(spec(env_file=str(target)), "bwrap")
    out = subprocess.run(["bash", "-c", "while IFS= read -r -d '' w <&3; do printf '%s\\0' "
                          f'"$w"; done 3< {shlex.quote(str(target))}'],
                         capture_output=True, check=True).stdout
    assert bwrap_env(out) == [*IMAGE_ENV[:2], ("MSG", HOSTILE), ("EMPTY", ""),
                              ("HOME", "/tmp")]


def test_env_file_write_failure_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "container.env"

    def disk_full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runtime.os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        runtime.write_env_file(spec(env_file=str(target)), "bwrap")
    assert list(tmp_path.iterdir()) == []


def test_env_file_is_private_exclusive_and_round_trips(tmp_path):
    target = tmp_path / "container.env"
    old = os.umask(0)
    try:
        runtime.write_env_file(spec(env_file=str(target)), "bwrap")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o600
    assert ("MSG", HOSTILE) in bwrap_env(target.read_bytes())
    with pytest.raises(FileExistsError):
        runtime.write_env_file(spec(env_file=str(target)), "bwrap")
    link = tmp_path / "link.env"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        runtime.write_env_file(spec(env_file=str(link)), "bwrap")
    assert not (tmp_path / "elsewhere").exists()


# -- Apptainer ----------------------------------------------------------------------------

def test_apptainer_run_line_reaches_apptainer_literally():
    script = container_script(spec(shm_bytes=1 << 30), "apptainer")
    argv = argv_of(script, "env")
    assert argv[0] == "-i"
    start = argv.index("apptainer")
    assigned = dict(a.split("=", 1) for a in argv[1:start])
    assert set(assigned) == {"PATH", "HOME"}  # no job value on the command line
    content = runtime.env_file_content(spec(), "apptainer").decode()
    sourced = subprocess.run(["bash", "-c", f"set -a\n{content}\nprintf '%s' \"$MSG\""],
                             capture_output=True, text=True, check=True).stdout
    assert sourced == HOSTILE and "HOME=" not in content and "EMPTY=''" in content
    rest = argv[start:]
    assert rest[:8] == ["apptainer", "exec", "--containall", "--cleanenv", "--env-file",
                        ENV_FILE, "--pwd", "/code"]
    binds = [rest[i + 1] for i, a in enumerate(rest) if a == "--bind"]
    assert binds == ["/jobs/42/code:/code", "/data/coco v1:/dataset:ro", "/jobs/42/model:/model"]
    assert rest[-5:] == ["/shared/gw/images/x y.sif", "python", "-c", HOSTILE, "--lr=0.1"]
    assert "--nv" not in rest


def test_apptainer_gpus_add_nv_and_pass_cuda_devices():
    script = container_script(spec(gpus=1), "apptainer")
    argv = argv_of(script, "env", "CUDA_VISIBLE_DEVICES=0,1\n" + script.setup + "\n")
    assert "APPTAINERENV_CUDA_VISIBLE_DEVICES=0,1" in argv[:argv.index("apptainer")]
    assert "--nv" in argv
    unset = argv_of(script, "env", "unset CUDA_VISIBLE_DEVICES\n" + script.setup + "\n")
    assert not any(a.startswith("APPTAINERENV_CUDA") for a in unset)


def test_apptainer_refuses_mount_paths_its_bind_syntax_cannot_carry():
    with pytest.raises(InvalidInput, match="Apptainer's --bind"):
        container_script(spec(mounts=(Mount("/data/a,b", "/dataset"),)), "apptainer")
    container_script(spec(mounts=(Mount("/data/a,b", "/dataset"),)), "bwrap")


# -- validation and detection -------------------------------------------------------------

@pytest.mark.parametrize("changes,message", [
    ({"env": (("BAD KEY", "x"),)}, "invalid environment variable name"),
    ({"env": (("A=B", "x"),)}, "invalid environment variable name"),
    ({"env": (("$(id)", "x"),)}, "invalid environment variable name"),
    ({"env": (("A", "nul\0byte"),)}, "NUL byte"),
    ({"command": ("sh", "a\0b")}, "NUL byte"),
    ({"command": ()}, "needs a command"),
    ({"mounts": (Mount("relative/path", "/code"),)}, "absolute path"),
    ({"mounts": (Mount("/x", "/"),)}, "over the container's root"),
    ({"workdir": "code"}, "absolute path"),
    ({"scratch_parent": "tmp/x"}, "absolute path"),
    ({"env_file": "container.env"}, "absolute path"),
    ({"shm_bytes": -1}, "must not be negative"),
])
@pytest.mark.parametrize("name", ["bwrap", "apptainer"])
def test_unsafe_specs_refused(changes, message, name):
    with pytest.raises(InvalidInput, match=message):
        container_script(spec(**changes), name)


def test_unknown_runtime():
    with pytest.raises(InvalidInput, match="unknown container runtime"):
        container_script(spec(), "docker")
    with pytest.raises(InvalidInput, match="unknown container runtime"):
        detect_runtime("podman")


@pytest.mark.parametrize("installed,preferred,expected", [
    ({"apptainer", "bwrap", "squashfuse"}, "auto", "apptainer"),
    ({"bwrap", "squashfuse"}, "auto", "bwrap"),
    ({"bwrap", "squashfuse_ll"}, "auto", "bwrap"),
    ({"apptainer", "bwrap", "squashfuse"}, "bwrap", "bwrap"),
    ({"apptainer"}, "apptainer", "apptainer"),
])
def test_detect_runtime(monkeypatch, installed, preferred, expected):
    monkeypatch.setattr(runtime.shutil, "which",
                        lambda name: f"/usr/bin/{name}" if name in installed else None)
    assert detect_runtime(preferred) == expected


@pytest.mark.parametrize("installed,preferred,message", [
    (set(), "auto", "no container runtime found"),
    ({"bwrap"}, "auto", "no container runtime found"),
    ({"bwrap", "squashfuse"}, "apptainer", "apptainer is not on PATH"),
    ({"bwrap"}, "bwrap", "needs squashfuse"),
])
def test_detect_runtime_missing(monkeypatch, installed, preferred, message):
    monkeypatch.setattr(runtime.shutil, "which",
                        lambda name: f"/usr/bin/{name}" if name in installed else None)
    with pytest.raises(InvalidInput, match=message):
        detect_runtime(preferred)


@pytest.mark.parametrize("installed,builder,expected", [
    ({"apptainer"}, "auto", True), (set(), "auto", False), ({"apptainer"}, "tools", False),
    ({"apptainer"}, "apptainer", True)])
def test_sif_builder_choice(monkeypatch, installed, builder, expected):
    from containers import build

    monkeypatch.setattr(build.shutil, "which",
                        lambda name: f"/usr/bin/{name}" if name in installed else None)
    assert build.use_apptainer(builder) is expected


def test_sif_builder_refused(monkeypatch):
    from containers import build

    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(InvalidInput, match="apptainer is not on PATH"):
        build.use_apptainer("apptainer")
    with pytest.raises(InvalidInput, match="unknown SIF builder"):
        build.use_apptainer("docker")
