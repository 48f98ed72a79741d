#!/usr/bin/env bash
# A real Slurm cluster on this machine (Debian 12's 22.05; 24.11 with --slurm) for tests,
# CI and the quickstart: munged + MariaDB + slurmdbd + slurmctld + slurmd, all private to
# this project.
#
#   scripts/cluster.sh start [--nodes N]
#                                start what is not running (idempotent), wait until usable.
#                                One node (the default) is this machine, on 127.0.0.1. With
#                                N > 1, each node is a slurmd in a network namespace of its
#                                own (its own address on a private bridge and a real node
#                                name, <cluster>node1..N), all under one slurmctld: what a
#                                multi-node job needs (srun across nodes, ranks that talk
#                                over the network). The count is kept until a start names
#                                another.
#   scripts/cluster.sh stop      cancel running jobs, stop every daemon it started
#   scripts/cluster.sh restart   stop + start (accounting and state persist)
#   scripts/cluster.sh status    one line per daemon; exit 1 if any is down
#   scripts/cluster.sh env       prints `export SLURM_CONF=...` for clients: eval "$(... env)"
#   scripts/cluster.sh --slurm 24.11 start|stop|restart|status
#                                the same cluster with Debian 13's Slurm 24.11, in a Debian 13
#                                root (scripts/slurm-root.sh; run commands there with
#                                `scripts/slurm-root.sh run CMD`)
#
# Everything (config, keys, logs, pid files, spool, the MariaDB datadir and sockets) lives
# in $GW_CLUSTER_DIR (default /var/lib/gw-cluster). Nothing under /etc is written and the
# machine's own munge/MariaDB/Slurm services are neither used nor touched: the daemons here
# use their own key, sockets and ports. Clients only need SLURM_CONF; they find the private
# munge socket through `AuthInfo=socket=...` in slurm.conf. start/stop/restart need root.
set -euo pipefail

