"""Sharing algorithms, datasets and models with a Unix group, and using what others share.

A home is private (0700) and stays so. Sharing ``NAME`` publishes its versions under the
site's ``share_root`` (a sticky, world-writable directory like /tmp)::

    share_root/                 1777, the site's
      alice/                    0755 alice     made by alice's gw; must be hers
        data/                   0755 alice
          imagenet/             0750 alice:G   the publication: only G may enter
            share.json          0444           the versions, what they hold, the group
            v1/ v3/ ...         0550 alice:G   hardlinks of the home's files (copies
                                               when share_root is on another filesystem)

Files are hardlinks of the home's read-only files, given read bits for all: only the
directories above decide who reaches them (the home's are 0700, the publication's admit
alice and G). Nobody but alice can write anywhere in it; a member of G reads it and runs
jobs on it as ``alice:imagenet@v3``. New versions of a shared name (a push, a harvest) are
published as they are made, removed ones are withdrawn, and ``unshare`` takes it all away
at once (a rename, then the removal).

A reader trusts a publication only when every directory on the way and ``share.json``
belong to the owner its reference names and nobody else may write them: another user who
made ``share_root/alice`` first cannot pass off files as alice's.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput, NotFound
from gateway.common.specs import VersionRef, check_name
from gateway.common.trees import remove_tree
from gateway.stores.versioned import KIND_LABEL, VersionInfo

if TYPE_CHECKING:
    from gateway.home.config import Config
    from gateway.stores.context import StoresContext


INDEX = "share.json"
FORMAT = 1


def user_name(uid: int | None = None) -> str:
    """The name of user ``uid`` (default: the one running gw)."""
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def share_root(config: Config) -> Path:
    """The site's share directory, checked to be one nobody can hijack."""
    value = str(config["share_root"] or "")
    if not value:
        raise InvalidInput("sharing is off on this cluster: the site sets share_root in "
                           "/etc/hpc-gateway/config.toml (see docs/sharing.md)")
    root = Path(value)
    try:
        info = root.stat()
    except OSError as exc:
        raise InvalidInput(f"share_root {root} is not usable ({exc.strerror}): the site "
                           f"creates it with `install -d -m 1777 {root}`") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidInput(f"share_root {root} is not a directory")
    if info.st_mode & 0o002 and not info.st_mode & stat.S_ISVTX:
        raise InvalidInput(f"share_root {root} is writable by everyone without the sticky "
                           f"bit, so anyone could replace anyone's shares: the site runs "
                           f"`chmod 1777 {root}`")
    return root


# ---- the owner's side ------------------------------------------------------------------
def _own_dir(path: Path, mode: int) -> Path:
    """``path`` as a directory of mine that only I may write (made when missing)."""
    try:
        path.mkdir(mode=mode)
        os.chmod(path, mode)  # whatever the umask
    except FileExistsError:
        pass
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise InvalidInput(f"{path} belongs to {user_name(info.st_uid)}, not to you, so "
                           "your shares cannot go there: ask the site to remove it")
    if info.st_mode & 0o022:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o022)
    return path


def my_space(config: Config, kind: str) -> Path:
    """``share_root/<me>/<kind>``, made and checked."""
    root = share_root(config)
    return _own_dir(_own_dir(root / user_name(), 0o755) / kind, 0o755)


def _group_id(group: str) -> int:
    """The id of ``group``, which the person running gw must be in."""
    try:
        entry = grp.getgrnam(group)
    except KeyError as exc:
        raise InvalidInput(f"no Unix group named {group!r} (see `getent group`)") from exc
    if os.getuid() != 0 and entry.gr_gid not in (os.getgid(), *os.getgroups()):
        raise InvalidInput(f"you are not in the group {group!r}: you can share only with a "
                           "group you are in (see `id`)")
    return entry.gr_gid


