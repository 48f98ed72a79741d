#!/usr/bin/env bash
# Builds the demo image as a `docker save` archive without Docker: a Debian 12 minbase
# rootfs with python3 and numpy (debootstrap, about 200 MB), written in the legacy layout.
# Cached under $GW_DEMO_CACHE (default /var/cache/gw-demo); prints the archive's path.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GW_DEMO_CACHE:-/var/cache/gw-demo}
MIRROR=${GW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ARCHIVE="$CACHE/demo-numpy.tar"

mkdir -p "$CACHE"
if [ ! -f "$CACHE/rootfs/.gw-complete" ]; then
    echo "demo image: debootstrap bookworm with python3 and numpy (about a minute)" >&2
    rm -rf "$CACHE/rootfs.partial"
    debootstrap --variant=minbase --include=python3-minimal,python3-numpy \
        bookworm "$CACHE/rootfs.partial" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$CACHE/rootfs.partial/var/cache/apt/archives/"*.deb
    touch "$CACHE/rootfs.partial/.gw-complete"
    rm -rf "$CACHE/rootfs"
    mv "$CACHE/rootfs.partial" "$CACHE/rootfs"
fi
if [ ! -f "$ARCHIVE" ] || [ "$CACHE/rootfs/.gw-complete" -nt "$ARCHIVE" ]; then
    echo "demo image: writing $ARCHIVE" >&2
    python=$REPO/.venv/bin/python   # or, in the Debian 13 root, the root's own
    "$python" -c '' 2> /dev/null || python=python3
    "$python" "$REPO/scripts/docker_archive.py" --rootfs "$CACHE/rootfs" \
        --out "$ARCHIVE.partial" --layout docker-legacy --tag demo-numpy:v1 \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 --workdir /code --cmd python3
    mv "$ARCHIVE.partial" "$ARCHIVE"
fi
echo "$ARCHIVE"