DIR=$(realpath -m "${GW_CLUSTER_DIR:-/var/lib/gw-cluster}")
CLUSTER_NAME=${GW_CLUSTER_NAME:-gw}
CTLD_PORT=${GW_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${GW_SLURMD_PORT:-6818}
DBD_PORT=${GW_SLURMDBD_PORT:-6819}
DB_PORT=${GW_MARIADB_PORT:-3307}
START_TIMEOUT=${GW_CLUSTER_START_TIMEOUT:-90}   # seconds, per waiting step
NODE_NET=${GW_NODE_NET:-10.231.0}   # the nodes' /24 when N > 1: the bridge is .1, node i .(10+i)

ETC=$DIR/etc
RUN=$DIR/run
LOG=$DIR/log
STATE=$DIR/state
CONF=$ETC/slurm.conf
MUNGE_SOCKET=$RUN/munge/munge.socket.2
DB_SOCKET=$RUN/mysqld.sock
NODE=$(hostname -s)
NODE_COUNT_FILE=$DIR/nodes

# The daemons, in start order; stop goes in reverse. slurmd is one per node.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

# How many nodes this cluster has: as the last start made it (1 before any).
node_count() {
    local n
    n=$(cat "$NODE_COUNT_FILE" 2>/dev/null || echo 1)
    [[ "$n" =~ ^[1-9][0-9]?$ ]] || n=1
    printf '%s\n' "$n"
}
NODE_COUNT=$(node_count)

# The names of the compute nodes, one per line.
node_names() {
    local i
    if [ "$NODE_COUNT" = 1 ]; then
        printf '%s\n' "$NODE"
        return
    fi
    for i in $(seq 1 "$NODE_COUNT"); do printf '%snode%s\n' "$CLUSTER_NAME" "$i"; done
}

# A multi-node cluster's network: a bridge on this machine (.1, where the nodes reach
# slurmctld) and per node a namespace named as the node, joined by a veth pair whose end
# inside is eth0. Interface names are at most 15 characters.
BRIDGE=${CLUSTER_NAME:0:8}br0
veth_of() { printf '%sv%s' "${CLUSTER_NAME:0:8}" "$1"; }
node_addr() { printf '%s.%s' "$NODE_NET" "$((10 + $1))"; }
# From a node's namespace, 127.0.0.1 is the node's own loopback.
ctld_addr() { if [ "$NODE_COUNT" = 1 ]; then echo 127.0.0.1; else echo "$NODE_NET.1"; fi; }

export SLURM_CONF=$CONF

log() { printf 'cluster: %s\n' "$*" >&2; }

# The installed Slurm's release, as "MAJOR MINOR" (e.g. "22 5" for 22.05.8).
slurm_release() {
    slurmd -V 2>/dev/null | awk '{split($2, v, "."); print v[1] + 0, v[2] + 0}'
}

# slurm_at_least MAJOR MINOR: whether the installed Slurm is that release or newer.
slurm_at_least() {
    local major minor
    read -r major minor <<< "$(slurm_release)"
    [ "${major:-0}" -gt "$1" ] || { [ "${major:-0}" -eq "$1" ] && [ "${minor:-0}" -ge "$2" ]; }
}

die() {
    # die MESSAGE [LOGFILE...]: print the message and the tail of each log, exit 1.
    local msg=$1
    shift
    log "ERROR: $msg"
    local f
    for f in "$@"; do
        if [ -s "$f" ]; then
            printf '\n--- last lines of %s ---\n' "$f" >&2
            tail -n 25 "$f" >&2
        fi
    done
    exit 1
}

now() { date +%s.%N; }

pidfile() { printf '%s/%s.pid' "$RUN" "$1"; }

daemon_log() { printf '%s/%s.log' "$LOG" "$1"; }

# Prints the pid of our running daemon NAME, or fails. A pid file alone is not trusted: the
# process must be alive and be the expected program (a stale pid may be reused).
# daemon_pid NAME [PROGRAM]: PROGRAM (default NAME) is what the process must be.
daemon_pid() {
    local name=$1 program=${2:-${1%%-*}} pid comm
    pid=$(cat "$(pidfile "$name")" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$program" ] || return 1
    alive "$pid" || return 1
    printf '%s\n' "$pid"
}

is_running() { daemon_pid "$@" > /dev/null; }

# True while PID exists and is not a zombie (a stopped daemon lingers as one until the
# container's PID 1 reaps it). Reads /proc rather than `kill -0`, which succeeds on zombies
# and fails for non-root callers of `status`.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# launch NAME COMMAND...: start a daemon in the foreground, detached into its own session
# (no terminal, immune to the caller's Ctrl-C or process-group kill), its stdout/stderr
# appended to log/NAME.out (early errors, before its log file is open, land there). Every
# daemon here runs in foreground mode, so $! is the daemon itself and a failed start is
# seen at once instead of after a timeout. fd 9 (the lock) is closed: a daemon that
# inherited it would hold the lock for its whole life.
declare -A LAUNCHED=()
launch() {
    local name=$1
    shift
    rm -f "$(pidfile "$name")"
    # Non-interactive bash puts background children in its own process group, so setsid
    # need not fork and $! is the daemon's pid.
    setsid "$@" < /dev/null >> "$LOG/$name.out" 2>&1 9>&- &
    LAUNCHED[$name]=$!
}

# wait_for SECONDS DAEMON COMMAND...: retry COMMAND every 0.1 s until it succeeds. Gives up
# after SECONDS, or at once when DAEMON (launched just now) has exited.
wait_for() {
    local limit=$1 daemon=$2
    shift 2
    local deadline=$(( $(date +%s) + limit )) pid=${LAUNCHED[$daemon]:-}
    until "$@" > /dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            return 1
        fi
        if [ -n "$pid" ] && ! alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            log "$daemon exited during start"
            return 1
        fi
        sleep 0.1
    done
}

# fail NAME MESSAGE: die with the tail of NAME's console output. In the foreground the
# Slurm daemons copy their log to stderr, so NAME.out also has errors from before the
# log file was opened (a bad slurm.conf); mariadbd writes its errors to mariadbd.log only.
fail() {
    if [ "$1" = mariadbd ]; then
        die "$2" "$LOG/mariadbd.out" "$(daemon_log mariadbd)"
    fi
    die "$2" "$LOG/$1.out"
}

# ---------------------------------------------------------------------------------------
# Configuration (regenerated on every start from the GW_* variables and the machine's size)
# ---------------------------------------------------------------------------------------

# Write CONTENT (stdin) to FILE with MODE, only replacing it when the content changed.
write_file() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat > "$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        [ -f "$file" ] && CHANGED_FILES+=("$(basename "$file")")
        mv -f "$tmp" "$file"
    fi
}
CHANGED_FILES=()

make_dirs() {
    # Unix socket paths are limited to 107 bytes; a long GW_CLUSTER_DIR would make munged
    # and mariadbd fail with obscure errors.
    if [ "${#MUNGE_SOCKET}" -gt 100 ] || [ "${#DB_SOCKET}" -gt 100 ]; then
        die "GW_CLUSTER_DIR is too long for unix socket paths: $DIR"
    fi
    # umask 022: munged refuses sockets/keys in group- or world-writable directories.
    umask 022
    mkdir -p "$DIR" "$ETC" "$RUN/munge" "$LOG" "$STATE/munge" "$STATE/slurmctld" \
        "$STATE/slurmd" "$STATE/mysql"
    chmod 0755 "$DIR" "$ETC" "$RUN" "$RUN/munge" "$LOG" "$STATE"
    chmod 0700 "$STATE/munge" "$STATE/mysql"
}

write_config() {
    local cpus mem_kib real_mem def_mem
    cpus=$(nproc)
    mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # ~90% of MemTotal: slurmd drains a node whose RealMemory exceeds what it detects.
    real_mem=$(( mem_kib * 9 / 10 / 1024 ))
    # Memory of a job that gives no --mem: without a default Slurm allocates the whole
    # node, so every job would run alone. 1 GiB per CPU (less on a tiny machine).
    def_mem=$(( real_mem / cpus < 1024 ? real_mem / cpus : 1024 ))
    local nodes
    nodes=$(node_names | paste -sd, -)

    # munge key: created once, private to this cluster (never /etc/munge/munge.key).
    if [ ! -s "$ETC/munge.key" ]; then
        head -c 1024 /dev/urandom > "$ETC/munge.key.tmp"
        chmod 0400 "$ETC/munge.key.tmp"
        mv -f "$ETC/munge.key.tmp" "$ETC/munge.key"
    fi
    # MariaDB password of the `slurm` database user, created once.
    if [ ! -s "$ETC/db.pass" ]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=\n' > "$ETC/db.pass")
    fi

    write_file "$ETC/my.cnf" 0644 <<EOF
# Generated by scripts/cluster.sh: the cluster's private MariaDB (not the machine's own).
[client]
socket = $DB_SOCKET
port = $DB_PORT

[mysqld]
user = root
datadir = $STATE/mysql
socket = $DB_SOCKET
pid-file = $(pidfile mariadbd)
log-error = $(daemon_log mariadbd)
port = $DB_PORT
bind-address = 127.0.0.1
skip-name-resolve
skip-log-bin
# Small enough for a test machine, big enough that slurmdbd does not warn (it wants at
# least half of its recommended 1 GiB buffer pool and a 900 s lock wait).
innodb_buffer_pool_size = 512M
innodb_log_file_size = 64M
innodb_lock_wait_timeout = 900
innodb_flush_log_at_trx_commit = 2
max_connections = 50
performance_schema = OFF
EOF

    # slurmdbd.conf holds the DB password: mode 0600, owned by SlurmUser (root), or
    # slurmdbd refuses it. slurmdbd finds it next to $SLURM_CONF.
    write_file "$ETC/slurmdbd.conf" 0600 <<EOF
# Generated by scripts/cluster.sh: do not edit, set GW_* variables instead.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$(daemon_log slurmdbd)
PidFile=$(pidfile slurmdbd)
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$ETC/db.pass")
StorageLoc=slurm_acct_db
EOF

    # No PlugStackConfig of the machine's /etc/slurm: an empty one of our own.
    write_file "$ETC/plugstack.conf" 0644 < /dev/null
    # No cgroups here (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none); from Slurm
    # 23.02 on, slurmd still initialises its cgroup plugin unless told it is disabled, and
    # fails where /sys/fs/cgroup is not mounted (a chroot). 22.05 knows no "disabled".
    if slurm_at_least 23 2; then
        write_file "$ETC/cgroup.conf" 0644 <<< "CgroupPlugin=disabled"
    fi

    write_file "$CONF" 0644 <<EOF
# Generated by scripts/cluster.sh: do not edit, set GW_* variables instead.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE($(ctld_addr))
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: how long a requeued job waits before it may start again (Slurm's default,
# 120 s, is what sites run; 30 s here keeps the preemption and lost-node tests short).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=30
CredType=cred/munge
PlugStackConfig=$ETC/plugstack.conf

StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd$(slurmd_suffix)
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$RUN/slurmd$(slurmd_suffix).pid
SlurmctldLogFile=$(daemon_log slurmctld)
SlurmdLogFile=$LOG/slurmd$(slurmd_suffix).log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: works in containers and without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true

# Cores and memory are consumable: --mem is accounted and oversized requests are refused.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
# Jobs of a higher PriorityTier partition requeue those of a lower one in their way.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE

# Accounting through slurmdbd, so sacct works as on every real cluster.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# Clients and slurmctld authenticate to slurmdbd with the munge socket named here, not
# AuthInfo (Slurm's "global" munge for multi-cluster setups): same private munged.
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
# No cgroups here, so --mem is enforced from accounting samples: a step over its memory is
# killed (FAILED with signal 9 and "Exceeded job memory limit" in its log; with cgroups,
# clusters record OUT_OF_MEMORY). spool/reconcile.py reads that line.
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/none
# sacct shows each job's --comment: the gateway's identity of the job, by which a job
# whose submission answer was lost is adopted (gateway/slurm/adapter.py SACCT_FIELDS).
AccountingStoreFlags=job_comment

# Short timeouts for a test cluster; finished jobs stay in squeue for MinJobAge seconds.
KillWait=5
MinJobAge=300
InactiveLimit=0
Waittime=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
ReturnToService=2
# At least 5 x MessageTimeout (Slurm 24.11 warns that nodes may go down otherwise).
UnkillableStepTimeout=60

$(node_lines "$cpus" "$real_mem")
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP PreemptMode=OFF
# A partition with a time limit, as most clusters have (tests refuse --time beyond it).
PartitionName=short Nodes=$nodes MaxTime=00:30:00 State=UP PreemptMode=OFF
# A preemptible partition and one that takes its nodes back, as sites run spare GPUs: a
# job on "urgent" requeues the jobs of "scavenger" in its way (docs/resume.md).
PartitionName=scavenger Nodes=$nodes MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=urgent Nodes=$nodes MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    # What a site's TaskProlog does for its interconnect: in each namespace the nodes'
    # network is eth0 (this machine's host name resolves to no address there), so the
    # communication libraries are told the interface. gw passes such variables into the
    # container (docs/distributed.md).
    if [ "$NODE_COUNT" -gt 1 ]; then   # the nodes' /etc/hosts (start_slurmd)
        {
            echo "# Generated by scripts/cluster.sh: the nodes of cluster $CLUSTER_NAME, then the machine's."
            printf '%s %s\n' "$(ctld_addr)" "$NODE"
            local i=0 name
            for name in $(node_names); do
                i=$((i + 1))
                printf '%s %s\n' "$(node_addr "$i")" "$name"
            done
            cat /etc/hosts
        } | write_file "$ETC/hosts" 0644
    fi
    write_file "$ETC/task_prolog.sh" 0755 <<'PROLOG'
#!/bin/sh
echo "export GLOO_SOCKET_IFNAME=eth0"
echo "export NCCL_SOCKET_IFNAME=eth0"
PROLOG
}

# The per-node part of a slurmd's paths: none with one node, "-<node name>" with more
# (Slurm puts the node's name for %n).
slurmd_suffix() { if [ "$NODE_COUNT" -gt 1 ]; then printf -- '-%%n'; fi; }

# NodeName lines: this machine on 127.0.0.1, or each namespace node on its own address.
node_lines() {
    local cpus=$1 mem=$2 i=0 name
    if [ "$NODE_COUNT" = 1 ]; then
        echo "NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN"
        return
    fi
    echo "TaskProlog=$ETC/task_prolog.sh"
    for name in $(node_names); do
        i=$((i + 1))
        echo "NodeName=$name NodeAddr=$(node_addr "$i") CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    done
}

# ---------------------------------------------------------------------------------------
# Daemons
# ---------------------------------------------------------------------------------------

munge_ok() { munge -S "$MUNGE_SOCKET" -n | unmunge -S "$MUNGE_SOCKET"; }

db_ok() { mariadb-admin --defaults-file="$ETC/my.cnf" -uroot ping; }

dbd_ok() { sacctmgr -n -P show cluster format=cluster; }

ctld_ok() { [[ "$(scontrol ping 2>/dev/null)" == *"is UP"* ]]; }

start_munged() {
    if ! is_running munged; then
        rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
        # In the foreground munged logs to stderr, not to --log-file: munged.out is its log.
        launch munged munged --foreground --key-file="$ETC/munge.key" \
            --socket="$MUNGE_SOCKET" --pid-file="$(pidfile munged)" \
            --seed-file="$STATE/munge/munged.seed"
    fi
    wait_for "$START_TIMEOUT" munged munge_ok || fail munged "munged does not answer"
}

start_mariadbd() {
    if ! is_running mariadbd; then
        if [ ! -d "$STATE/mysql/mysql" ]; then
            log "initialising the MariaDB datadir $STATE/mysql"
            mariadb-install-db --defaults-file="$ETC/my.cnf" --user=root --skip-test-db \
                --auth-root-authentication-method=socket > "$LOG/mariadb-install-db.log" 2>&1 \
                || die "mariadb-install-db failed" "$LOG/mariadb-install-db.log"
        fi
        launch mariadbd mariadbd --defaults-file="$ETC/my.cnf"
    fi
    wait_for "$START_TIMEOUT" mariadbd db_ok || fail mariadbd "mariadbd does not answer"
    # mariadbd writes its pid file 0660: let non-root `cluster.sh status` read it.
    chmod 0644 "$(pidfile mariadbd)" 2>/dev/null || true
    # The database user of slurmdbd (idempotent; root logs in through the unix socket).
    local pass
    pass=$(cat "$ETC/db.pass")
    mariadb --defaults-file="$ETC/my.cnf" -uroot <<EOF || fail mariadbd "creating the slurm database user failed"
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

start_slurmdbd() {
    # slurmdbd has no config-file option: it reads slurmdbd.conf next to $SLURM_CONF.
    is_running slurmdbd || launch slurmdbd slurmdbd -D
    wait_for "$START_TIMEOUT" slurmdbd dbd_ok || fail slurmdbd "slurmdbd does not answer"
    # The cluster must exist in accounting before slurmctld registers, or sacct shows nothing.
    if ! sacctmgr -n -P show cluster format=cluster | grep -x "$CLUSTER_NAME" > /dev/null; then
        log "registering cluster $CLUSTER_NAME in accounting"
        sacctmgr -i add cluster "$CLUSTER_NAME" > /dev/null \
            || fail slurmdbd "sacctmgr add cluster failed"
    fi
}

start_slurmctld() {
    is_running slurmctld || launch slurmctld slurmctld -D -f "$CONF"
    wait_for "$START_TIMEOUT" slurmctld ctld_ok || fail slurmctld "slurmctld does not answer"
}

start_slurmd() {
    local name i=0
    if [ "$NODE_COUNT" = 1 ]; then
        is_running slurmd || launch slurmd slurmd -D -f "$CONF" -N "$NODE"
        return
    fi
    # nsenter, not `ip netns exec`: that remounts /sys, and slurmd then fails on cgroups.
    # nsenter, unshare and sh exec in turn, so the pid launched is the daemon's. Each node
    # sees the cluster's hosts file (every node by name, as a real cluster's /etc/hosts
    # or DNS has them): Slurm 24.11 looks up the address of every peer, and from a node's
    # namespace the machine's name server cannot be reached (10 s per lookup otherwise).
    for name in $(node_names); do
        i=$((i + 1))
        is_running "slurmd-$name" slurmd \
            || launch "slurmd-$name" nsenter --net="/run/netns/$name" unshare --mount sh -c \
                'mount --bind "$1" /etc/hosts && exec slurmd -D -f "$2" -N "$3"' \
                sh "$ETC/hosts" "$CONF" "$name"
    done
}

# The bridge, and per node its namespace, veth pair and address (idempotent).
start_network() {
    local name i=0 veth
    if ! ip link show "$BRIDGE" > /dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$NODE_NET.1/24" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
    for name in $(node_names); do
        i=$((i + 1))
        veth=$(veth_of "$i")
        [ -e "/run/netns/$name" ] || ip netns add "$name"
        if ! ip link show "$veth" > /dev/null 2>&1; then
            ip link add "$veth" type veth peer name eth0 netns "$name"
            ip link set "$veth" master "$BRIDGE" up
            ip -n "$name" addr add "$(node_addr "$i")/24" dev eth0
        fi
        ip -n "$name" link set lo up
        ip -n "$name" link set eth0 up
        ip -n "$name" route replace default via "$NODE_NET.1"
    done
}

# Undo start_network for the nodes of NODE_COUNT (the links go with their namespaces).
stop_network() {
    local name i=0
    [ "$NODE_COUNT" -gt 1 ] || return 0
    for name in $(node_names); do
        i=$((i + 1))
        ip link del "$(veth_of "$i")" 2>/dev/null || true
        ip netns del "$name" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
}

# The slurmd daemons' launch names: "slurmd", or "slurmd-<node>" per node.
slurmd_daemons() {
    local name
    if [ "$NODE_COUNT" = 1 ]; then echo slurmd; return; fi
    for name in $(node_names); do echo "slurmd-$name"; done
}

node_state() { sinfo -h -n "$1" -o '%t' 2>/dev/null | head -n 1; }

# The nodes are usable when slurmctld sees each idle (or running jobs left from before).
node_ready() {
    local name
    for name in $(node_names); do
        case "$(node_state "$name")" in
            idle | mix | alloc | comp) ;;
            *) return 1 ;;
        esac
    done
}

cmd_start() {
    local t0 t1 d ctld_was_running=0
    t0=$(now)
    is_running slurmctld && ctld_was_running=1
    make_dirs
    write_config
    # The nodes' network first: slurmctld's address is on its bridge.
    if [ "$NODE_COUNT" -gt 1 ]; then start_network; fi
    for d in "${DAEMONS[@]}"; do
        "start_$d"
    done
    # Already-running daemons keep their settings: slurm.conf changes are applied with
    # `scontrol reconfigure`; the rest (ports, database) need `cluster.sh restart`.
    if [ "${#CHANGED_FILES[@]}" -gt 0 ] && [ "$ctld_was_running" = 1 ]; then
        log "configuration changed while running: ${CHANGED_FILES[*]}"
        if [[ " ${CHANGED_FILES[*]} " == *" slurm.conf "* ]]; then
            scontrol reconfigure || log "scontrol reconfigure failed"
        fi
        log "run 'cluster.sh restart' if a port or a database setting changed"
    fi
    if ! wait_for "$START_TIMEOUT" "$(slurmd_daemons | head -n 1)" node_ready; then
        sinfo -N -l >&2 || true
        scontrol show node 2>/dev/null | grep -E 'NodeName=|State=|Reason=' >&2 || true
        die "the nodes are not idle: $(sinfo -h -N -o '%N %t' | paste -sd, -)" \
            $(for d in $(slurmd_daemons); do echo "$LOG/$d.out"; done) "$LOG/slurmctld.out"
    fi
    t1=$(now)
    log "up in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')s:" \
        "cluster $CLUSTER_NAME, nodes $(node_names | paste -sd, -) ($(nproc) CPUs each)," \
        "SLURM_CONF=$CONF"
}

# Processes of ours that outlive slurmd: slurmstepd inherits slurmd's environment, so
# SLURM_CONF=$CONF identifies the step daemons of this cluster.
our_stepds() {
    local p root
    # Its root directory too: a cluster in a Debian 13 root (--slurm 24.11) has the same
    # SLURM_CONF path as one on this machine's own root, and sees the same processes.
    root=$(stat -L -c %d:%i /proc/self/root)
    for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
        alive "$p" || continue
        [ "$(stat -L -c %d:%i "/proc/$p/root" 2>/dev/null)" = "$root" ] || continue
        if tr '\0' '\n' 2>/dev/null < "/proc/$p/environ" | grep -xF "SLURM_CONF=$CONF" > /dev/null; then
            printf '%s\n' "$p"
        fi
    done
}

# All descendants of PID (children first listed after their parent).
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null || true); do
        printf '%s\n' "$child"
        descendants "$child"
    done
}

