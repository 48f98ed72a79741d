"""One conversion of an image into a SIF, wherever it runs: in `gw image import --here`
on the login node, or in an image build job on a compute node (containers/build_job.py).

The streamed builder checks the layers as it reads them; the others get the layer check
beside skopeo's copy, and nothing is unpacked until it has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from containers.build import SifImage
from containers.layers import ImageLimits

# (step, done, total): a step's name, and its bytes so far of total (0, 0: no measure).
Progress = Callable[[str, int, int], None] | None


def convert_archive(tarball: Path, dest: Path, work: Path, *, builder: str,
                    limits: ImageLimits, progress: Progress = None) -> SifImage:
    """Check and convert the `docker save` (or OCI) archive ``tarball`` into ``dest``."""
    from concurrent.futures import ThreadPoolExecutor

    from containers.archive import check_layers, read_archive
    from containers.build import build_method, build_sif_from_archive
    from gateway.common.errors import ContainerToolError

    archive = read_archive(tarball)
    steps = (lambda step: progress(step, 0, 0)) if progress else None
    if build_method(builder) == "stream":   # checks the layers as it goes
        return build_sif_from_archive(archive, dest, work, steps, builder=builder,
                                      limits=limits, meter=progress)
    with ThreadPoolExecutor(max_workers=1) as pool:
        check = pool.submit(check_layers, archive,
                            (lambda done, total: progress("check", done, total))
                            if progress else None, limits)
        try:
            return build_sif_from_archive(archive, dest, work, steps, builder=builder,
                                          before_unpack=check.result)
        except ContainerToolError:
            check.result()  # a failed check says better why the tool failed
            raise


def convert_registry(reference: str, dest: Path, work: Path, *, builder: str,
                     limits: ImageLimits, expected_digest: str, tls_verify: bool = True,
                     progress: Progress = None) -> SifImage:
    """Pull ``reference`` (still ``expected_digest``) and convert it into ``dest``."""
    from containers.build import build_sif_from_registry

    _digest, _config, sif = build_sif_from_registry(
        reference, dest, work, tls_verify=tls_verify, expected_digest=expected_digest,
        progress=(lambda step: progress(step, 0, 0)) if progress else None,
        builder=builder, limits=limits)
    return sif