def _read_index(publication: Path) -> dict[str, Any]:
    try:
        data = json.loads((publication / INDEX).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{publication / INDEX} is unreadable ({exc})") from exc
    return data if isinstance(data, dict) else {}


def _write_index(publication: Path, data: dict[str, Any], gid: int) -> None:
    from gateway.common.atomic import replacing

    with replacing(publication / INDEX, mode=0o444) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.chown(tmp, -1, gid)


def _link_tree(source: Path, dest: Path, gid: int) -> None:
    """Publish the version tree ``source`` at ``dest`` (which must not exist)."""
    for dirpath, dirnames, filenames in os.walk(source):
        relative = Path(dirpath).relative_to(source)
        target_dir = dest / relative
        target_dir.mkdir(mode=0o700)
        links_to_dirs = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in (*filenames, *links_to_dirs):
            src, dst = Path(dirpath) / name, target_dir / name
            info = src.lstat()
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(info.st_mode):
                executable = info.st_mode & stat.S_IXUSR
                os.chmod(src, 0o555 if executable else 0o444)  # the directories gate access
                try:
                    os.link(src, dst)
                except OSError:  # another filesystem (EXDEV), or links refused
                    shutil.copyfile(src, dst)
                    os.chmod(dst, 0o555 if executable else 0o444)
    for dirpath, _dirnames, _filenames in os.walk(dest, topdown=False):
        os.chown(dirpath, -1, gid)
        os.chmod(dirpath, 0o550)


def _version_entry(version: VersionInfo) -> dict[str, Any]:
    return {"number": version.number, "files": version.file_count,
            "bytes": version.size_bytes, "created": version.created,
            "tree_digest": version.tree_digest, "job_id": version.job_id,
            "meta": version.meta}


def share(gw: StoresContext, kind: str, name: str, group: str) -> dict[str, Any]:
    """Publish every version of ``name`` to ``group`` (again: bring it up to date, or
    change its group). Returns the publication's index."""
    versions = gw.store(kind).versions(name)
    gid = _group_id(group)
    space = my_space(gw.config, kind)
    publication = space / name
    if not publication.is_dir():
        staging = space / f".new-{name}-{uuid.uuid4().hex}"
        staging.mkdir(mode=0o700)
        try:
            _sync(staging, kind, name, group, gid, versions)
            os.rename(staging, publication)
        except BaseException:
            remove_tree(staging)
            raise
        return _read_index(publication)
    _sync(publication, kind, name, group, gid, versions)
    return _read_index(publication)


def _sync(publication: Path, kind: str, name: str, group: str, gid: int,
          versions: list[VersionInfo]) -> None:
    """Make ``publication`` hold exactly ``versions``: new ones are linked in before the
    index names them; withdrawn ones leave the index before their files go."""
    os.chown(publication, -1, gid)
    os.chmod(publication, 0o750)
    wanted = {v.number: v for v in versions}
    present = {int(p.name[1:]) for p in publication.iterdir()
               if p.name[:1] == "v" and p.name[1:].isdigit()}
    for number in sorted(set(wanted) - present):
        building = publication / f".v{number}.{uuid.uuid4().hex}"
        try:
            _link_tree(wanted[number].path, building, gid)
            os.rename(building, publication / f"v{number}")
        except BaseException:
            remove_tree(building)
            raise
    for number in present & set(wanted):
        for dirpath, _dirs, _files in os.walk(publication / f"v{number}"):
            os.chown(dirpath, -1, gid)  # a new group reaches the old versions too
    _write_index(publication, {
        "format": FORMAT, "owner": user_name(), "kind": kind, "name": name,
        "group": group, "updated": time.time(),
        "versions": [_version_entry(wanted[n]) for n in sorted(wanted)]}, gid)
    for number in sorted(present - set(wanted)):
        remove_tree(publication / f"v{number}")


def unshare(gw: StoresContext, kind: str, name: str) -> dict[str, Any]:
    """Withdraw the publication of ``name`` at once; returns what it was."""
    check_name(name, KIND_LABEL[kind])
    space = share_root(gw.config) / user_name() / kind
    publication = space / name
    index = _read_index(publication) if publication.is_dir() else {}
    if not index:
        raise NotFound(f"you do not share a {KIND_LABEL[kind]} named {name!r}")
    my_space(gw.config, kind)  # it is mine: checked before anything moves
    gone = space / f".gone-{name}-{uuid.uuid4().hex}"
    os.rename(publication, gone)
    remove_tree(gone)
    return index


def my_shares(gw: StoresContext, kind: str) -> dict[str, str]:
    """Name -> group of what this user shares (empty when sharing is off)."""
    if not gw.config["share_root"]:
        return {}
    space = Path(str(gw.config["share_root"])) / user_name() / kind
    shares: dict[str, str] = {}
    for publication in _children(space):
        index = _read_index(publication) if publication.is_dir() else {}
        if index.get("group"):
            shares[publication.name] = str(index["group"])
    return shares


def refresh(gw: StoresContext, kind: str, name: str,
            warn: Callable[[str], None] | None = None) -> None:
    """After ``name`` gained or lost a version: bring its publication up to date, when it
    is shared. A failure is reported through ``warn``, not raised: the version itself was
    made or removed."""
    if not gw.config["share_root"]:
        return
    publication = Path(str(gw.config["share_root"])) / user_name() / kind / name
    index: dict[str, Any] = {}
    try:
        index = _read_index(publication) if publication.is_dir() else {}
        if not index.get("group"):
            return
        versions = gw.store(kind).versions(name)
        _sync(publication, kind, name, str(index["group"]), _group_id(str(index["group"])),
              versions)
    except NotFound:
        unshare(gw, kind, name)  # its last version went: nothing is left to share
    except (OSError, InvalidInput) as exc:
        if warn:
            warn(f"the share of {name} was not brought up to date ({exc}); run `gw {kind} "
                 f"share {name} --group {index.get('group', 'GROUP')}` again")


# ---- the reader's side -----------------------------------------------------------------
def _owner_uid(owner: str) -> int:
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError as exc:
        raise NotFound(f"no user named {owner!r} on this cluster") from exc


def _trusted(path: Path, uid: int, what: str) -> os.stat_result:
    """lstat ``path`` and check that ``uid`` owns it and nobody else may write it."""
    info = path.lstat()
    if info.st_uid != uid or stat.S_ISLNK(info.st_mode) or info.st_mode & 0o022:
        raise InvalidInput(f"{path} is not {what}'s alone (owned by "
                           f"{user_name(info.st_uid)}, mode {stat.S_IMODE(info.st_mode):o}"
                           "): refusing to use it")
    return info


def _publication(config: Config, kind: str, owner: str, name: str) -> tuple[Path, dict]:
    """The checked publication of ``owner``'s ``name`` and its index."""
    label = KIND_LABEL[kind]
    check_name(name, label)
    uid = _owner_uid(owner)
    root = share_root(config)
    publication = root / owner / kind / name
    try:
        for path in (root / owner, root / owner / kind, publication):
            _trusted(path, uid, owner)
        index_path = publication / INDEX
        _trusted(index_path, uid, owner)
        index = json.loads(index_path.read_text())
    except FileNotFoundError as exc:
        raise NotFound(f"{owner} shares no {label} named {name!r}") from exc
    except PermissionError as exc:
        raise NotFound(f"{owner} does not share the {label} {name!r} with you (it is "
                       "shared with a group you are not in)") from exc
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{owner}'s share of {name} is unreadable: {exc}") from exc
    if not isinstance(index, dict) or not isinstance(index.get("versions"), list):
        raise InvalidInput(f"{publication / INDEX} is not a share index")
    return publication, index


def _info(publication: Path, kind: str, owner: str, name: str,
          entry: dict[str, Any]) -> VersionInfo:
    return VersionInfo(id=0, kind=kind, name=name, number=int(entry["number"]),
                       path=publication / f"v{int(entry['number'])}",
                       file_count=int(entry.get("files", 0)),
                       size_bytes=int(entry.get("bytes", 0)),
                       created=float(entry.get("created", 0)), meta=entry.get("meta") or {},
                       job_id=None, tree_digest=entry.get("tree_digest"), owner=owner)


def shared_versions(config: Config, kind: str, owner: str, name: str) -> list[VersionInfo]:
    """Every version ``owner`` shares of ``name``, oldest first."""
    publication, index = _publication(config, kind, owner, name)
    return [_info(publication, kind, owner, name, entry) for entry in index["versions"]]


def resolve_shared(config: Config, kind: str, ref: VersionRef) -> VersionInfo:
    """The version ``ref`` (``OWNER:NAME[@vN]``) names, checked to be the owner's."""
    assert ref.owner is not None
    versions = shared_versions(config, kind, ref.owner, ref.name)
    if not versions:
        raise NotFound(f"{ref.owner} shares no version of {ref.name}")
    chosen = versions[-1] if ref.number is None else next(
        (v for v in versions if v.number == ref.number), None)
    if chosen is None:
        known = ", ".join(f"v{v.number}" for v in versions)
        raise NotFound(f"{ref.owner} shares no version v{ref.number} of {ref.name} "
                       f"(shared: {known})")
    _trusted(chosen.path, _owner_uid(ref.owner), ref.owner)
    return chosen


def shared_with_me(config: Config, kind: str) -> list[dict[str, Any]]:
    """What other users share with this one: owner, name, group, versions, latest."""
    if not config["share_root"]:
        return []
    me = user_name()
    found = []
    for owner_dir in _children(Path(str(config["share_root"]))):
        if owner_dir.name == me or owner_dir.name.startswith("."):
            continue
        for publication in _children(owner_dir / kind):
            if publication.name.startswith("."):
                continue
            try:
                _path, index = _publication(config, kind, owner_dir.name, publication.name)
            except (NotFound, InvalidInput):
                continue
            numbers = [int(v["number"]) for v in index["versions"]]
            found.append({"owner": owner_dir.name, "name": publication.name,
                          "ref": f"{owner_dir.name}:{publication.name}",
                          "group": index.get("group"), "versions": len(numbers),
                          "latest": max(numbers, default=0),
                          "updated": index.get("updated")})
    return sorted(found, key=lambda r: (r["owner"], r["name"]))


def _children(path: Path) -> Iterator[Path]:
    try:
        yield from sorted(path.iterdir())
    except OSError:
        return