# stop_daemons NAME...: SIGTERM to all of them at once, wait up to 15 s, then SIGKILL.
stop_daemons() {
    local name pid any
    local -a pids=()
    for name in "$@"; do
        if pid=$(daemon_pid "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    for _ in $(seq 1 150); do
        any=0
        for pid in "${pids[@]}"; do
            alive "$pid" && any=1
        done
        [ "$any" = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do
        if alive "$pid"; then
            log "$(cat "/proc/$pid/comm" 2>/dev/null) ($pid) ignored SIGTERM for 15s, killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for name in "$@"; do
        rm -f "$(pidfile "$name")"
    done
}

cmd_stop() {
    local ids p
    # Cancel running jobs first so slurmstepd and job processes end cleanly (and are
    # recorded as CANCELLED); pending jobs stay queued for the next start.
    if is_running slurmctld && [[ "$(timeout 10 scontrol ping 2>/dev/null)" == *"is UP"* ]]; then
        ids=$(timeout 10 squeue -h -t RUNNING,SUSPENDED,CONFIGURING -o '%A' 2>/dev/null \
            | tr '\n' ' ' || true)
        if [ -n "${ids// /}" ]; then
            log "cancelling running jobs: $ids"
            # shellcheck disable=SC2086
            timeout 10 scancel $ids 2>/dev/null || true
            for _ in $(seq 1 75); do
                [ -z "$(timeout 10 squeue -h -t RUNNING,COMPLETING,SUSPENDED -o '%A' 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    # Reverse start order, in three waves: slurmdbd still needs MariaDB (it flushes on
    # exit); the daemons within a wave don't depend on each other.
    # shellcheck disable=SC2046
    stop_daemons $(slurmd_daemons) slurmctld
    stop_network
    stop_daemons slurmdbd
    stop_daemons mariadbd munged
    # Steps that outlived slurmd (e.g. slurmctld was dead, so no scancel): kill each
    # slurmstepd with the job processes below it (proctrack/linuxproc tracks them the same
    # way, by parentage).
    for p in $(our_stepds); do
        log "killing leftover slurmstepd $p and its job processes"
        # shellcheck disable=SC2046
        kill -KILL $(descendants "$p") "$p" 2>/dev/null || true
    done
    log "stopped"
}

cmd_status() {
    local d pid down=0
    for d in munged mariadbd slurmdbd slurmctld $(slurmd_daemons); do
        if pid=$(daemon_pid "$d"); then
            printf '%-10s running (pid %s)\n' "$d" "$pid"
        else
            printf '%-10s DOWN\n' "$d"
            down=1
        fi
    done
    if is_running slurmctld; then
        for d in $(node_names); do
            printf '%-10s %s\n' node "$d $(node_state "$d" || true)"
        done
    fi
    printf '%-10s %s\n' SLURM_CONF "$CONF"
    return "$down"
}

cmd_env() {
    printf 'export SLURM_CONF=%q\n' "$CONF"
}

usage() {
    echo "usage: $0 [--slurm 24.11] start|restart [--nodes N] | stop|status|env" >&2
    exit 2
}

# --slurm RELEASE: the cluster of another Slurm release, in a root of the Debian release
# that ships it (scripts/slurm-root.sh). This machine's own is what Debian 12 ships, 22.05.
if [ "${1:-}" = --slurm ]; then
    [ $# -ge 3 ] || usage
    case $2 in
        22.05) shift 2 ;;
        24.11)
            case $3 in
                start | stop | status) exec bash "$(dirname "${BASH_SOURCE[0]}")/slurm-root.sh" "${@:3}" ;;
                restart) bash "$(dirname "${BASH_SOURCE[0]}")/slurm-root.sh" stop
                         exec bash "$(dirname "${BASH_SOURCE[0]}")/slurm-root.sh" start "${@:4}" ;;
                *) echo "cluster: --slurm 24.11 runs in a Debian 13 root: start, stop, restart, status; commands run there with scripts/slurm-root.sh run" >&2
                   exit 2 ;;
            esac ;;
        *) echo "cluster: --slurm takes 22.05 (this machine's) or 24.11 (a Debian 13 root), not '$2'" >&2
           exit 2 ;;
    esac
