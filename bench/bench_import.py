"""`gw image import` of a ~200 MB `docker save` archive vs the raw tool pipeline by hand.

The baseline (the ratio's denominator) types the tools of the previous converter (gw's
``image_builder = "unpack"``) with the options gw gives them: skopeo copy, umoci raw
unpack, mksquashfs (gzip at the level gw uses), siftool new + add, then removes its
intermediate files as gw does. gw itself converts as configured (by default in one
streaming pass: bench/bench_image_stream.py measures that against its own floor). Goal:
at most 1.2x. For reference it also times the tools with their default options (umoci
unpack, mksquashfs's default gzip level 9).
Run it with `scripts/bench.sh`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw_exe, report, run


def raw_pipeline(archive: Path, work: Path, same_options: bool) -> float:
    """The conversion by hand; returns seconds."""
    from containers.build import GZIP_LEVEL

    start = time.perf_counter()
    run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"oci:{work}/oci:img"])
    if same_options:
        (work / "bundle").mkdir()
        run(["umoci", "raw", "unpack", "--image", f"{work}/oci:img", f"{work}/bundle/rootfs"])
        level = ["-comp", "gzip", "-Xcompression-level", str(GZIP_LEVEL)]
    else:
        run(["umoci", "unpack", "--image", f"{work}/oci:img", f"{work}/bundle"])
        level = []
    run(["mksquashfs", f"{work}/bundle/rootfs", f"{work}/rootfs.squashfs", "-noappend",
         *level, "-quiet", "-no-progress"])
    run(["siftool", "new", f"{work}/image.sif"])
    run(["siftool", "add", "--datatype", "4", "--parttype", "2", "--partfs", "1",
         "--partarch", "2", "--groupid", "1", f"{work}/image.sif", f"{work}/rootfs.squashfs"])
    # gw ends with the SIF and nothing else: so does the baseline (its cleanup is timed too).
    for leftover in ("oci", "bundle", "rootfs.squashfs"):
        run(["rm", "-rf", f"{work}/{leftover}"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("archive", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    size_mb = args.archive.stat().st_size / 1e6
    ours_times, base_times, default_times = [], [], []
    for _ in range(args.repeat):
        # Unpacking is dominated by kernel time that varies a lot with the writeback left by
        # the previous run's deletion: flush before every timed run, keep the best run.
        os.sync()
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            base_times.append(raw_pipeline(args.archive, Path(tmp), same_options=True))
        os.sync()
        home = tempfile.mkdtemp(dir="/var/tmp")
        env = {**os.environ, "GW_HOME": home}
        start = time.perf_counter()
        subprocess.run([gw_exe(), "image", "import", str(args.archive), "--name", "bench:v1",
                        "--here", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        ours_times.append(time.perf_counter() - start)
        shutil.rmtree(home)
    os.sync()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        default_times.append(raw_pipeline(args.archive, Path(tmp), same_options=False))
    result = report(f"gw image import ({size_mb:.0f} MB)", min(ours_times), min(base_times),
                    "previous pipeline, by hand", 1.2)
    print(f"  for reference: the tools with their default options took {min(default_times):.3f} s",
          flush=True)
    result["tool_defaults_s"] = min(default_times)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([result], indent=2))


if __name__ == "__main__":
    main()
