import os
import zipfile

import pytest

from gateway.common.errors import InvalidInput, NotFound
from gateway.common.specs import VersionRef


def make_tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def snapshot(gw):
    """Everything under GW_HOME except the database, and the database's versions rows."""
    gw.conn  # noqa: B018 - open (and bind) the database first: home.json is part of the home
    files = sorted(str(p.relative_to(gw.config.home)) for p in gw.config.home.rglob("*")
                   if p.name != "gateway.db" and not p.name.startswith("gateway.db-"))
    rows = gw.conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
    return files, rows


def test_push_versions_and_dedup(gw, tmp_path):
    src = make_tree(tmp_path / "src", {"train.py": "print(1)\n", "lib/a.py": "A = 1\n"})
    os.chmod(src / "train.py", 0o755)
    store = gw.store("algo")
    v1, created = store.push(src, "det", {"description": "first"})
    assert created and v1.number == 1 and v1.file_count == 2
    (src / "lib" / "a.py").write_text("A = 2\n")
    v2, created = store.push(src, "det", {})
    assert created and v2.number == 2
    # unchanged file shared by both versions, changed one not
    assert (v1.path / "train.py").stat().st_ino == (v2.path / "train.py").stat().st_ino
    assert (v1.path / "lib/a.py").stat().st_ino != (v2.path / "lib/a.py").stat().st_ino
    assert (v1.path / "lib/a.py").read_text() == "A = 1\n"
    assert os.access(v2.path / "train.py", os.X_OK)
    # read-only versions
    assert not (v1.path.stat().st_mode & 0o222)
    assert not ((v1.path / "train.py").stat().st_mode & 0o222)
    # identical content makes no new version
    same, created = store.push(src, "det", {})
    assert not created and same.number == 2
    assert [v.number for v in store.versions("det")] == [1, 2]
    assert store.resolve(VersionRef("det", None)).number == 2
    assert store.resolve(VersionRef("det", 1)).meta["description"] == "first"


def test_push_zip_keeps_its_single_top_folder(gw, tmp_path):
    """The seed uploads detectron2.zip and runs /code/detectron2/tools/train_net.py."""
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("detectron2/", "")
        zf.writestr("detectron2/tools/train_net.py", "print('zip')\n")
        zf.writestr("detectron2/data/x.txt", "x")
    version, _ = gw.store("algo").push(archive, "detectron2", {})
    assert (version.path / "detectron2/tools/train_net.py").read_text() == "print('zip')\n"
    assert (version.path / "detectron2/data/x.txt").exists()
    assert sorted(p.name for p in version.path.iterdir()) == ["detectron2"]


@pytest.mark.parametrize("member,message", [("../evil.txt", "leaves the tree"),
                                            ("a/../../evil.txt", "leaves the tree"),
                                            ("/etc/evil", "absolute path")])
def test_hostile_zip_leaves_nothing(gw, tmp_path, member, message):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(member, "evil")
    gw.layout.ensure()
    before = snapshot(gw)
    with pytest.raises(InvalidInput, match=message):
        gw.store("algo").push(archive, "x", {})
    assert snapshot(gw) == before
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_refused(gw, tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidInput, match="symlink"):
        gw.store("algo").push(archive, "x", {})


def test_truncated_zip(gw, tmp_path):
    archive = tmp_path / "t.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("big.bin", os.urandom(100000))
    archive.write_bytes(archive.read_bytes()[:5000])
    gw.layout.ensure()
    before = snapshot(gw)
    with pytest.raises(InvalidInput):
        gw.store("algo").push(archive, "x", {})
    assert snapshot(gw) == before


