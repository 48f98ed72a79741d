"""`gw`: the hpc-gateway command line.

Thin on purpose: parse, call a service in gateway/, print a table or ``--json``. Heavy
modules are imported inside the commands that need them so `gw --help` stays fast.
Exit status: 0 success, 2 bad usage or invalid input, 1 when Slurm or a tool failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.errors import GatewayError

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON for scripts instead of a table.")


def _gateway():
    from gateway.context import Gateway

    return Gateway()


def _synced():
    """A gateway whose job states are brought up to date first (spool files, Slurm)."""
    from spool.sync import sync_state

    gw = _gateway()
    sync_state(gw)
    return gw


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="gw")
def cli() -> None:
    """hpc-gateway: train models on a Slurm cluster the way a web AI platform does.

    \b
    Images:     gw image import x.tar --name detectron2:v1
    Code:       gw algo push ./detectron2 --name detectron2     (v1, v2, ...)
    Data:       gw data push coco.zip --name coco               (read-only versions)
    Train:      gw job submit --algo detectron2 --image detectron2:v1 --data coco
                    --gpus 1 -- python tools/train_net.py
    Results:    gw job show 1; gw job logs 1 -f; gw model versions detectron2

    Everything lives under GW_HOME (see `gw config`); `gw doctor` checks the set-up.
    """


# ---------------------------------------------------------------------------------- images
@cli.group()
def image() -> None:
    """Container images: `docker save` tarballs or registry images, converted to SIF once."""


def _image_rows(images):
    from gateway.display import human_size

    return [(i.name, i.digest[:19], human_size(i.size_bytes), i.source) for i in images]


@image.command("import")
@click.argument("tarball", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="NAME:TAG to call the image, e.g. detectron2:v1.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
def image_import(tarball: Path, name: str, quiet: bool, as_json: bool) -> None:
    """Import a `docker save` TARBALL (legacy or Docker 25+ layout) as NAME:TAG.

    Layers are checked (no paths leaving the image, no device nodes), applied with their
    whiteouts, and the result becomes a SIF image. The same content imported again, under
    any name, is converted and stored once.
    """
    from gateway.display import print_json
    from gateway.images import import_archive
    from gateway.progress import StepProgress

    with StepProgress(f"import {name}", enabled=not quiet) as progress:
        record, converted = import_archive(_gateway(), tarball, name, progress)
    if as_json:
        print_json({**record.as_dict(), "converted": converted})
    else:
        note = "converted" if converted else "already stored, name added"
        click.echo(f"{record.name}  {record.digest}  ({note})")


@image.command("pull")
@click.argument("reference")
@click.option("--name", required=True, help="NAME:TAG to call the image.")
@click.option("--insecure", is_flag=True, help="Allow a registry without TLS (e.g. localhost).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
def image_pull(reference: str, name: str, insecure: bool, quiet: bool, as_json: bool) -> None:
    """Take REFERENCE (e.g. registry.example.org/team/img:1.0) from a registry as NAME:TAG."""
    from gateway.display import print_json
    from gateway.images import pull_image
    from gateway.progress import StepProgress

    with StepProgress(f"pull {name}", enabled=not quiet) as progress:
        record, converted = pull_image(_gateway(), reference, name, tls_verify=not insecure,
                                       progress=progress)
    if as_json:
        print_json({**record.as_dict(), "converted": converted})
    else:
        note = "converted" if converted else "already stored, name added"
        click.echo(f"{record.name}  {record.digest}  ({note})")


@image.command("list")
@json_option
def image_list(as_json: bool) -> None:
    """List image names."""
    from gateway.display import print_json, print_table
    from gateway.images import list_images

    images = list_images(_gateway())
    if as_json:
        print_json([i.as_dict() for i in images])
    else:
        print_table(_image_rows(images), ["NAME", "DIGEST", "SIZE", "SOURCE"])


@image.command("show")
@click.argument("name")
@json_option
def image_show(name: str, as_json: bool) -> None:
    """Show an image: digest, SIF, size, and its config (env, workdir, cmd)."""
    from gateway.display import human_size, human_time, print_fields, print_json
    from gateway.images import get_image

    record = get_image(_gateway(), name)
    if as_json:
        print_json(record.as_dict())
        return
    config = record.config
    print_fields([("name", record.name), ("digest", record.digest), ("sif", record.sif_path),
                  ("size", human_size(record.size_bytes)), ("source", record.source),
                  ("imported", human_time(record.created)),
                  ("workdir", config.get("workdir")),
                  ("cmd", " ".join(config.get("entrypoint", []) + config.get("cmd", []))),
                  ("architecture", config.get("architecture"))])
    for key, value in config.get("env", {}).items():
        click.echo(f"env:          {key}={value}")


@image.command("rm")
@click.argument("name")
def image_rm(name: str) -> None:
    """Remove an image name; its SIF goes when no other name uses it."""
    from gateway.images import remove_image

    record, deleted = remove_image(_gateway(), name)
    click.echo(f"removed {record.name}" + (f" and {record.sif_path}" if deleted else ""))


# ---------------------------------------------------------------------- algorithms, datasets
def _store_group(kind: str, label: str, extra_fields: bool):
    @click.group(name=kind, help=f"{label.capitalize()}s: immutable numbered versions "
                 f"(v1, v2, ...); unchanged files are stored once.")
    def group() -> None:
        pass

    @group.command("push")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--name", required=True, help=f"The {label}'s name.")
    @click.option("--description", default="", help="Free text shown with the version.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress output.")
    @json_option
    def push(path: Path, name: str, description: str, quiet: bool, as_json: bool,
             **fields: str) -> None:
        from gateway.display import human_size, print_json
        from gateway.progress import StepProgress

        meta = {"description": description, **{k: v for k, v in fields.items() if v}}
        with StepProgress(f"push {name}", enabled=not quiet) as progress:
            version, created = _gateway().store(kind).push(
                path, name, meta, lambda done, total: progress("store", done, total))
        if as_json:
            print_json({**version.as_dict(), "created": created})
        elif created:
            click.echo(f"{version.ref}  {version.file_count} files  "
                       f"{human_size(version.size_bytes)}")
        else:
            click.echo(f"{version.ref}  unchanged: no new version")

    article = "an" if label[0] in "aeiou" else "a"
    push.help = (f"Store PATH (a directory or a .zip) as the next version of {article} {label}. "
                 "A zip whose entries share one top-level folder is stored without it.")
    if extra_fields:
        for option in (click.option("--framework", default="", help="e.g. PyTorch."),
                       click.option("--task", default="", help="e.g. object detection."),
                       click.option("--model-name", "model_name", default="",
                                    help="Name of the model its jobs make (default: the "
                                         "algorithm's name).")):
            push = option(push)

    @group.command("list")
    @json_option
    def list_(as_json: bool) -> None:
        from gateway.display import human_time, print_json, print_table

        rows = _gateway().store(kind).collections()
        if as_json:
            print_json(rows)
        else:
            print_table([(r["name"], r["versions"], f"v{r['latest']}", human_time(r["updated"]))
                         for r in rows], ["NAME", "VERSIONS", "LATEST", "UPDATED"])
    list_.help = f"List {label}s."

    @group.command("versions")
    @click.argument("name")
    @json_option
    def versions(name: str, as_json: bool) -> None:
        _print_versions(_gateway().store(kind).versions(name), as_json)
    versions.help = f"List the versions of a {label}."

    @group.command("show")
    @click.argument("ref")
    @json_option
    def show(ref: str, as_json: bool) -> None:
        from gateway.specs import parse_version_ref

        _print_version(_gateway().store(kind).resolve(parse_version_ref(ref, label)), as_json)
    show.help = f"Show a {label} version: NAME (latest) or NAME@vN."

    @group.command("rm")
    @click.argument("ref")
    def rm(ref: str) -> None:
        from gateway.specs import parse_version_ref

        version = _gateway().store(kind).remove(parse_version_ref(ref, label))
        click.echo(f"removed {version.ref}")
    rm.help = f"Remove one version of a {label}: NAME@vN."
    return group


def _print_versions(versions, as_json: bool) -> None:
    from gateway.display import human_size, human_time, print_json, print_table

    if as_json:
        print_json([v.as_dict() for v in versions])
        return
    print_table([(v.ref, v.file_count, human_size(v.size_bytes), human_time(v.created),
                  v.meta.get("description") or (f"job {v.job_id}" if v.job_id else ""))
                 for v in versions], ["VERSION", "FILES", "SIZE", "CREATED", "NOTE"])


def _print_version(version, as_json: bool) -> None:
    from gateway.display import human_size, human_time, print_fields, print_json

    if as_json:
        print_json(version.as_dict())
        return
    pairs = [("version", version.ref), ("path", version.path), ("files", version.file_count),
             ("size", human_size(version.size_bytes)), ("created", human_time(version.created))]
    for key, value in version.meta.items():
        if key in ("started", "ended"):
            value = human_time(value)
        elif isinstance(value, list):
            value = " ".join(map(str, value))
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        if value not in ("", None):
            pairs.append((key, value))
    print_fields(pairs)


cli.add_command(_store_group("algo", "algorithm", extra_fields=True))
cli.add_command(_store_group("data", "dataset", extra_fields=False))


# -------------------------------------------------------------------------------------- jobs
@cli.group()
def job() -> None:
    """Training jobs: submit, follow, cancel, collect outputs."""


@job.command("submit", context_settings={"ignore_unknown_options": False})
@click.option("--algo", required=True, help="Algorithm NAME or NAME@vN (default: latest).")
@click.option("--image", "image_name", required=True, help="Image NAME:TAG.")
@click.option("--data", default=None, help="Dataset NAME or NAME@vN, mounted read-only at "
                                           "/dataset.")
@click.option("--name", default=None, help="Job name (default: ALGO-DATE-TIME).")
@click.option("--cpus", type=int, default=None, help="CPUs (default from config).")
@click.option("--gpus", type=int, default=None, help="GPUs: --gres=gpu:N and GPU passthrough.")
@click.option("--mem", default=None, help="Memory, e.g. 16G (shm is added on top).")
@click.option("--shm", default=None, help="Size of the private /dev/shm, e.g. 8G.")
@click.option("--time", "time_limit", default=None, help="Time limit, D-HH:MM:SS.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--env", "env", multiple=True, help="K=V in the container (repeatable).")
@click.option("--model-name", default=None, help="Model the job's /model becomes a version "
                                                 "of (default: the algorithm's).")
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 unless it "
                                           "completed.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@json_option
def job_submit(algo: str, image_name: str, data: str | None, name: str | None,
               cpus: int | None, gpus: int | None, mem: str | None, shm: str | None,
               time_limit: str | None, partition: str | None, env: tuple[str, ...],
               model_name: str | None, wait: bool, command: tuple[str, ...],
               as_json: bool) -> None:
    """Submit COMMAND (after --) as a Slurm job in the image's container.

    In the container: /code is a private writable copy of the algorithm version (what the
    job leaves there are its outputs), /dataset the dataset version (read-only), /model an
    empty directory that becomes the next model version when the job exits 0. The working
    directory is /code and the image's environment applies.
    """
    from gateway.jobs import JobRequest, submit_job
    from gateway.specs import check_image_name, parse_env, parse_resources, parse_version_ref

    gw = _gateway()
    request = JobRequest(
        algo=parse_version_ref(algo, "algorithm"), image=check_image_name(image_name),
        data=parse_version_ref(data, "dataset") if data else None, name=name,
        command=command, env=parse_env(env), model_name=model_name,
        resources=parse_resources(cpus=cpus, gpus=gpus, mem=mem, shm=shm, time=time_limit,
                                  partition=partition, defaults=gw.config))
    submitted = submit_job(gw, request)
    if not wait:
        _print_job(submitted, as_json, short=True)
        return
    final = _wait_for(gw, submitted["id"])
    _print_job(final, as_json)
    if final["state"] != "COMPLETED":
        sys.exit(1)


def _wait_for(gw, job_id: int, poll: float = 1.0):
    import time

    from gateway.jobs import get_job
    from gateway.slurm.adapter import TERMINAL
    from spool.sync import sync_state

    delay = poll
    while True:
        sync_state(gw, quiet=True)
        job_info = get_job(gw, job_id)
        if job_info["state"] in TERMINAL:
            return job_info
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)


def _print_job(job_info, as_json: bool, short: bool = False) -> None:
    from gateway.display import human_time, print_fields, print_json

    if as_json:
        print_json(job_info)
        return
    if short:
        click.echo(f"job {job_info['id']} submitted (Slurm job {job_info['slurm_job_id']}); "
                   f"follow it with: gw job logs {job_info['id']} -f")
        return
    print_fields([
        ("job", job_info["id"]), ("name", job_info["name"]), ("state", job_info["state"]),
        ("reason", job_info["reason"] or None), ("slurm job", job_info["slurm_job_id"]),
        ("node", job_info["node"] or None), ("submitted", human_time(job_info["submitted"])),
        ("started", human_time(job_info["started"])), ("ended", human_time(job_info["ended"])),
        ("exit code", job_info["exit_code"]), ("algorithm", job_info["algo"]),
        ("image", f"{job_info['image']} ({job_info['image_digest']})"),
        ("dataset", job_info["dataset"]),
        ("command", " ".join(job_info["command"])),
        ("resources", ", ".join(f"{k}={v}" for k, v in job_info["resources"].items() if v)),
        ("runtime", job_info["runtime"]),
        ("model", job_info["model"] or f"(none yet; becomes {job_info['model_name']})"),
        ("job dir", job_info["job_dir"]), ("script", job_info["script"]),
        ("log", job_info["log"]),
    ])


@job.command("list")
@click.option("--state", "states", multiple=True, help="Only jobs in this state (repeatable).")
@click.option("--limit", type=int, default=None, help="At most this many, newest first.")
@json_option
def job_list(states: tuple[str, ...], limit: int | None, as_json: bool) -> None:
    """List jobs, newest first."""
    from gateway.display import human_time, print_json, print_table
    from gateway.jobs import list_jobs

    jobs = list_jobs(_synced(), states, limit)
    if as_json:
        print_json(jobs)
    else:
        print_table([(j["id"], j["name"], j["state"], j["slurm_job_id"], j["node"] or None,
                      human_time(j["submitted"]), j["exit_code"]) for j in jobs],
                    ["ID", "NAME", "STATE", "SLURM_ID", "NODE", "SUBMITTED", "EXIT"])


@job.command("show")
@click.argument("job_id", type=int)
@json_option
def job_show(job_id: int, as_json: bool) -> None:
    """Show a job: state, Slurm id, node, times, exit code, resources, versions, files."""
    from gateway.jobs import get_job

    _print_job(get_job(_synced(), job_id), as_json)


@job.command("script")
@click.argument("job_id", type=int)
def job_script(job_id: int) -> None:
    """Print the exact sbatch script that was submitted."""
    from gateway.jobs import get_job

    click.echo(Path(get_job(_gateway(), job_id)["script"]).read_text(), nl=False)


@job.command("logs")
@click.argument("job_id", type=int)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
def job_logs(job_id: int, follow: bool) -> None:
    """Print the job's output (stdout and stderr)."""
    import time

    from gateway.jobs import get_job, log_path
    from gateway.slurm.adapter import TERMINAL
    from spool.sync import sync_state

    gw = _synced()
    path = log_path(get_job(gw, job_id))
    position = 0
    while True:
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
                position += len(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        if not follow:
            return
        sync_state(gw, quiet=True)
        if get_job(gw, job_id)["state"] in TERMINAL:
            if path.exists() and path.stat().st_size > position:
                continue
            return
        time.sleep(1)


@job.command("cancel")
@click.argument("job_id", type=int)
def job_cancel(job_id: int) -> None:
    """Cancel a pending or running job (scancel)."""
    from gateway.jobs import cancel_job

    job_info = cancel_job(_synced(), job_id)
    click.echo(f"cancelled job {job_id} (Slurm job {job_info['slurm_job_id']})")


@job.command("outputs")
@click.argument("job_id", type=int)
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The .tar.gz to write.")
def job_outputs(job_id: int, output: Path) -> None:
    """Pack what the job left in /code, its log and its script into a .tar.gz."""
    from gateway.display import human_size
    from gateway.jobs import get_job, write_outputs

    size = write_outputs(get_job(_synced(), job_id), output)
    click.echo(f"wrote {output} ({human_size(size)})")


# ------------------------------------------------------------------------------------ models
@cli.group()
def model() -> None:
    """Models: each successful job's /model, as numbered versions with lineage."""


@model.command("list")
@json_option
def model_list(as_json: bool) -> None:
    """List models."""
    from gateway.display import human_time, print_json, print_table

    rows = _synced().store("model").collections()
    if as_json:
        print_json(rows)
    else:
        print_table([(r["name"], r["versions"], f"v{r['latest']}", human_time(r["updated"]))
                     for r in rows], ["NAME", "VERSIONS", "LATEST", "UPDATED"])


@model.command("versions")
@click.argument("name")
@json_option
def model_versions(name: str, as_json: bool) -> None:
    """List the versions of a model."""
    _print_versions(_synced().store("model").versions(name), as_json)


@model.command("show")
@click.argument("ref")
@json_option
def model_show(ref: str, as_json: bool) -> None:
    """Show a model version and its lineage: NAME (latest) or NAME@vN."""
    from gateway.specs import parse_version_ref

    _print_version(_synced().store("model").resolve(parse_version_ref(ref, "model")), as_json)


@model.command("files")
@click.argument("ref")
@json_option
def model_files(ref: str, as_json: bool) -> None:
    """List the files of a model version."""
    from gateway.display import human_size, print_json, print_table
    from gateway.specs import parse_version_ref
    from gateway.trees import list_files

    version = _synced().store("model").resolve(parse_version_ref(ref, "model"))
    files = list_files(version.path)
    if as_json:
        print_json([{"path": p, "bytes": s} for p, s in files])
    else:
        print_table([(p, human_size(s)) for p, s in files], ["PATH", "SIZE"])


@model.command("cat")
@click.argument("ref")
@click.argument("path")
def model_cat(ref: str, path: str) -> None:
    """Print one file of a model version."""
    from gateway.models import open_model_file

    with open_model_file(_synced(), ref, path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sys.stdout.buffer.write(chunk)


@model.command("download")
@click.argument("ref")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The .tar.gz to write.")
def model_download(ref: str, output: Path) -> None:
    """Write a model version as a .tar.gz."""
    from gateway.display import human_size
    from gateway.models import download_model

    size = download_model(_synced(), ref, output)
    click.echo(f"wrote {output} ({human_size(size)})")


# ------------------------------------------------------------------------------------- admin
@cli.group()
def spool() -> None:
    """The spool: job end states written on compute nodes."""


@spool.command("sync")
@json_option
def spool_sync(as_json: bool) -> None:
    """Ingest spool files (harvesting models) and reconcile active jobs with Slurm."""
    from gateway.display import print_json
    from spool.sync import sync_state

    changed = sync_state(_gateway())
    if as_json:
        print_json({"ingested": changed})
    else:
        click.echo(f"ingested {len(changed)} spool file(s)")


@cli.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check Slurm, the container runtime, FUSE and paths; say what to fix."""
    from gateway.display import print_json
    from gateway.doctor import run_checks

    checks = run_checks(_gateway())
    if as_json:
        print_json([c.as_dict() for c in checks])
    else:
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            click.echo(f"[{mark}] {check.name}: {check.detail}")
            if not check.ok and check.fix:
                click.echo(f"       fix: {check.fix}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@cli.command("config")
@json_option
def config_cmd(as_json: bool) -> None:
    """Print the resolved configuration and where each value came from."""
    from gateway.config import KEYS, load_config
    from gateway.display import print_json, print_table

    config = load_config()
    if as_json:
        print_json(config.values)
    else:
        print_table([(k, config.values[k], config.sources[k], KEYS[k][1][:60]) for k in KEYS],
                    ["KEY", "VALUE", "FROM", "MEANING"])


def main() -> None:
    """Console entry point: one clear line on stderr and a meaningful exit status."""
    try:
        code = cli.main(standalone_mode=False, prog_name="gw")
    except click.exceptions.UsageError as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("gw: aborted", err=True)
        sys.exit(1)
    except GatewayError as exc:
        click.echo(f"gw: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
