#!/usr/bin/env bash
# Maintained copy of ../shared/slurm/start-local-cluster.sh for ltbench CI (issue 8): .ci/run starts it
# before the `slurm`-marked tests; keep it in sync with the shared one when that changes.
# start-local-cluster.sh - bring up a single-node SLURM cluster on this machine (Debian 12, root, no systemd).
#
# Idempotent: installs slurm-wlm + munge if missing, (re)writes /etc/slurm/slurm.conf, starts munged,
# slurmctld and slurmd if they are not already running, and waits until `sinfo` shows the node idle.
# Safe to run twice; a second run with everything up takes ~0.1 s; from nothing ~11 s.
#
#   bash start-local-cluster.sh            # bring up (prints sinfo at the end)
#   bash stop-local-cluster.sh             # stop the daemons again (by PID)
#
# Environment knobs (all optional):
#   SLURM_LOCAL_CPUS   CPUs advertised for the node (default: nproc)
#   SLURM_LOCAL_MEM_MB RealMemory for the node in MB (default: from `slurmd -C`, minus 1 GiB headroom)
#   SLURM_LOCAL_WAIT   seconds to wait for the node to become idle (default 60)
#   SLURM_LOCAL_KEEP_STATE=1  keep the jobs saved by a controller that is no longer running (default: cleared)
#   SLURM_LOCAL_SACCT_SHIM=0  do not install the /usr/local/bin/sacct shim (see below)
#
# Why a sacct shim: submitit polls job state with plain `sacct`. Without slurmdbd (no accounting
# storage) real sacct exits 1 ("Slurm accounting storage is disabled"); submitit then still finds
# results of jobs that wrote a result pickle, but a job killed by SLURM (timeout, scancel, node
# failure) would leave job.result() waiting forever. The shim answers sacct's
# "-o JobID,State,NodeList --parsable2 -j ID..." form from `scontrol show job` (finished jobs stay
# visible for MinJobAge seconds, set to 3600 below) and hands every other call to the real sacct.
set -euo pipefail

log() { printf '[slurm-localhost] %s\n' "$*"; }
die() { printf '[slurm-localhost] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

NODE="$(hostname -s)"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
WAIT_S="${SLURM_LOCAL_WAIT:-60}"

# ---------------------------------------------------------------- 1. packages
need_pkgs=()
command -v munged    >/dev/null 2>&1 || need_pkgs+=(munge)
command -v slurmctld >/dev/null 2>&1 || need_pkgs+=(slurm-wlm)
command -v slurmd    >/dev/null 2>&1 || need_pkgs+=(slurm-wlm)
command -v sbatch    >/dev/null 2>&1 || need_pkgs+=(slurm-wlm)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing: slurm-wlm munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# ---------------------------------------------------------------- 2. munge
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0700 /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pidfile_pid() { [ -s "$1" ] && cat "$1" || true; }

if pid_alive "$(pidfile_pid /run/munge/munged.pid)" && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running (pid $(pidfile_pid /run/munge/munged.pid))"
else
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge self-test failed (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- 3. slurm.conf
CPUS="${SLURM_LOCAL_CPUS:-$(nproc)}"
if [ -n "${SLURM_LOCAL_MEM_MB:-}" ]; then
    MEM_MB="$SLURM_LOCAL_MEM_MB"
else
    detected="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)"
    detected="${detected:-2048}"
    MEM_MB=$(( detected > 2048 ? detected - 1024 : detected ))
fi

install -d -m 0755 "$CONF_DIR" /var/log/slurm /var/spool/slurmctld /var/spool/slurmd /run/slurm

new_conf="$(mktemp)"
cat >"$new_conf" <<EOF
# Written by start-local-cluster.sh - single-node test cluster, no accounting, no cgroups.
ClusterName=localcluster
SlurmctldHost=${NODE}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=3600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
DefMemPerCPU=1024
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
    install -m 0644 "$new_conf" "$CONF"
    conf_changed=1
    log "wrote $CONF (node $NODE, CPUs=$CPUS, RealMemory=$MEM_MB)"
fi
rm -f "$new_conf"
# No cgroup.conf: with proctrack/linuxproc + task/none slurmd needs none. Do NOT write
# "CgroupPlugin=disabled" - Slurm 22.05 (Debian 12) has no such plugin and slurmd then refuses to start.
if [ -f "$CONF_DIR/cgroup.conf" ] && grep -q '^CgroupPlugin=disabled' "$CONF_DIR/cgroup.conf"; then
    rm -f "$CONF_DIR/cgroup.conf"
fi

# ---------------------------------------------------------------- 4. sacct shim for submitit
if [ "${SLURM_LOCAL_SACCT_SHIM:-1}" = 1 ]; then
    cat >/usr/local/bin/sacct.new <<'EOF'
#!/usr/bin/env bash
# sacct shim (start-local-cluster.sh): no slurmdbd here, so answer the query that submitit makes
# ("sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID ...]") from scontrol; pass anything
# else to the real sacct.
real=/usr/bin/sacct
fmt=""; parsable=0; ids=()
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        -o|--format) fmt="$2"; shift 2 ;;
        --format=*) fmt="${1#--format=}"; shift ;;
        --parsable2|-P) parsable=1; shift ;;
        -j|--jobs) IFS=',' read -r -a more <<<"$2"; ids+=("${more[@]}"); shift 2 ;;
        --jobs=*) IFS=',' read -r -a more <<<"${1#--jobs=}"; ids+=("${more[@]}"); shift ;;
        *) exec "$real" "${args[@]}" ;;
    esac
