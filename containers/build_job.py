"""The node's side of an image build job (the ``image_build`` kind,
gateway/jobs/kinds/image_build.py): ``python -m containers.build_job REQUEST.json``.

The request (written by the kind into the job's directory) says what to convert and
where the SIF goes. The converter prints its progress to the job's log; the outcome is a
file beside the request, which the kind's end handler reads on the login node:
``build-result.json`` (the SIF's path, size and partition offset) after a build that
succeeded, ``build-error.txt`` (one line: the reader's or the tool's error) after one
that failed. The SIF itself appears at its final path only whole (a temp name, fsync,
rename); a killed build leaves temp files the next build of the image removes.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

RESULT_FILE = "build-result.json"
ERROR_FILE = "build-error.txt"
REQUEST_FILE = "build-request.json"


class _LogMeter:
    """Progress as lines in the job's log: each step, and every tenth of its bytes."""

    def __init__(self) -> None:
        self.last: tuple[str, int] = ("", -1)

    def __call__(self, step: str, done: int = 0, total: int = 0) -> None:
        tenth = done * 10 // total if total else -1
        if (step, tenth) == self.last:
            return
        self.last = (step, tenth)
        share = f" {tenth * 10}%" if total else ""
        print(f"gw-build: {step}{share}", flush=True)


def build(request: dict[str, Any], progress: _LogMeter) -> dict[str, Any]:
    """Convert what ``request`` names; returns what the result file records."""
    from containers.build import remove_partials
    from containers.convert import convert_archive, convert_registry
    from containers.layers import ImageLimits

    dest = Path(request["dest"])
    limits = ImageLimits(int(request["max_image_bytes"]), float(request["max_zip_ratio"]))
    work = Path(request["scratch"]) / f"gw-image-build-{uuid.uuid4().hex[:12]}"
    remove_partials(dest)   # a killed build's: this image has one build at a time
    if request["source"] == "registry":
        sif = convert_registry(request["reference"], dest, work, builder=request["builder"],
                               limits=limits, expected_digest=request["digest"],
                               tls_verify=bool(request["tls_verify"]), progress=progress)
    else:
        archive = Path(request["archive"])
        try:
            sif = convert_archive(archive, dest, work, builder=request["builder"],
                                  limits=limits, progress=progress)
        finally:   # an upload kept for this build alone (gw's dashboard)
            if request.get("remove_archive"):
                archive.unlink(missing_ok=True)
    return {"sif": str(sif.path), "partition_offset": sif.partition_offset,
            "size_bytes": sif.size_bytes}


def main(argv: list[str]) -> int:
    """Run the build ``argv[0]`` (the request file) asks for; 0 when the SIF was made."""
    from gateway.common.atomic import write_atomic
    from gateway.common.errors import GatewayError

    request_path = Path(argv[0]).absolute()
    here = request_path.parent
    request = json.loads(request_path.read_text())
    started = time.monotonic()
    print(f"gw-build: converting {request.get('archive') or request.get('reference')} "
          f"({request['digest']}) into {request['dest']}", flush=True)
    try:
        result = build(request, _LogMeter())
    except GatewayError as exc:
        words = " ".join(str(exc).split())[:2000]
        write_atomic(here / ERROR_FILE, words + "\n")
        print(f"gw-build: failed: {words}", flush=True)
        return 1
    except Exception as exc:  # a bug: say it in one line too, then the traceback
        write_atomic(here / ERROR_FILE, f"the converter failed: {exc!r}"[:2000] + "\n")
        raise
    write_atomic(here / RESULT_FILE, json.dumps(result) + "\n")
    print(f"gw-build: done in {time.monotonic() - started:.1f} s: {result['sif']} "
          f"({result['size_bytes']} bytes)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
