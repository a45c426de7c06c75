#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's slurm-wlm and munge, for trying and
# testing `mlpx -m hydra/launcher=slurm ...` (docs/sweeps.md, "Many workers on a cluster").
#
#   apt-get install -y slurm-wlm munge          # Debian/Ubuntu, as root
#   sudo tools/slurm_cluster.sh start           # munged, slurmctld, slurmd; prints the export
#   export SLURM_CONF=/tmp/mlpx-slurm/slurm.conf
#   sinfo; srun hostname                        # partition main: one node, this host, idle
#   sudo tools/slurm_cluster.sh stop            # stops the three daemons (files are kept)
#   tools/slurm_cluster.sh status               # exit status 0 when the cluster answers
#
# Everything lives in one folder, MLPX_SLURM_DIR (default /tmp/mlpx-slurm): its own munge
# key and socket, slurm.conf, spool and state folders, logs and pid files. Nothing in /etc
# or /run is changed, and the ports are MLPX_SLURM_CTLD_PORT/MLPX_SLURM_D_PORT (6917/6918,
# not SLURM's 6817/6818), so it does not disturb a system munge or SLURM; clients find the
# cluster through SLURM_CONF (sbatch passes it on to the jobs). `start` on a folder that
# has a slurm.conf and key reuses them; remove the folder for a fresh cluster.
#
# The node is this host with the CPUs and memory that `slurmd -C` detects. Process tracking
# is proctrack/linuxproc and there is no task plugin (task/none) and no cgroup.conf, so it
# runs in containers without a writable cgroup tree or systemd. There is no accounting
# daemon (slurmdbd): `sacct` answers "Slurm accounting storage is disabled"; submitit warns
# ("Bypassing sacct error") and sees a job end by its result file. The daemons run as root (SlurmUser=root; slurmd must
# be root to start jobs as their users); munged runs as the munge user when there is one.
#
# Exit status of `start`: 0 when the node is idle and a test job ran (`srun true`), 1 with
# the reason and the tail of the failing daemon's log otherwise.
set -euo pipefail

DIR=${MLPX_SLURM_DIR:-/tmp/mlpx-slurm}
CONF=$DIR/slurm.conf
PORT_CTLD=${MLPX_SLURM_CTLD_PORT:-6917}
PORT_D=${MLPX_SLURM_D_PORT:-6918}
PATH=$PATH:/usr/sbin:/sbin

say() { echo "slurm_cluster: $*" >&2; }
die() {
    say "$*"
    exit 1
}

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (slurmd starts jobs as their users): sudo $0 $1"; }

need_binaries() {
    local b missing=()
    for b in munged mungekey slurmctld slurmd sbatch squeue sinfo scontrol srun; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    [ ${#missing[@]} = 0 ] || die "missing ${missing[*]}: apt-get install -y slurm-wlm munge"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

show_log() {
    [ -f "$1" ] && { say "--- last lines of $1:"; tail -n 15 "$1" >&2; }
    return 0
}

start_munge() {
    local m=$DIR/munge user=root
    mkdir -p "$m"
    chmod 0700 "$m"
    [ -f "$m/munge.key" ] || mungekey --create --keyfile="$m/munge.key" --bits=1024
    chmod 0400 "$m/munge.key"
    if id munge >/dev/null 2>&1; then
        user=munge
        chown -R munge: "$m"
    fi
    # The socket's folder must be reachable by every user that submits jobs.
    chmod 0711 "$m"
    pid_alive "$m/munged.pid" && return 0
    rm -f "$m/munge.socket" "$m/munge.socket.lock"
    local cmd=(munged --socket="$m/munge.socket" --key-file="$m/munge.key"
        --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed")
    if [ "$user" = munge ]; then
        runuser -u munge -- "${cmd[@]}" || { show_log "$m/munged.log"; die "munged did not start"; }
    else
        "${cmd[@]}" --force || { show_log "$m/munged.log"; die "munged did not start"; }
    fi
    munge -n --socket="$m/munge.socket" | unmunge --socket="$m/munge.socket" >/dev/null ||
        die "munge does not answer on $m/munge.socket"
}

write_conf() {
    local host node
    host=$(hostname -s)
    # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    node=$(slurmd -C | head -n 1)
    [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    # Leave 1 GB to the system, so jobs asking for the whole memory are refused, not killed.
    node=$(echo "$node" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) {
        split($i, a, "="); m = a[2] - 1024; if (m < 256) m = a[2]; $i = "RealMemory=" m } print}')
    mkdir -p "$DIR/spool/ctld" "$DIR/spool/d" "$DIR/log"
    cat >"$CONF" <<EOF
# Written by tools/slurm_cluster.sh: a one-node cluster on $host.
ClusterName=mlpx
# The daemons talk over 127.0.0.1: no need for the host name to resolve.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT_CTLD
SlurmdPort=$PORT_D
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: plain process tracking, no task containment (works in containers).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
LaunchParameters=use_interactive_step
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

cluster_up() {
    SLURM_CONF=$CONF sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'
}

start() {
    need_root start
    need_binaries
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    start_munge
    [ -f "$CONF" ] || write_conf
    export SLURM_CONF=$CONF
    if ! pid_alive "$DIR/slurmctld.pid"; then
        slurmctld -f "$CONF" || { show_log "$DIR/log/slurmctld.log"; die "slurmctld did not start"; }
    fi
    if ! pid_alive "$DIR/slurmd.pid"; then
        slurmd -f "$CONF" || { show_log "$DIR/log/slurmd.log"; die "slurmd did not start"; }
    fi
    local i
    for i in $(seq 60); do
        cluster_up && break
        pid_alive "$DIR/slurmctld.pid" || { show_log "$DIR/log/slurmctld.log"; die "slurmctld exited"; }
        pid_alive "$DIR/slurmd.pid" || { show_log "$DIR/log/slurmd.log"; die "slurmd exited"; }
        if [ "$i" = 20 ]; then  # a node left DOWN by an earlier run of this folder
            scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
        fi
        sleep 1
    done
    if ! cluster_up; then
        sinfo -N -l >&2 || true
        show_log "$DIR/log/slurmctld.log"
        show_log "$DIR/log/slurmd.log"
        die "the node did not become idle in 60 s"
    fi
    if ! timeout 60 srun -N1 -n1 -t 1 true; then
        show_log "$DIR/log/slurmd.log"
        die "a test job (srun true) failed"
    fi
    say "up: $(sinfo -h -o '%P %D %T %c CPUs %m MB' | head -n 1)"
    echo "export SLURM_CONF=$CONF"
}

stop() {
    local f
    for f in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        if pid_alive "$f"; then
            kill "$(cat "$f")"
            for _ in $(seq 20); do pid_alive "$f" || break; sleep 0.5; done
            pid_alive "$f" && kill -9 "$(cat "$f")"
        fi
        rm -f "$f"
    done
    say "stopped (files kept in $DIR; remove it for a fresh cluster)"
}

status() {
    [ -f "$CONF" ] || die "no cluster in $DIR (start it: sudo $0 start)"
    SLURM_CONF=$CONF sinfo
    cluster_up
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*) die "usage: $0 start|stop|status|env   (folder: MLPX_SLURM_DIR=$DIR)" ;;
esac
