#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/training/test_slurm.py (Debian's slurm-wlm + munge).
# Installs them with apt when missing (root needed), writes a one-node slurm.conf, starts munged, slurmctld and
# slurmd, and waits until the node is idle. Idempotent: a running cluster is left as it is.
# Exit 0: sbatch works. Anything else: SLURM cannot run here (the test skips, printing this script's output).
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "slurm-wlm is not installed and this is not root: cannot install it"; exit 3; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if timeout 5 scontrol ping 2>/dev/null | grep -q "is UP" && timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
    exit 0  # already running
fi
[ "$(id -u)" = 0 ] || { echo "starting slurmctld/slurmd needs root"; exit 3; }

host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=segtest
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
NodeName=${host} CPUs=${cpus} RealMemory=${memory} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
[ -s /etc/munge/munge.key ] || mungekey --create --force
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
# a daemon is running when a live process has its name: the forks a daemon leaves behind stay as zombies where the
# caller's process tree has a subreaper, and `pgrep -x` alone counts them (a restart after a stop then never starts)
running() {
    for pid in $(pgrep -x "$1"); do
        state=$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)
        [ -n "$state" ] && [ "$state" != Z ] && return 0
    done
    return 1
}
running munged || su -s /bin/sh munge -c "/usr/sbin/munged" || /usr/sbin/munged --force
running slurmctld || /usr/sbin/slurmctld
running slurmd || /usr/sbin/slurmd
deadline=$(( $(date +%s) + 60 ))  # (sinfo itself waits ~10 s for a controller that is not up)
while [ "$(date +%s)" -lt "$deadline" ]; do
    if timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mixed)"; then exit 0; fi
    sleep 1
done
echo "the node did not become idle within 60 s:"; sinfo 2>&1 || true; tail -20 /var/log/slurm/slurmctld.log 2>&1 || true
exit 4
