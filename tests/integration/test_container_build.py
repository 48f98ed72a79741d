"""Real tools: docker-save archive -> SIF (skopeo, umoci, mksquashfs, siftool), then the
SIF run by bubblewrap over squashfuse with the job mounts, exactly as a job script does.

Needs no Slurm. Fails (does not skip) when a tool is missing: CI must have them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from containers.archive import ImageArchiveError, check_layers, read_archive
from containers.build import (
    SifImage,
    build_sif_from_archive,
    build_sif_from_registry,
    inspect_registry_image,
    sif_partition,
)
from containers.runtime import (
    ContainerSpec,
    Mount,
    container_script,
    write_env_file,
)
from containers.sif import SifFormatError
from gateway.common.errors import ContainerToolError
from tests.support.images import Entry, busybox_rootfs, make_archive
from tests.support.registry import local_registry

pytestmark = pytest.mark.container

TOOLS = ("skopeo", "umoci", "mksquashfs", "siftool", "squashfuse", "fusermount3", "bwrap")
HOSTILE = "it's \"q\" $(echo x) `y` new\nline"
IMAGE_ENV = {"PATH": "/bin", "GREETING": "hello from the image", "TRICKY": "a b'c $(x)"}
SHM_BYTES = 64 << 20
LAYOUTS = [("docker-legacy", True), ("docker-oci", True), ("docker-oci", False)]


@pytest.fixture(scope="module", autouse=True)
def tools_present():
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing or not Path("/bin/busybox").exists():
        pytest.fail(f"missing container tools: {missing or ['busybox-static']} "
                    "(scripts/install-deps.sh installs them)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.fail("/dev/fuse is not usable by this user: squashfuse cannot mount")


def two_layers(base: Path) -> list:
    """A busybox base layer and a layer that whites out a file and makes a dir opaque."""
    lower = busybox_rootfs(base / "lower")
    (lower / "etc" / "removed.txt").write_text("must disappear\n")
    (lower / "etc" / "kept.txt").write_text("still here\n")
    (lower / "opt" / "dir").mkdir(parents=True)
    for name in ("a", "b"):
        (lower / "opt" / "dir" / name).write_text(f"{name}\n")
    upper = [Entry("etc/removed.txt", whiteout=True), Entry("opt/dir", whiteout="opaque"),
             Entry("opt/dir/c", "c\n"), Entry("usr/local/bin/greet", "#!/bin/sh\necho hi\n",
                                                0o755)]
    return [lower, upper]


@pytest.fixture(scope="module")
def layers(tmp_path_factory) -> list:
    return two_layers(tmp_path_factory.mktemp("layers"))


def build(tmp: Path, layers: list, layout: str = "docker-legacy", manifest_json: bool = True,
          name: str = "img", builder: str = "auto") -> tuple[str, SifImage, list[str]]:
    archive_path = make_archive(tmp / f"{name}.tar", layers, layout=layout, env=IMAGE_ENV,
                                workdir="/code", cmd=["sh"], manifest_json=manifest_json)
    archive = read_archive(archive_path)
    check_layers(archive)
    steps: list[str] = []
    sif = build_sif_from_archive(archive, tmp / "images" / f"{name}.sif", tmp / f"work-{name}",
                                 steps.append, builder=builder)
    return archive.config_digest, sif, steps


@pytest.fixture(scope="module")
def built(tmp_path_factory, layers) -> SifImage:
    return build(tmp_path_factory.mktemp("built"), layers)[1]


STEPS = {"stream": ["check", "squash", "sif"], "unpack": ["copy", "unpack", "squash", "sif"]}


@pytest.mark.parametrize("builder", sorted(STEPS))
@pytest.mark.parametrize("layout,manifest_json", LAYOUTS)
def test_build_sif_in_both_layouts(tmp_path, layers, built, layout, manifest_json, builder):
    started = time.perf_counter()
    digest, sif, steps = build(tmp_path, layers, layout, manifest_json, builder=builder)
    elapsed = time.perf_counter() - started
    print(f"\n{layout} (manifest.json: {manifest_json}, {builder}): SIF built in "
          f"{elapsed:.2f} s, {sif.size_bytes} bytes")
    assert steps == STEPS[builder]
    assert sif.path.is_file() and sif.size_bytes == sif.path.stat().st_size
    assert sif_partition(sif.path) == (sif.partition_offset, sif.partition_size)
    listing = subprocess.run(["siftool", "list", str(sif.path)], capture_output=True, text=True,
                             check=True).stdout
    assert f"|{sif.partition_offset}-{sif.partition_offset + sif.partition_size}" in listing
    assert "Squashfs/*System/amd64" in listing and "JSON.Generic" in listing
    assert digest == read_archive(tmp_path / "img.tar").config_digest
    assert digest == build(tmp_path, layers, name="again")[0]  # same content, same digest
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["again.sif", "img.sif"]
    assert not (tmp_path / "work-img").exists()


def run_script(tmp: Path, spec: ContainerSpec, runtime: str = "bwrap",
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Setup, run and teardown in one bash script, as the job template uses them, with the
    env file the login node writes."""
    script = container_script(spec, runtime)
    Path(spec.env_file).unlink(missing_ok=True)
    write_env_file(spec, runtime)
    path = tmp / "job.sh"
    # As templates/sbatch/base.sh.j2: teardown from the EXIT trap (here twice: it must be
    # repeatable), also after a set-up that failed half-way.
    path.write_text("#!/bin/bash\nset -uo pipefail\ngw_teardown() {\n:\n" + script.teardown
                    + "\n}\ntrap 'rc=$?; gw_teardown; gw_teardown; exit $rc' EXIT\nset -e\n"
                    + script.setup + "\nset +e\n" + script.run + "\n")
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)


