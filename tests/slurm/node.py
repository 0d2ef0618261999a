"""The tests' one-node SLURM cluster (`start_node.sh`), shared by every test that needs it and stopped after the last.

Under pytest-xdist each worker process has its own session: the users are counted in a small file under a file
lock, and the daemons (munged, slurmctld, slurmd) are stopped when the last user leaves, where the tests started
them (a cluster that was running before the tests is left running). A user whose process died is not counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from filelock import FileLock

START = Path(__file__).with_name("start_node.sh")
USERS = Path(tempfile.gettempdir()) / "seg-test-slurm-users.json"
PID_FILES = (Path("/run/slurmd.pid"), Path("/run/slurmctld.pid"), Path("/run/munge/munged.pid"))  # stopped in order


@contextmanager
def slurm_node() -> Iterator[Optional[str]]:
    """Hold the test cluster for the block: yields None when it runs, else why SLURM cannot run here."""
    with FileLock(str(USERS) + ".lock"):
        users = read_users()
        if not users["pids"]:
            users["started_by_tests"] = not daemons_running()
            started = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
            if started.returncode != 0:
                yield (started.stdout + started.stderr)[-800:]
                return
        users["pids"].append(os.getpid())
        USERS.write_text(json.dumps(users))
    try:
        yield None
    finally:
        with FileLock(str(USERS) + ".lock"):
            users = read_users()
            users["pids"] = [pid for pid in users["pids"] if pid != os.getpid()]
            USERS.write_text(json.dumps(users))
            if not users["pids"] and users.get("started_by_tests"):
                stop_daemons()
                USERS.unlink()


def read_users() -> dict:
    """The users file, without the processes that have died."""
    try:
        users = json.loads(USERS.read_text())
    except (OSError, ValueError):
        users = {}
    return {"pids": [pid for pid in users.get("pids", []) if alive(pid)],
            "started_by_tests": bool(users.get("started_by_tests"))}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def daemon_pids() -> list[int]:
    """The pids of the running SLURM and munge daemons, from their pid files."""
    pids = []
    for path in PID_FILES:
        try:
            pids.append(int(path.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            continue
    return [pid for pid in pids if alive(pid)]


def daemons_running() -> bool:
    return bool(daemon_pids())


def stop_daemons() -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged (SIGTERM) and wait until they are gone."""
    subprocess.run(["scancel", "--user", str(os.getuid())], capture_output=True, timeout=60)
    for pid in daemon_pids():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while daemon_pids() and time.monotonic() < deadline:
        time.sleep(0.2)


def wait_for(condition, what: str, seconds: float = 240) -> None:
    """Poll `condition` five times a second until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def node_state() -> str:
    """What sinfo says of the node (idle, mixed, allocated, ...)."""
    return subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()


def job_state(job: str) -> str:
    """squeue's state of a job or array task ('' once it has left the queue)."""
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
