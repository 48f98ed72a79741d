#!/usr/bin/env bash
# Builds the notebook test image as a `docker save` archive without Docker: the demo's
# Debian 12 rootfs (scripts/make-demo-image.sh) with JupyterLab, nbclient and papermill
# installed from PyPI. Its Cmd starts JupyterLab as the seed's image does; gw never uses it. Debian 12's python3 is 3.11, as is the host's, so the host's pip
# installs CPython 3.11 wheels straight into the rootfs (no network inside a chroot), and
# small launchers stand in for pip's console scripts (theirs would name the host's Python).
# Cached under $GW_DEMO_CACHE (default /var/cache/gw-demo); prints the archive's path.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GW_DEMO_CACHE:-/var/cache/gw-demo}
ARCHIVE="$CACHE/jupyter.tar"
ROOTFS="$CACHE/jupyter-rootfs"
# Pinned so the cached image and the tests agree; bump together.
PACKAGES=(jupyterlab==4.2.5 nbclient==0.10.0 papermill==2.6.0 ipykernel==6.29.5)

demo_archive=$(bash "$REPO/scripts/make-demo-image.sh")
if [ ! -f "$ROOTFS/.gw-complete" ]; then
    echo "jupyter image: JupyterLab into the demo rootfs (about a minute)" >&2
    rm -rf "$ROOTFS.partial"
    cp -a "$CACHE/rootfs" "$ROOTFS.partial"
    rm -f "$ROOTFS.partial/.gw-complete"
    site="$ROOTFS.partial/usr/local/lib/python3.11/dist-packages"
    mkdir -p "$site"
    "$REPO/.venv/bin/pip" install --quiet --disable-pip-version-check --no-compile \
        --target "$site" --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --only-binary=:all: "${PACKAGES[@]}" \
        > "$CACHE/jupyter-pip.log" 2>&1 || { tail -20 "$CACHE/jupyter-pip.log" >&2; exit 1; }
    rm -rf "$site/bin"
    # pip --target leaves data files (JupyterLab's assets, the server extensions' config)
    # below the target; Jupyter looks for them under the prefix.
    mkdir -p "$ROOTFS.partial/usr/local/share" "$ROOTFS.partial/usr/local/etc"
    cp -a "$site/share/." "$ROOTFS.partial/usr/local/share/"
    cp -a "$site/etc/." "$ROOTFS.partial/usr/local/etc/"
    rm -rf "$site/share" "$site/etc"
    bin="$ROOTFS.partial/usr/local/bin"
    mkdir -p "$bin"
    launcher() {  # NAME MODULE FUNCTION
        printf '#!/usr/bin/python3\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' \
            "$2" "$3" "$3" > "$bin/$1"
        chmod 0755 "$bin/$1"
    }
    launcher jupyter jupyter_core.command main
    launcher jupyter-lab jupyterlab.labapp main
    launcher jupyter-server jupyter_server.serverapp main
    launcher jupyter-execute nbclient.cli main
    launcher jupyter-kernel jupyter_client.kernelapp main
    launcher papermill papermill.__main__ papermill
    # The python3 kernel the notebooks run in (what `ipykernel install` would write).
    kernel="$ROOTFS.partial/usr/local/share/jupyter/kernels/python3"
    mkdir -p "$kernel"
    printf '{"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],\n "display_name": "Python 3", "language": "python"}\n' \
        > "$kernel/kernel.json"
    touch "$ROOTFS.partial/.gw-complete"
    rm -rf "$ROOTFS"
    mv "$ROOTFS.partial" "$ROOTFS"
fi
if [ ! -f "$ARCHIVE" ] || [ "$ROOTFS/.gw-complete" -nt "$ARCHIVE" ]; then
    echo "jupyter image: writing $ARCHIVE" >&2
    "$REPO/.venv/bin/python" "$REPO/scripts/docker_archive.py" --rootfs "$ROOTFS" \
        --out "$ARCHIVE.partial" --layout docker-legacy --tag jupyter:v1 \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 \
        --env JUPYTERLAB_DIR=/usr/local/share/jupyter/lab --workdir /code \
        --cmd jupyter lab
    mv "$ARCHIVE.partial" "$ARCHIVE"
fi
[ -n "$demo_archive" ] && echo "$ARCHIVE"