fi

[ $# -ge 1 ] || usage
ACTION=$1
shift
WANT_NODES=
while [ $# -gt 0 ]; do
    case $1 in
        --nodes) [ $# -ge 2 ] || usage; WANT_NODES=$2; shift 2 ;;
        --nodes=*) WANT_NODES=${1#--nodes=}; shift ;;
        *) usage ;;
    esac
done
case $ACTION in
    env) cmd_env; exit 0 ;;
    start | restart) ;;
    stop | status) [ -z "$WANT_NODES" ] || usage ;;
    *) usage ;;
esac
if [ -n "$WANT_NODES" ] && ! [[ "$WANT_NODES" =~ ^[1-9][0-9]?$ ]]; then
    echo "cluster: --nodes wants a count from 1 to 99, not '$WANT_NODES'" >&2
    exit 2
fi
set -- "$ACTION"

if [ "$1" = status ]; then
    cmd_status
    exit
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "cluster: $1 must run as root" >&2
    exit 1
fi

# One start/stop at a time per cluster directory (parallel test runs may all call start).
# Every daemon is started with fd 9 closed (`9>&-`): a daemon that inherited it would hold
# the lock for its whole life and the next start/stop would wait forever.
mkdir -p "$DIR"
exec 9> "$DIR/.lock"
flock 9

# A start that names another node count stops the cluster as it is first (slurmctld
# cannot take nodes away while running), then starts it with the new nodes.
set_node_count() {
    if [ -n "$WANT_NODES" ] && [ "$WANT_NODES" != "$NODE_COUNT" ]; then
        if is_running slurmctld; then
            log "changing from $NODE_COUNT to $WANT_NODES nodes"
            cmd_stop
        fi
        stop_network
        echo "$WANT_NODES" > "$NODE_COUNT_FILE"
        NODE_COUNT=$WANT_NODES
    fi
}

case $1 in
    start) set_node_count; cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; set_node_count; cmd_start ;;
esac
