#!/usr/bin/env bash
# Installs the Debian 12 or 13 system packages hpc-gateway needs (Slurm + slurmdbd + MariaDB +
# munge for the local cluster; bubblewrap, squashfs-tools, squashfs-tools-ng (tar2sqfs),
# squashfuse, fuse3, siftool, skopeo, umoci for containers; debootstrap and busybox-static
# for test images; bindfs for the FUSE view of the spool that the watcher's polling test
# needs; ruby and chromium for the Open OnDemand app's tests; openssh-server for `gw --host`'s) and makes /dev/fuse usable
# by job users. Run as root. Idempotent: apt is skipped entirely when everything is present.
# Starts no services: scripts/cluster.sh runs its own private daemons.
set -euo pipefail

PACKAGES=(
    slurm-wlm slurmdbd munge mariadb-server
    bubblewrap squashfs-tools squashfs-tools-ng squashfuse fuse3 siftool skopeo umoci
    debootstrap docker-registry busybox-static ca-certificates python3-venv
    bindfs  # tests/faults: a spool view inotify cannot see into, as on NFS
    procps  # pgrep in cluster.sh (pulled in by mariadb-server anyway)
    ruby chromium  # tests: Open OnDemand's ERB rendered by real Ruby; its view drawn
    chromium-driver  # tests: the dashboard driven in headless Chromium (Selenium)
    fonts-wqy-microhei  # the dashboard's Chinese state names (制作中) in its screenshots
    openssh-server openssh-client  # tests: `gw --host` against a real sshd on localhost
)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    # "install ok installed" is the only state that counts (not "config-files", "half-installed").
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages like mariadb-server and munge try to start their service in postinst. Forbid
    # that with a policy-rc.d that answers 101 ("action forbidden"). On exit the machine's
    # own policy-rc.d (Docker images ship one) is put back, or ours is removed.
    policy=/usr/sbin/policy-rc.d
    if [ -e "$policy" ]; then
        cp -p "$policy" "$policy.gw-saved"
        trap 'mv -f "$policy.gw-saved" "$policy"' EXIT
    else
        trap 'rm -f "$policy"' EXIT
    fi
    printf '#!/bin/sh\n# written by hpc-gateway scripts/install-deps.sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    log=$(mktemp /tmp/gw-install-deps.XXXXXX.log)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}"; } > "$log" 2>&1; then
        echo "install-deps: apt-get failed; last lines of $log:" >&2
        tail -40 "$log" >&2
        exit 1
    fi
    rm -f "$log"
else
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
fi

# FUSE (squashfuse mounts of SIF images) must be usable by the job's user, not only root.
if [ ! -e /dev/fuse ]; then
    mknod -m 0666 /dev/fuse c 10 229
fi
chmod 0666 /dev/fuse