def job_dirs(tmp: Path) -> dict[str, Path]:
    dirs = {name: tmp / name for name in ("code", "dataset", "model")}
    for path in dirs.values():
        path.mkdir()
    (dirs["dataset"] / "train.txt").write_text("data\n")
    (dirs["code"] / "main.sh").write_text("echo running main.sh\n")
    return dirs


def spec_for(sif: SifImage, dirs: dict[str, Path], scratch: Path, command: tuple[str, ...],
             **changes) -> ContainerSpec:
    mounts = (Mount(str(dirs["code"]), "/code"), Mount(str(dirs["dataset"]), "/dataset", True),
              Mount(str(dirs["model"]), "/model"))
    scratch.mkdir(exist_ok=True)
    values = {"sif": str(sif.path), "partition_offset": sif.partition_offset,
              "scratch_parent": str(scratch), "env_file": str(scratch.parent / "container.env"),
              "mounts": mounts, "workdir": "/code",
              "env": (*IMAGE_ENV.items(), ("GREETING", "overridden by the job"),
                      ("JOB_VALUE", HOSTILE)),
              "command": command, "shm_bytes": SHM_BYTES}
    values.update(changes)
    return ContainerSpec(**values)


INSIDE = r"""
set -u
out=/model
printf '%s' "$1" > $out/arg
env > $out/env
pwd > $out/pwd
if touch /dataset/x 2>/dev/null; then echo yes; else echo no; fi > $out/dataset_writable
echo edited > /code/edited.txt
cat /dataset/train.txt > $out/dataset_read
ls /opt/dir > $out/opt_dir
if [ -e /etc/removed.txt ]; then echo present; else echo absent; fi > $out/removed
cat /etc/kept.txt > $out/kept
df -k /dev/shm | tail -1 > $out/shm_df
if dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>/dev/null; then echo fits
else echo full; fi > $out/shm_fill
id -un > $out/user
ls /proc | grep -c '^[0-9]' > $out/pids
sh /code/main.sh > $out/main
exit 7
"""


