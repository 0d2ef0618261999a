"""The SLURM launcher: a batch's unfinished runs become one job array, submitted with `sbatch`; the command returns.

Why `sbatch` and not submitit: the array script stays a readable file in the batch folder (`array.sbatch`) that a
cluster's admins can read and a user can submit by hand; nothing is pickled; requeue and `--signal` are SLURM's own.
Each task runs `seg batch-task <batch folder>`, which finds its run in `state.json` by `<array job>_<task>` and runs
that run's `seg fit` (continued from its run directory when it has a checkpoint). `--signal=B:USR1@T` reaches the
task before its time limit: the fit checkpoints, requeues its own task (`scontrol requeue`) and exits 75; the task
starts again and continues from that step.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from ...core.errors import SegError
from ...core.handoff import seg_command
from ...core.storage import write_text_atomically
from ..batch_plan import Run
from ..batch_state import BatchState, batch_folder

SCRIPT = "array.sbatch"


def refuse_what_slurm_cannot_run(args: argparse.Namespace) -> None:
    """SegError before anything is planned: no `sbatch` here, or a task whose processes would not match its devices."""
    tasks = ntasks_per_node(sbatch_lines(args, []))
    if tasks != args.gpus:
        raise SegError(f"--launcher slurm: each task would start {tasks} processes per node (--ntasks-per-node="
                       f"{tasks}, from --sbatch or --template) for --gpus {args.gpus}: Lightning runs one process per "
                       f"device; set --ntasks-per-node={args.gpus} or leave the line out")
    if shutil.which("sbatch") is None:
        raise SegError("--launcher slurm: sbatch is not on PATH (no SLURM client here); run the batch on this "
                       "machine instead: --launcher local --parallel N (or without --launcher, one run after another)")


def ntasks_per_node(lines: list[str]) -> int:
    """The processes per node that the script's #SBATCH lines ask for (the last line that says wins, as in sbatch)."""
    tasks = 1
    for line in lines:
        if match := re.match(r"#SBATCH\s+(?:--ntasks-per-node|--ntasks|-n)[=\s]+(\d+)", line):
            tasks = int(match.group(1))
    return tasks


def sbatch_lines(args: argparse.Namespace, indices: list[int]) -> list[str]:
    """seg's #SBATCH lines for the tasks `indices`, then --sbatch's, then the template's (later lines override)."""
    folder = batch_folder(args.name).resolve()
    options = [f"--job-name=seg-{args.name}", "--requeue", f"--signal=B:USR1@{args.signal_seconds}",
               "--open-mode=append", f"--output={folder}/slurm/%A_%a.out", "--nodes=1",
               f"--ntasks-per-node={args.gpus}"]
    if indices:
        options.append(f"--array={index_ranges(indices)}" + (f"%{args.max_parallel}" if args.max_parallel else ""))
    gres = args.gres or f"gpu:{args.gpus}"
    options += [f"--gres={gres}"] if gres != "none" else []
    named = {"partition": args.partition, "account": args.account, "time": args.time,
             "cpus-per-task": args.cpus_per_task, "mem": args.mem}
    options += [f"--{name}={value}" for name, value in named.items() if value is not None]
    options += args.sbatch
    return [f"#SBATCH {option}" for option in options] + template_parts(args)[0]


def index_ranges(indices: list[int]) -> str:
    """SLURM's array spec of task indices: runs of consecutive ones as ranges (`0-3,5,7-8`)."""
    spans: list[list[int]] = []
    for index in sorted(indices):
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def template_parts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(#SBATCH lines, shell lines) of `--template` (its shebang and comments left out)."""
    if not args.template:
        return [], []
    lines = Path(args.template).read_text().splitlines()
    directives = [line.strip() for line in lines if line.strip().startswith("#SBATCH")]
    shell = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return directives, shell


def array_script(args: argparse.Namespace, indices: list[int]) -> str:
    """The job array's script: every #SBATCH line, the template's set-up, then this task's run."""
    folder = batch_folder(args.name).resolve()
    task = [*seg_command(), "batch-task", str(folder), f"--max-requeues={args.max_requeues}"]
    task += ["--srun"] if args.gpus > 1 else []
    return "\n".join([
        "#!/bin/bash",
        f"# seg batch {args.name}: one task per run (written by seg batch --launcher slurm; `seg batch --status "
        f"{args.name}` shows where each stands). SIGUSR1 before the time limit: the run checkpoints, requeues and "
        f"continues.",
        *sbatch_lines(args, indices),
        *template_parts(args)[1],
        f"cd {shlex.quote(os.getcwd())}",
        f"exec {shlex.join(task)}",
        "",
    ])


def queued_jobs(jobs: list[str]) -> dict[str, str]:
    """`<array job>_<task>` -> its SLURM state (PENDING, RUNNING, ...) for the jobs still in the queue."""
    arrays = sorted({job.split("_")[0] for job in jobs if job})
    if not arrays or shutil.which("squeue") is None:
        return {}
    listed = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(arrays)], capture_output=True,
                            text=True, timeout=60)
    return dict(line.split()[:2] for line in listed.stdout.splitlines() if len(line.split()) >= 2)


def submit(runs: list[Run], state: BatchState, args: argparse.Namespace) -> tuple[str, list[tuple[int, Run]]]:
    """Submit one array of the runs that are neither finished nor already queued; record each task in state.json.
    Returns the array's job id and the submitted (task index, run) pairs (none: nothing was submitted)."""
    queued = queued_jobs([str(saved.get("slurm_job", "")) for saved in state.runs.values()])
    todo = []
    for index, run in enumerate(runs):
        job = str(state.runs.get(run.name, {}).get("slurm_job", ""))
        if run.action == "skip":
            continue
        if job in queued:
            run.notes.append(f"already queued as job {job} ({queued[job]}): not submitted again")
            continue
        todo.append((index, run))
    if not todo:
        return "", []
    script = state.folder / SCRIPT
    state.folder.mkdir(parents=True, exist_ok=True)
    (state.folder / "slurm").mkdir(exist_ok=True)
    write_text_atomically(script, array_script(args, [index for index, _ in todo]))
    submitted = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=120)
    if submitted.returncode != 0:
        raise SegError(f"sbatch {script} refused the array: {submitted.stderr.strip() or submitted.returncode}")
    array = submitted.stdout.strip().split(";")[0]
    for index, run in todo:
        run.status = "pending"
        estimate = round(run.estimate.projected_seconds, 1) if run.estimate is not None else None
        state.record(run, args.epochs, slurm_job=f"{array}_{index}", action=run.action, estimate_seconds=estimate,
                     max_requeues=args.max_requeues)
    return array, todo
