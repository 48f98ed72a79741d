"""`gw algo ...` and `gw data ...`: versioned algorithms and datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.stores.versioned import VersionInfo

from pathlib import Path

import click

from gateway.commands import json_option, open_gateway
from gateway.commands.completion import store_completer


def store_group(kind: str, label: str, extra_fields: bool) -> click.Group:
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
        from gateway.common.display import human_size, print_json
        from gateway.common.progress import StepProgress

        meta = {"description": description, **{k: v for k, v in fields.items() if v}}
        with StepProgress(f"push {name}", enabled=not quiet) as progress:
            version, created = open_gateway().store(kind).push(
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
                 "A zip is stored as it is laid out: detectron2.zip with a top folder "
                 f"detectron2/ is found at {'/code' if kind == 'algo' else '/dataset'}"
                 "/detectron2/... in jobs.")
    if extra_fields:
        for option in (click.option("--framework", default="", help="e.g. PyTorch."),
                       click.option("--task", default="", help="e.g. object detection."),
                       click.option("--model-name", "model_name", default="",
                                    help="Name of the model its jobs make (default: the "
                                         "algorithm's name).")):
            push = option(push)

    @group.command("list")
    @shared_option
    @json_option
    def list_(shared: bool, as_json: bool) -> None:
        gw = open_gateway()
        if shared:
            print_shared_with_me(gw, kind, as_json)
        else:
            print_collections(gw, kind, gw.store(kind).collections(), as_json)
    list_.help = (f"List your {label}s (SHARED names the group of those you share), or "
                  f"with --shared those others share with you (use them as OWNER:NAME@vN).")

    @group.command("versions")
    @click.argument("name", shell_complete=store_completer(kind))
    @json_option
    def versions(name: str, as_json: bool) -> None:
        print_versions(open_gateway().versions(kind, name), as_json)
    versions.help = f"List the versions of a {label}: NAME, or OWNER:NAME shared with you."

    @group.command("show")
    @click.argument("ref", shell_complete=store_completer(kind))
    @json_option
    def show(ref: str, as_json: bool) -> None:
        from gateway.common.specs import parse_version_ref

        print_version(open_gateway().version(kind, parse_version_ref(ref, label)), as_json)
    show.help = (f"Show a {label} version: NAME (latest) or NAME@vN, or OWNER:NAME@vN "
                 "shared with you.")

    @group.command("rm")
    @click.argument("ref", shell_complete=store_completer(kind))
    @json_option
    def rm(ref: str, as_json: bool) -> None:
        from gateway.common.display import print_json
        from gateway.common.specs import parse_version_ref

        version = open_gateway().store(kind).remove(parse_version_ref(ref, label))
        if as_json:
            print_json({**version.as_dict(), "removed": True})
        else:
            click.echo(f"removed {version.ref}")
    rm.help = f"Remove one version of a {label}: NAME@vN."
    add_sharing_commands(group, kind, label)
    return group


shared_option = click.option("--shared", is_flag=True,
                             help="What other users share with you, instead of yours.")


def add_sharing_commands(group: click.Group, kind: str, label: str) -> None:
    """`gw KIND share NAME --group G` and `gw KIND unshare NAME`."""
    @group.command("share")
    @click.argument("name", shell_complete=store_completer(kind))
    @click.option("--group", "unix_group", required=True,
                  help="The Unix group that may use it (one you are in).")
    @json_option
    def share(name: str, unix_group: str, as_json: bool) -> None:
        from gateway.common.display import print_json
        from gateway.stores.sharing import share as share_versions
        from gateway.stores.sharing import user_name

        index = share_versions(open_gateway(), kind, name, unix_group)
        if as_json:
            print_json(index)
            return
        numbers = ", ".join(f"v{v['number']}" for v in index["versions"])
        click.echo(f"shared {name} ({numbers}) with group {unix_group}: its members use "
                   f"{user_name()}:{name}@vN; new versions are shared as they are made")
    share.help = (f"Let the members of a Unix group use every version of a {label}, read-only, "
                  f"as OWNER:NAME@vN (e.g. `gw job submit --{'algo' if kind == 'algo' else 'data'}"
                  f" alice:{name_example(kind)}@v3` for {label}s). Sharing again changes the "
                  "group. The site must set share_root (docs/sharing.md).")
    if kind == "model":
        share.help = ("Let the members of a Unix group read every version of a model "
                      "(`gw model show/files/cat/download OWNER:NAME@vN`). Sharing again "
                      "changes the group. The site must set share_root (docs/sharing.md).")

    @group.command("unshare")
    @click.argument("name", shell_complete=store_completer(kind))
    def unshare(name: str) -> None:
        from gateway.stores.sharing import unshare as withdraw

        index = withdraw(open_gateway(), kind, name)
        click.echo(f"{name} is no longer shared with group {index.get('group')}")
    unshare.help = (f"Stop sharing a {label}: its members can no longer see it or submit "
                    "new jobs with it (jobs already running keep what they copied).")


def name_example(kind: str) -> str:
    return {"algo": "detectron2", "data": "imagenet", "model": "resnet"}[kind]


def print_collections(gw: Gateway, kind: str, rows: list[dict[str, Any]],
                      as_json: bool) -> None:
    """Your names, with the group each is shared with."""
    from gateway.common.display import human_time, print_json, print_table
    from gateway.stores.sharing import my_shares

    shares = my_shares(gw, kind)
    for row in rows:
        row["shared_with"] = shares.get(row["name"])
    if as_json:
        print_json(rows)
        return
    columns = ["NAME", "VERSIONS", "LATEST", "UPDATED"] + (["SHARED"] if shares else [])
    print_table([(r["name"], r["versions"], f"v{r['latest']}", human_time(r["updated"]))
                 + ((r["shared_with"] or "",) if shares else ()) for r in rows], columns)


def print_shared_with_me(gw: Gateway, kind: str, as_json: bool) -> None:
    """What other users share with you."""
    from gateway.common.display import human_time, print_json, print_table
    from gateway.stores.sharing import shared_with_me

    rows = shared_with_me(gw.config, kind)
    if as_json:
        print_json(rows)
        return
    print_table([(r["ref"], r["group"], r["versions"], f"v{r['latest']}",
                  human_time(r["updated"])) for r in rows],
                ["NAME", "GROUP", "VERSIONS", "LATEST", "UPDATED"])


def print_versions(versions: list[VersionInfo], as_json: bool) -> None:
    from gateway.common.display import human_size, human_time, print_json, print_table

    if as_json:
        print_json([v.as_dict() for v in versions])
        return
    print_table([(v.ref, v.file_count, human_size(v.size_bytes), human_time(v.created),
                  v.meta.get("description") or (f"job {v.job_id}" if v.job_id else ""))
                 for v in versions], ["VERSION", "FILES", "SIZE", "CREATED", "NOTE"])


def print_version(version: VersionInfo, as_json: bool) -> None:
    from gateway.common.display import human_size, human_time, print_fields, print_json

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


algo = store_group("algo", "algorithm", extra_fields=True)
data = store_group("data", "dataset", extra_fields=False)