done
if [ "$fmt" != "JobID,State,NodeList" ] || [ "$parsable" != 1 ] || [ "${#ids[@]}" = 0 ]; then
    exec "$real" "${args[@]}"
fi
echo "JobID|State|NodeList"
for id in "${ids[@]}"; do
    scontrol -o show job "$id" 2>/dev/null | while read -r line; do
        jid=""; aid=""; tid=""; st=""; nl=""
        for kv in $line; do
            case "$kv" in
                JobId=*) jid="${kv#JobId=}" ;;
                ArrayJobId=*) aid="${kv#ArrayJobId=}" ;;
                ArrayTaskId=*) tid="${kv#ArrayTaskId=}" ;;
                JobState=*) st="${kv#JobState=}" ;;
                NodeList=*) nl="${kv#NodeList=}" ;;
            esac
        done
        [ "$nl" = "(null)" ] && nl="None assigned"
        if [ -n "$aid" ] && [ -n "$tid" ]; then
            case "$tid" in
                *[-,%]*) echo "${aid}_[${tid}]|${st}|${nl}" ;;   # pending range, e.g. 12_[2-3]
                *) echo "${aid}_${tid}|${st}|${nl}" ;;
            esac
        else
            echo "${jid}|${st}|${nl}"
        fi
    done
done
EOF
    chmod 0755 /usr/local/bin/sacct.new
    mv -f /usr/local/bin/sacct.new /usr/local/bin/sacct
fi

# ---------------------------------------------------------------- 5. daemons
ctld_pid="$(pidfile_pid /run/slurm/slurmctld.pid)"
if pid_alive "$ctld_pid" && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    log "slurmctld already running (pid $ctld_pid)"
    if [ "$conf_changed" = 1 ]; then log "config changed: scontrol reconfigure"; scontrol reconfigure; fi
else
    rm -f /run/slurm/slurmctld.pid
    log "starting slurmctld"
    # -i: ignore state files that do not match the config (e.g. after a node rename). -c: start with no jobs.
    # The saved state of a controller that is not running holds jobs of daemons that are gone (a previous
    # boot, a machine image): on restart they would show as running for ever and hold the node's CPUs, so
    # every new job (the CI's slurm tests) would wait behind them. SLURM_LOCAL_KEEP_STATE=1 keeps them.
    clear=(-c); [ "${SLURM_LOCAL_KEEP_STATE:-0}" = 1 ] && clear=()
    slurmctld -i "${clear[@]}" || die "slurmctld failed to start (see /var/log/slurm/slurmctld.log)"
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
    scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld did not come up (see /var/log/slurm/slurmctld.log)"
fi

slurmd_pid="$(pidfile_pid /run/slurm/slurmd.pid)"
if pid_alive "$slurmd_pid"; then
    log "slurmd already running (pid $slurmd_pid)"
    if [ "$conf_changed" = 1 ]; then kill "$slurmd_pid"; sleep 1; slurmd_pid=""; fi
fi
if ! pid_alive "$slurmd_pid"; then
    rm -f /run/slurm/slurmd.pid
    log "starting slurmd"
    slurmd || { tail -5 /var/log/slurm/slurmd.log >&2; die "slurmd failed to start (see /var/log/slurm/slurmd.log)"; }
fi

# ---------------------------------------------------------------- 6. wait for idle
deadline=$(( $(date +%s) + WAIT_S ))
state=""
while [ "$(date +%s)" -lt "$deadline" ]; do
    state="$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1 || true)"
    case "$state" in
        idle|mixed|allocated) break ;;
        down*|drain*|drained*|fail*)
            log "node is '$state', resuming"
            scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated) ;;
    *) sinfo -N -l || true; die "node $NODE not idle after ${WAIT_S}s (state '$state'); see /var/log/slurm/*.log" ;;
esac
log "cluster up: munged pid $(pidfile_pid /run/munge/munged.pid), slurmctld pid $(pidfile_pid /run/slurm/slurmctld.pid), slurmd pid $(pidfile_pid /run/slurm/slurmd.pid)"
sinfo