def test_directory_symlink_escape_refused(gw, tmp_path):
    src = make_tree(tmp_path / "src", {"a.py": "x"})
    os.symlink("../../etc/passwd", src / "esc")
    with pytest.raises(InvalidInput, match="points outside"):
        gw.store("algo").push(src, "x", {})
    os.unlink(src / "esc")
    os.symlink("/etc/passwd", src / "abs")
    with pytest.raises(InvalidInput, match="absolute"):
        gw.store("algo").push(src, "x", {})
    os.unlink(src / "abs")
    os.symlink("a.py", src / "inside")
    version, _ = gw.store("algo").push(src, "x", {})
    assert os.readlink(version.path / "inside") == "a.py"


def test_bad_names_and_missing(gw, tmp_path):
    src = make_tree(tmp_path / "src", {"a": "b"})
    for bad in ("../x", "a b", "", "x/y", "-x"):
        with pytest.raises(InvalidInput):
            gw.store("algo").push(src, bad, {})
    with pytest.raises(InvalidInput, match="no such file"):
        gw.store("algo").push(tmp_path / "missing", "x", {})
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(InvalidInput, match=r"directory or a .zip"):
        gw.store("algo").push(tmp_path / "plain.txt", "x", {})
    with pytest.raises(NotFound):
        gw.store("algo").resolve(VersionRef("nothere", None))
    gw.store("algo").push(src, "real", {})
    with pytest.raises(NotFound, match=r"has no version v7 .it has v1"):
        gw.store("algo").resolve(VersionRef("real", 7))


def test_remove_collects_unshared_objects(gw, tmp_path):
    src = make_tree(tmp_path / "src", {"shared": "s", "only1": "one"})
    store = gw.store("algo")
    v1, _ = store.push(src, "x", {})
    (src / "only1").unlink()
    (src / "only2").write_text("two")
    v2, _ = store.push(src, "x", {})
    def objects():
        return sorted(p.name for p in gw.layout.objects.rglob("*")
                      if p.is_file() and not p.name.startswith("."))
    assert len(objects()) == 3
    store.remove(VersionRef("x", 1))
    assert not v1.path.exists() and len(objects()) == 2
    assert (v2.path / "shared").read_text() == "s"
    with pytest.raises(InvalidInput, match="name the version"):
        store.remove(VersionRef("x", None))


def test_rm_during_a_push_keeps_the_objects_the_push_stores(gw, tmp_path, monkeypatch):
    """A push paused mid-copy: meanwhile another version is removed (its garbage
    collection must not take the push's fresh objects), and another writer gets the
    database's write lock at once (the copy holds no transaction)."""
    import threading

    from gateway.context import Gateway
    from gateway.home import database as db
    from gateway.stores import objects

    old = tmp_path / "old"
    old.mkdir()
    (old / "gone.txt").write_text("only in the version that is removed")
    gw.store("algo").push(old, "old", {})
    src = tmp_path / "new"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.txt").write_text(f"new content {i}")
    paused, resume = threading.Event(), threading.Event()
    real_install = objects.ObjectStore._install

    def slow_install(self, target, write, executable):
        real_install(self, target, write, executable)
        if not paused.is_set():
            paused.set()  # one object stored, not yet linked into the version
            assert resume.wait(30)

    monkeypatch.setattr(objects.ObjectStore, "_install", slow_install)
    result = {}
    pusher = threading.Thread(target=lambda: result.update(
        version=Gateway().store("algo").push(src, "new", {})[0]))
    pusher.start()
    assert paused.wait(30)
    other = Gateway()
    other.conn.execute("PRAGMA busy_timeout = 200")
    with db.transaction(other.conn):  # not blocked by the push's copying
        pass
    other.store("algo").remove(VersionRef("old", 1))
    resume.set()
    pusher.join(30)
    version = result["version"]
    assert [(version.path / f"f{i}.txt").read_text() for i in range(3)] == \
        [f"new content {i}" for i in range(3)]
    for path in version.path.iterdir():
        assert path.stat().st_nlink == 2  # still shared with its object
    removed_gc = objects.ObjectStore(gw.layout.objects, gw.layout.tmp).collect_garbage()
    assert removed_gc == 1  # the removed version's object, collected once no push runs
