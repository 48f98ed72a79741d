#!/usr/bin/env bash
# Slurm 24.11 beside the machine's own 22.05: a Debian 13 (trixie) root made with
# debootstrap, in which Debian 13's Slurm, munge, MariaDB, container tools and Python 3.13
# run the project's local cluster (scripts/cluster.sh) and gw. Debian 12 ships Slurm 22.05
# and Debian 13 Slurm 24.11.5: what sites run lies between and beyond them.
#
#   scripts/slurm-root.sh start [--nodes N]   make the root (once), mount what it shares,
#                                             start its cluster (idempotent)
#   scripts/slurm-root.sh stop                stop its cluster and unmount everything
#   scripts/slurm-root.sh status              its cluster's daemons (exit 1 if any is down)
#   scripts/slurm-root.sh run CMD [ARG...]    run CMD inside the root, in the same working
#                                             directory, with the cluster's SLURM_CONF and
#                                             gw's virtualenv on PATH
#   scripts/slurm-root.sh venv                (re)install gw into the root's virtualenv
#
# `scripts/cluster.sh --slurm 24.11 start|stop|status` calls it. Everything lives under
# $GW_SLURM_ROOT_DIR (default /var/lib/gw-cluster-24.11): root/ is the Debian 13 root (its
# cluster's state in root/var/lib/gw-cluster, gw's virtualenv in root/opt/gw-venv); the
# machine's own files are untouched. The root is a mount namespace of its own (pivot_root;
# ns/mnt pins it) and shares, by bind mounts that `stop` removes:
# /proc, /sys, /dev, this checkout (same path), the image cache of the tests and demo
# (/var/cache/gw-demo) and /opt/wheels when present. Its cluster uses ports of its own
# (6917-6919, MariaDB 3407) and node network 10.233.0, so both clusters can run at once.
# Needs root, debootstrap and Debian's package mirror (for the first start).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$(realpath -m "${GW_SLURM_ROOT_DIR:-/var/lib/gw-cluster-24.11}")
ROOT=$DIR/root
SUITE=${GW_SLURM_ROOT_SUITE:-trixie}
MIRROR=${GW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
VENV=/opt/gw-venv                       # inside the root
INNER_CLUSTER=/var/lib/gw-cluster       # inside the root
CACHE=${GW_DEMO_CACHE:-/var/cache/gw-demo}
# The inner cluster's ports and node network: none of the machine's own cluster's.
INNER_ENV=(
    "GW_SLURMCTLD_PORT=${GW_ROOT_SLURMCTLD_PORT:-6917}"
    "GW_SLURMD_PORT=${GW_ROOT_SLURMD_PORT:-6918}"
    "GW_SLURMDBD_PORT=${GW_ROOT_SLURMDBD_PORT:-6919}"
    "GW_MARIADB_PORT=${GW_ROOT_MARIADB_PORT:-3407}"
    "GW_NODE_NET=${GW_ROOT_NODE_NET:-10.233.0}"
    "GW_CLUSTER_DIR=$INNER_CLUSTER"
    # The tests' two-node cluster (tests/support/gang_cluster.py): its own too.
    "GW_GANG_CLUSTER_NAME=gwgang24" "GW_GANG_PORT_BASE=6937" "GW_GANG_NODE_NET=10.234.0"
    "SLURM_CONF=$INNER_CLUSTER/etc/slurm.conf"
    "PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "HOME=/root" "LANG=C.UTF-8"
    "PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
    "PIP_DISABLE_PIP_VERSION_CHECK=1"
)

log() { printf 'slurm-root: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (mounts, namespaces)"

# What the root's packages were installed from: a changed list installs again.
deps_stamp() { sha256sum "$REPO/scripts/install-deps.sh" | cut -c1-16; }

make_root() {
    if [ -f "$ROOT/.gw-debootstrap" ]; then
        return
    fi
    command -v debootstrap > /dev/null || die "debootstrap is not installed (scripts/install-deps.sh)"
    log "making the Debian 13 ($SUITE) root in $ROOT (about a minute)"
    rm -rf "$ROOT.partial"
    mkdir -p "$DIR"
    if ! debootstrap --variant=minbase "$SUITE" "$ROOT.partial" "$MIRROR" \
            > "$DIR/debootstrap.log" 2>&1; then
        tail -20 "$DIR/debootstrap.log" >&2
        rm -rf "$ROOT.partial"
        die "debootstrap $SUITE failed (log: $DIR/debootstrap.log)"
    fi
    touch "$ROOT.partial/.gw-debootstrap"
    mv "$ROOT.partial" "$ROOT"
}

# bind SOURCE TARGET [ro]: mount SOURCE on ROOT/TARGET unless it is mounted already.
bind() {
    local source=$1 target=$ROOT$2
    mkdir -p "$target"
    mountpoint -q "$target" && return 0
    mount --rbind "$source" "$target"
    mount --make-rslave "$target"
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$target"; fi
}

mount_all() {
    # A namespace made for another checkout (a clone elsewhere, CI's) does not hold this
    # one: it is made again (its daemons ended with whatever ran them).
    if namespace_up && ! inside test -f "$REPO/scripts/slurm-root.sh"; then
        log "the root's namespace holds another checkout: mounting it again for $REPO"
        unmount_all
    fi
    # The root a mount point of its own: bubblewrap makes / a slave mount in the jobs'
    # namespaces, which fails ("Invalid argument") where / is a plain directory.
    if ! mountpoint -q "$ROOT"; then
        unmount_all
        mount --bind "$ROOT" "$ROOT"
    fi
    mkdir -p "$ROOT/.oldroot"
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    bind /sys /sys
    bind /dev /dev
    bind "$REPO" "$REPO"
    mkdir -p "$CACHE"
    bind "$CACHE" "$CACHE"
    if [ -d /opt/wheels ]; then bind /opt/wheels /opt/wheels ro; fi
    # The machine's names: slurmctld resolves the node that submitted a job by its name.
    cp -L /etc/resolv.conf /etc/hosts "$ROOT/etc/" 2>/dev/null || true
    make_namespace
}

# The machine's own certificate authorities (a site's proxy, say) are the root's too: pip
# in the root reaches the same package index as this machine's.
trust_local_cas() {
    local ca stamp=""
    for ca in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$ca" ] && stamp+=$(sha256sum "$ca")
    done
    [ "$stamp" = "$(cat "$ROOT/.gw-cas" 2>/dev/null)" ] && return 0
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    for ca in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$ca" ] && cp -f "$ca" "$ROOT/usr/local/share/ca-certificates/"
    done
    inside update-ca-certificates > /dev/null 2>&1 || die "update-ca-certificates failed in the root"
    printf '%s' "$stamp" > "$ROOT/.gw-cas"
}

# The namespace's pin, then every mount below the root, deepest first, then the root's own.
unmount_all() {
    local target
    if mountpoint -q "$NS_DIR"; then
        umount "$NS" 2>/dev/null || umount -l "$NS" 2>/dev/null || true
        umount "$NS_DIR" 2>/dev/null || umount -l "$NS_DIR" 2>/dev/null || true
    fi
    [ -d "$ROOT" ] || return 0
    for target in $(awk -v root="$ROOT" '$2 == root || index($2, root "/") == 1 {print $2}' \
                        /proc/self/mounts | sort -r); do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done
}

# The root's own mount namespace, pinned by a bind mount of its file: its root is the
# Debian 13 root itself (pivot_root), not a chroot inside this machine's. The kernel lets
# no chrooted process make a user namespace, and bubblewrap needs one for every job of a
# user other than root (tests/integration/test_multiuser.py).
NS_DIR=$DIR/ns
NS=$NS_DIR/mnt

# Whether the root's mount namespace is made (its file is a pinned namespace).
namespace_up() { findmnt -n -o FSTYPE "$NS" 2>/dev/null | grep -qx nsfs; }

make_namespace() {
    if namespace_up; then
        return
    fi
    mkdir -p "$NS_DIR"
    if ! mountpoint -q "$NS_DIR"; then   # unshare pins a namespace only on a private mount
        mount --bind "$NS_DIR" "$NS_DIR"
        mount --make-private "$NS_DIR"
    fi
    touch "$NS"
    unshare --mount="$NS" --propagation private sh -c \
        'cd "$1" && mkdir -p .oldroot && pivot_root . .oldroot && umount -l /.oldroot' \
        sh "$ROOT" || die "could not make the root's mount namespace"
}

# Run a command in the root (its mount namespace; root and working directory /).
inside() { nsenter --mount="$NS" /usr/bin/env -i "${INNER_ENV[@]}" "$@"; }

install_packages() {
    if [ "$(cat "$ROOT/.gw-deps" 2>/dev/null)" = "$(deps_stamp)" ]; then
        return
    fi
    log "installing the project's packages in the root (Debian 13's Slurm 24.11)"
    inside bash "$REPO/scripts/install-deps.sh"
    deps_stamp > "$ROOT/.gw-deps"
}

install_venv() {
    local stamp
    # Editable: it points at this checkout, so another checkout (CI's clone) installs again.
    stamp="$(sha256sum "$REPO/pyproject.toml" | cut -c1-16) $REPO"
    if [ "${1:-}" != force ] && [ -x "$ROOT$VENV/bin/gw" ] \
            && [ "$(cat "$ROOT$VENV/.gw-installed" 2>/dev/null)" = "$stamp" ]; then
        return
    fi
    log "installing gw into the root's virtualenv $VENV ($(inside python3 --version))"
    inside python3 -m venv "$VENV"
    # Editable, as scripts/setup.sh installs it: the tests run the checkout's own code.
    if ! inside "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$REPO[test]" \
            > "$DIR/venv.log" 2>&1; then
        tail -20 "$DIR/venv.log" >&2
        die "pip install of gw in the root failed (log: $DIR/venv.log)"
    fi
    echo "$stamp" > "$ROOT$VENV/.gw-installed"
}

cmd_start() {
    make_root
    mount_all
    install_packages
    trust_local_cas
    install_venv
    inside bash "$REPO/scripts/cluster.sh" start "$@"
}

cmd_stop() {
    if namespace_up; then
        inside bash "$REPO/scripts/cluster.sh" stop || true
    fi
    unmount_all
    log "stopped (the root stays in $ROOT for the next start)"
}

cmd_run() {
    [ "$#" -gt 0 ] || die "run needs a command"
    namespace_up || die "the root is not started: scripts/slurm-root.sh start"
    case $PWD in
        "$REPO"|"$REPO"/*|/tmp|/tmp/*) ;;
        *) die "run from within $REPO (the only directory the root shares)" ;;
    esac
    inside bash -c 'cd "$0" && exec "$@"' "$PWD" "$@"
}

command=${1:-}
[ "$#" -gt 0 ] && shift
case $command in
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) namespace_up || die "the root is not started"
            inside bash "$REPO/scripts/cluster.sh" status ;;
    run) cmd_run "$@" ;;
    venv) make_root; mount_all; install_packages; trust_local_cas; install_venv force ;;
    *) echo "usage: $0 start [--nodes N] | stop | status | run CMD [ARG...] | venv" >&2
       exit 2 ;;
esac
