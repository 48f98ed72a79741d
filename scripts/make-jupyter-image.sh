#!/usr/bin/env bash
# Builds a notebook image as a `docker save` archive without Docker: the demo's Debian 12
# rootfs (scripts/make-demo-image.sh) plus packages from PyPI, the way the seed's guide makes
# its notebook image (its training image plus `pip3 install jupyterlab`).
#   make-jupyter-image.sh            jupyterlab only (tag jupyter:v1), as the seed does
#   make-jupyter-image.sh papermill  jupyterlab and papermill (tag jupyter-papermill:v1)
#   make-jupyter-image.sh torch      PyTorch's CPU build (tag torch:v1), for the tests of
#                                    distributed training (gloo on the CPU)
# Its Cmd starts JupyterLab as the seed's image does; gw never uses it. Debian 12's python3
# is 3.11, as is the host's, so the host's pip installs CPython 3.11 wheels straight into
# the rootfs (no network inside a chroot); the console scripts pip writes (jupyter,
# jupyter-execute, papermill, ...) get the image's /usr/bin/python3 in their #! line, as a
# pip inside the image would write them, and ipykernel's kernel spec is the one its wheel
# ships. Cached under $GW_DEMO_CACHE (default /var/cache/gw-demo); prints the archive's path.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GW_DEMO_CACHE:-/var/cache/gw-demo}
# Pinned so the cached image and the tests agree; bump together.
case "${1:-seed}" in
    seed) NAME=jupyter; PACKAGES=(jupyterlab==4.2.5) ;;
    papermill) NAME=jupyter-papermill; PACKAGES=(jupyterlab==4.2.5 papermill==2.6.0) ;;
    torch) NAME=torch; PACKAGES=(torch==2.13.0) ;;
    *) echo "usage: $0 [seed|papermill|torch]" >&2; exit 2 ;;
esac
ARCHIVE="$CACHE/$NAME.tar"
ROOTFS="$CACHE/$NAME-rootfs"

demo_archive=$(bash "$REPO/scripts/make-demo-image.sh")
# The marker names what was installed: a rootfs cached with other packages is made again.
if [ "$(cat "$ROOTFS/.gw-complete" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
    echo "$NAME image: ${PACKAGES[*]} into the demo rootfs (about a minute)" >&2
    rm -rf "$ROOTFS.partial"
    cp -a "$CACHE/rootfs" "$ROOTFS.partial"
    rm -f "$ROOTFS.partial/.gw-complete"
    site="$ROOTFS.partial/usr/local/lib/python3.11/dist-packages"
    mkdir -p "$site"
    # The project's pip (or, in the Debian 13 root of scripts/slurm-root.sh, the root's):
    # it fetches wheels for the image's Python, whatever its own is.
    pip=$REPO/.venv/bin/pip
    "$pip" --version > /dev/null 2>&1 || pip=$(command -v pip)
    wheels=()
    if [ -d /opt/wheels ]; then wheels=(--find-links /opt/wheels); fi
    "$pip" install --quiet --disable-pip-version-check --no-compile "${wheels[@]}" \
        --target "$site" --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --only-binary=:all: "${PACKAGES[@]}" \
        > "$CACHE/$NAME-pip.log" 2>&1 || { tail -20 "$CACHE/$NAME-pip.log" >&2; exit 1; }
    # pip --target leaves data files (JupyterLab's assets, the server extensions' config,
    # ipykernel's kernel spec) below the target; Jupyter looks for them under the prefix.
    mkdir -p "$ROOTFS.partial/usr/local/share" "$ROOTFS.partial/usr/local/etc" \
        "$ROOTFS.partial/usr/local/bin"
    if [ -d "$site/share" ]; then cp -a "$site/share/." "$ROOTFS.partial/usr/local/share/"; fi
    if [ -d "$site/etc" ]; then cp -a "$site/etc/." "$ROOTFS.partial/usr/local/etc/"; fi
    for script in "$site/bin/"*; do
        [ -f "$script" ] || continue
        if head -n1 "$script" | grep -q '^#!.*python'; then
            sed '1s|^#!.*$|#!/usr/bin/python3|' "$script" > "$ROOTFS.partial/usr/local/bin/${script##*/}"
            chmod 0755 "$ROOTFS.partial/usr/local/bin/${script##*/}"
        fi
    done
    rm -rf "$site/share" "$site/etc" "$site/bin"
    # PyTorch's C++ headers and test binaries: no job of the image compiles against them.
    rm -rf "$site/torch/include" "$site/torch/test"
    echo "${PACKAGES[*]}" > "$ROOTFS.partial/.gw-complete"
    rm -rf "$ROOTFS"
    mv "$ROOTFS.partial" "$ROOTFS"
fi
if [ "$NAME" = torch ]; then
    IMAGE_ARGS=(--cmd python3)
else
    IMAGE_ARGS=(--env JUPYTERLAB_DIR=/usr/local/share/jupyter/lab --cmd jupyter lab)
fi
if [ ! -f "$ARCHIVE" ] || [ "$ROOTFS/.gw-complete" -nt "$ARCHIVE" ]; then
    echo "$NAME image: writing $ARCHIVE" >&2
    python=$REPO/.venv/bin/python   # or, in the Debian 13 root, the root's own
    "$python" -c '' 2> /dev/null || python=python3
    "$python" "$REPO/scripts/docker_archive.py" --rootfs "$ROOTFS" \
        --out "$ARCHIVE.partial" --layout docker-legacy --tag "$NAME:v1" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 --workdir /code "${IMAGE_ARGS[@]}"
    mv "$ARCHIVE.partial" "$ARCHIVE"
fi
[ -n "$demo_archive" ] && echo "$ARCHIVE"