def test_bwrap_runs_the_sif_with_the_job_mounts(tmp_path, built):
    dirs = job_dirs(tmp_path)
    scratch = tmp_path / "scratch"
    spec = spec_for(built, dirs, scratch, ("sh", "-c", INSIDE, "sh", HOSTILE))
    proc = run_script(tmp_path, spec, env={"GW_HOST_SECRET": "must not leak"})
    assert proc.returncode == 7, proc.stderr
    model = dirs["model"]
    read = {p.name: p.read_text() for p in model.iterdir()}
    assert read["arg"] == HOSTILE
    env = dict(line.split("=", 1) for line in read["env"].splitlines() if "=" in line)
    assert env["TRICKY"] == IMAGE_ENV["TRICKY"] and env["GREETING"] == "overridden by the job"
    assert env["PATH"] == "/bin" and env["HOME"] == "/tmp"
    assert "GW_HOST_SECRET" not in read["env"] and "JOB_VALUE" in env
    assert read["pwd"] == "/code\n"
    assert read["dataset_writable"] == "no\n" and read["dataset_read"] == "data\n"
    assert not (dirs["dataset"] / "x").exists()
    assert (dirs["code"] / "edited.txt").read_text() == "edited\n"
    assert read["opt_dir"] == "c\n" and read["removed"] == "absent\n"
    assert read["kept"] == "still here\n"
    assert read["shm_df"].split()[1] == str(SHM_BYTES // 1024) and read["shm_fill"] == "full\n"
    assert read["user"].strip() == subprocess.run(["id", "-un"], capture_output=True,
                                                  text=True, check=True).stdout.strip()
    assert int(read["pids"]) < 10  # its own pid namespace
    assert read["main"] == "running main.sh\n"
    assert_torn_down(scratch)


def assert_torn_down(scratch: Path) -> None:
    """Nothing mounted below the scratch parent, and nothing left in it."""
    mounts = Path("/proc/mounts").read_text()
    assert str(scratch) not in mounts
    assert list(scratch.iterdir()) == []


def test_exit_status_and_teardown_after_a_failing_command(tmp_path, built):
    dirs = job_dirs(tmp_path)
    scratch = tmp_path / "scratch"
    proc = run_script(tmp_path, spec_for(built, dirs, scratch, ("no-such-program",)))
    assert proc.returncode != 0 and "no-such-program" in proc.stderr
    assert_torn_down(scratch)
    proc = run_script(tmp_path, spec_for(built, dirs, scratch, ("true",), shm_bytes=None))
    assert proc.returncode == 0, proc.stderr
    assert_torn_down(scratch)


def test_setup_failure_leaves_nothing(tmp_path, built):
    dirs = job_dirs(tmp_path)
    scratch = tmp_path / "scratch"
    broken = SifImage(tmp_path / "missing.sif", built.partition_offset, 0, 0)
    proc = run_script(tmp_path, spec_for(broken, dirs, scratch, ("true",)))
    assert proc.returncode != 0
    script = container_script(spec_for(broken, dirs, scratch, ("true",)), "bwrap")
    subprocess.run(["bash", "-c", script.teardown], check=True)
    assert_torn_down(scratch)


# -- failed builds leave nothing ----------------------------------------------------------

def leftovers(directory: Path) -> list[str]:
    """Everything in ``directory`` (hidden temp files included); [] when it does not exist."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text("#!/bin/sh\n" + body)
    (bin_dir / name).chmod(0o755)


@pytest.mark.parametrize("builder,tool,body", [
    ("unpack", "mksquashfs", 'echo half > "$2"; echo "mksquashfs: disk full" >&2; exit 1\n'),
    ("unpack", "siftool", 'if [ "$1" = new ]; then echo half > "$2"; exit 0; fi\n'
                          'echo "siftool: write error" >&2; exit 1\n'),
    ("stream", "tar2sqfs", 'eval out=\\${$#}; head -c 1000 > "$out"\n'
                           'echo "tar2sqfs: disk full" >&2; exit 1\n'),
    ("stream", "tar2sqfs", 'echo "tar2sqfs: out of memory" >&2; exit 1\n'),  # reads nothing
    ("stream", "tar2sqfs", 'eval out=\\${$#}; cat > "$out"; exit 0\n'),  # no SquashFS at all
])
def test_failed_build_leaves_no_temp_files(tmp_path, layers, monkeypatch, builder, tool, body):
    archive = read_archive(make_archive(tmp_path / "img.tar", layers))
    fake_tool(tmp_path / "bin", tool, body)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    images = tmp_path / "images"
    with pytest.raises((ContainerToolError, SifFormatError), match=tool if "exit 1" in body
                       else "not a SquashFS"):
        build_sif_from_archive(archive, images / "x.sif", tmp_path / "work", builder=builder)
    assert leftovers(images) == []
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("builder", sorted(STEPS))
def test_image_with_a_symlinked_mount_point_is_refused(tmp_path, layers, builder):
    hostile = [*layers, [Entry("code", symlink="/etc")]]
    archive = read_archive(make_archive(tmp_path / "img.tar", hostile))
    check_layers(archive)  # a symlink to an absolute path is a normal layer entry ...
    with pytest.raises(ImageArchiveError, match="/code"):  # ... but not as a mount point
        build_sif_from_archive(archive, tmp_path / "images" / "x.sif", tmp_path / "work",
                               builder=builder)
    assert leftovers(tmp_path / "images") == []
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("layout,manifest_json,transport", [
    ("docker-legacy", True, "docker-archive"), ("docker-oci", False, "oci-archive")])
def test_apptainer_on_path_does_the_build(tmp_path, layers, built, monkeypatch, layout,
                                          manifest_json, transport):
    """With `apptainer` on PATH the build is `apptainer build` (a stand-in records it)."""
    record = tmp_path / "argv"
    fake_tool(tmp_path / "bin", "apptainer",
              f'printf "%s\\n" "$@" "TMPDIR=$APPTAINER_TMPDIR" > {record}\n'
              f'cp {built.path} "$4"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    archive = read_archive(make_archive(tmp_path / "img.tar", layers, layout=layout,
                                        manifest_json=manifest_json))
    steps: list[str] = []
    sif = build_sif_from_archive(archive, tmp_path / "images" / "x.sif", tmp_path / "work",
                                 steps.append)
    argv = record.read_text().splitlines()
    assert argv[:3] == ["build", "--force", "--disable-cache"] and steps == ["build"]
    assert argv[3].startswith(str(tmp_path / "images" / ".x.sif."))
    assert argv[4] == f"{transport}:{tmp_path / 'work' / 'image.tar'}"
    assert argv[5] == f"TMPDIR={tmp_path / 'work' / 'apptainer-tmp'}"
    assert (sif.partition_offset, sif.partition_size) == (built.partition_offset,
                                                          built.partition_size)
    assert leftovers(tmp_path / "images") == ["x.sif"] and not (tmp_path / "work").exists()
    record.unlink()
    steps.clear()
    build_sif_from_archive(archive, tmp_path / "images" / "y.sif", tmp_path / "work",
                           steps.append, builder="tools")  # the SIF bubblewrap can run
    assert not record.exists() and steps == STEPS["stream"]


# -- a real registry -------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A docker-registry serving on 127.0.0.1, stopped after the module."""
    with local_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


def test_registry_image_keeps_its_digest_and_runs(tmp_path, layers, registry):
    archive = read_archive(make_archive(tmp_path / "img.tar", layers, env=IMAGE_ENV))
    reference = f"{registry}/team/busybox:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    f"docker-archive:{archive.path}", f"docker://{reference}"], check=True)
    digest, config = inspect_registry_image(reference, tls_verify=False)
    assert digest == archive.config_digest and config["config"]["Env"][1].startswith("GREETING")
    pulled_digest, pulled_config, sif = build_sif_from_registry(
        reference, tmp_path / "images" / "pulled.sif", tmp_path / "work", tls_verify=False,
        expected_digest=digest)
    assert pulled_digest == digest and pulled_config == config
    dirs = job_dirs(tmp_path)
    proc = run_script(tmp_path, spec_for(sif, dirs, tmp_path / "scratch",
                                         ("sh", "-c", "ls /opt/dir; echo $GREETING")))
    assert proc.returncode == 0 and proc.stdout == "c\noverridden by the job\n", proc.stderr
    with pytest.raises(ImageArchiveError, match="is now sha256:"):
        build_sif_from_registry(reference, tmp_path / "images" / "x.sif", tmp_path / "work2",
                                tls_verify=False, expected_digest="sha256:" + "0" * 64)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["pulled.sif"]


def test_registry_errors_name_the_tool(registry, tmp_path):
    with pytest.raises(ContainerToolError, match="skopeo"):
        inspect_registry_image(f"{registry}/nope:1", tls_verify=False)
    with pytest.raises(ContainerToolError, match="manifest unknown"):
        build_sif_from_registry(f"{registry}/nope:1", tmp_path / "x.sif", tmp_path / "work",
                                tls_verify=False)
    assert not (tmp_path / "work").exists() and not (tmp_path / "x.sif").exists()


def test_stream_build_where_the_file_system_cannot_insert_a_range(layers, built):
    """tmpfs has no FALLOC_FL_INSERT_RANGE: the SquashFS is then wrapped by siftool (a
    copy), and the SIF is the same."""
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        _digest, sif, steps = build(Path(tmp), layers, builder="stream")
        assert steps == STEPS["stream"]
        assert sif_partition(sif.path) == (sif.partition_offset, sif.partition_size)
        assert (sif.partition_offset, sif.partition_size) == (built.partition_offset,
                                                              built.partition_size)
        assert sorted(p.name for p in (Path(tmp) / "images").iterdir()) == ["img.sif"]
