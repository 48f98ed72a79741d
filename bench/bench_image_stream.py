"""`gw image import` of a large generated image vs the physical floor and the old pipeline.

The image: ``--layers`` layers (default 20) holding ``--files`` files (default 100,000) of
``--gb`` GB in all (default 2.1), plain tar layers in a `docker save` archive; each layer
after the first replaces some files of the one below and deletes some (whiteouts), one
holds an opaque directory, and files come in sizes from 1 KB to 8 MB, half random bytes
and half zeros (so they compress about 2x, as binaries and libraries do).

- floor: ``tar2sqfs`` (same compressor, level and threads as gw) reading the already
  flattened image from a file: what any converter must at least spend.
- gw: ``gw image import`` (image_builder stream): the layer check, the flattening read
  and the SquashFS writer, the SIF, the database record. Goal: at most 1.2x the floor.
- previous: ``gw image import`` with image_builder unpack (skopeo, umoci, mksquashfs,
  siftool), for reference.

Peak scratch disk: the most bytes the gw home held during each import (sampled every
0.1 s), against the SIF's size. Goal: at most the SIF's size (the archive itself aside).
Run it with `scripts/bench.sh` (or alone: it needs tar2sqfs, skopeo, umoci, siftool).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw_exe, report

POOL = random.Random(7).randbytes(64 << 20)


def _content(rng: random.Random, size: int) -> bytes:
    half = size // 2
    start = rng.randrange(0, len(POOL) - half)
    return POOL[start:start + half] + bytes(size - half)


def _sizes(rng: random.Random, count: int, total: int) -> list[int]:
    """``count`` file sizes from 1 KB to 8 MB (log-uniform), scaled to ``total`` bytes."""
    raw = [int(1024 * 2 ** rng.uniform(0, 13)) for _ in range(count)]
    scale = total / sum(raw)
    return [max(1, min(8 << 20, int(size * scale))) for size in raw]


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *,
         kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 1_700_000_000
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def write_image(path: Path, layers: int, files: int, total: int) -> None:
    """The generated `docker save` archive (legacy layout) at ``path``."""
    import hashlib

    rng = random.Random(11)
    per_layer = files // layers
    sizes = _sizes(rng, per_layer * layers, total)
    diff_ids, names = [], []
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as outer:
        for index in range(layers):
            layer_path = path.with_name(f".layer{index}.tar")
            with tarfile.open(layer_path, "w", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, f"l{index}", kind=tarfile.DIRTYPE, mode=0o755)
                if index:
                    for gone in range(0, per_layer, 50):        # 2% deleted below
                        _add(tar, f"l{index - 1}/.wh.d{gone // 100}-f{gone}", b"")
                    _add(tar, f"l{index - 1}/d0", kind=tarfile.DIRTYPE, mode=0o755)
                    if index == layers // 2:                    # one opaque directory
                        _add(tar, f"l{index - 1}/d0/.wh..wh..opq", b"")
                for number in range(per_layer):
                    directory = f"l{index}/d{number // 100}"
                    if number % 100 == 0:
                        _add(tar, directory, kind=tarfile.DIRTYPE, mode=0o755)
                    _add(tar, f"{directory}/f{number}",
                         _content(rng, sizes[index * per_layer + number]))
            digest = hashlib.sha256()
            with layer_path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            diff_ids.append("sha256:" + digest.hexdigest())
            names.append(f"{index:064x}/layer.tar")
            outer.add(layer_path, names[-1])
            layer_path.unlink()
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        for name, data in ((config_name, config), ("manifest.json", json.dumps(
                [{"Config": config_name, "RepoTags": ["big:1"], "Layers": names}]).encode())):
            _add(outer, name, data)


def flattened(archive: Path, out: Path) -> None:
    """The image as one flattened tar (what the floor's tar2sqfs reads)."""
    from containers.archive import check_layers, layer_handles, read_archive
    from containers.flatten import LayerTree, write_flat_tar

    image = read_archive(archive)
    tree = LayerTree()
    check_layers(image, tree=tree)
    tree.finish(image.config)
    with out.open("wb") as handle:
        write_flat_tar(lambda: layer_handles(image), tree, handle)


def floor_seconds(flat: Path, work: Path) -> float:
    from containers.squash import tar_writer, tar_writer_argv

    writer = tar_writer()
    if writer is None:
        raise SystemExit("no tar2sqfs or sqfstar 4.6+: the floor cannot be measured")
    dest = work / "floor.sqfs"
    os.sync()
    start = time.perf_counter()
    with flat.open("rb") as stdin:
        subprocess.run(tar_writer_argv(writer, dest), stdin=stdin, check=True)
    seconds = time.perf_counter() - start
    dest.unlink()
    return seconds


def _bytes_under(root: Path) -> int:
    used = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):   # renamed or removed meanwhile
                used += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return used


def import_run(archive: Path, builder: str, scratch: Path) -> tuple[float, int, int]:
    """(seconds, peak bytes the home held, SIF bytes) of one `gw image import`."""
    home = Path(tempfile.mkdtemp(dir=scratch))
    env = {**os.environ, "GW_HOME": str(home), "GW_IMAGE_BUILDER": builder}
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _bytes_under(home))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    os.sync()
    sampler.start()
    start = time.perf_counter()
    out = subprocess.run([gw_exe(), "image", "import", str(archive), "--name", "big:v1",
                          "--here", "-q", "--json"], env=env, check=True, capture_output=True,
                         text=True).stdout
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    sif = json.loads(out)["bytes"]
    shutil.rmtree(home)
    return seconds, peak[0], sif


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--gb", type=float, default=2.1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--scratch", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="gw-bench-image.") as tmp:
        work = Path(tmp)
        archive = work / "big.tar"
        started = time.perf_counter()
        write_image(archive, args.layers, args.files, int(args.gb * 1e9))
        print(f"generated {archive.stat().st_size / 1e9:.2f} GB, {args.layers} layers, "
              f"{args.files} files in {time.perf_counter() - started:.0f} s", flush=True)
        flat = work / "flat.tar"
        flattened(archive, flat)
        floors, ours, previous = [], [], []
        for _ in range(args.repeat):
            floors.append(floor_seconds(flat, work))
            ours.append(import_run(archive, "stream", work))
        flat.unlink()
        previous.append(import_run(archive, "unpack", work))
        best = min(ours)
        results = [report(f"image import, {args.gb:g} GB streamed", best[0], min(floors),
                          "tar2sqfs, flattened", 1.2)]
        results.append(report("  ... and against the old pipeline", best[0], previous[0][0],
                               "skopeo+umoci+mksquashfs", 1.2))
        for name, (_s, peak, sif) in (("stream", best), ("unpack", previous[0])):
            print(f"  peak scratch ({name}): {peak / 1e9:.2f} GB for a {sif / 1e9:.2f} GB SIF "
                  f"({peak / sif:.2f}x; goal for stream <= 1.0x)", flush=True)
        results.append({"name": "image import peak scratch", "gw_bytes": best[1],
                        "sif_bytes": best[2], "ratio": best[1] / best[2], "goal": 1.0,
                        "met": best[1] <= best[2] * 1.01,
                        "unpack_peak_bytes": previous[0][1]})
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
