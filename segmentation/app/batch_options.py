"""`seg batch`'s command line: what runs (configs, archs, schedules, seeds, folds, epochs), where they run (the
launcher and its options), and the refusals made before any run starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import SegError
from ..schedules.plans import SCHEDULES
from .command_parser import CommandParser
from .seed_groups import refuse_bad_seeds

LAUNCHERS = ("serial", "local", "slurm")
SLURM_OPTIONS = (
    "partition", "account", "time", "cpus_per_task", "mem", "gres", "max_parallel", "sbatch", "template"
)


def parse(argv: list[str], description: str) -> argparse.Namespace:
    """The batch's command-line options, refused up front where no run could use them."""
    parser = CommandParser(prog="seg batch", description=description)
    add_run_options(parser)
    add_launcher_options(parser)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `seg fit` arguments for every run")
    args = parser.parse_args(argv)
    if args.status is None:
        refuse_what_no_run_can_use(args)
        refuse_options_of_other_launchers(args)
    return args


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """What the batch trains."""
    parser.add_argument("--config", action="append", help="config file(s), composed in order (required)")
    parser.add_argument("--archs", nargs="+", default=["unet", "segresnet"],
                        help="architectures (default unet segresnet)")
    parser.add_argument("--schedulers", nargs="+", default=["reduce_on_plateau"],
                        help="schedules, each run with every arch")
    parser.add_argument("--epochs", type=int, default=50, help="max_epochs of every run (default 50)")
    parser.add_argument("--data", help="data.root (default: the config's)")
    parser.add_argument("--gpus", type=int, default=1, help="devices per run; > 1 uses DDP")
    parser.add_argument("--name", default="batch",
                        help="name of the batch (its logs go to lightning_logs/batches/NAME)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny networks (each architecture's smoke size), for trying the pipeline; "
                        "compose with --config configs/fragments/smoke.yaml for tiny patches and 2 epochs")
    parser.add_argument("--folds", type=int, help="K-fold cross-validation: one run per fold (--data.fold K "
                        "--data.num_folds N, test cases carved first), then the CV table (seg report --cv)")
    parser.add_argument("--seeds", type=int, nargs="+", help="every run once per seed S (--seed_everything S "
                        "--data.sampling_seed S: initial weights, shuffle, patches, augmentation; the split stays "
                        "data.seed's), named <run>_seed<S>; seg report gives mean ± sd over the seeds")
    parser.add_argument("--report", help="afterwards, write `seg report` of the runs into this folder")
    parser.add_argument("--no-estimate", action="store_true", help="skip the measured estimate in the plan")
    parser.add_argument("--fresh", action="store_true",
                        help="start every run anew (default: continue the batch's unfinished runs, skip finished ones)")
    parser.add_argument("--max-requeues", type=int, default=3,
                        help="a run preempted more often than this (SLURM) or failed this many times + 1 in a row at "
                        "the same epoch is not run again, and says so in --status (default 3)")


def add_launcher_options(parser: argparse.ArgumentParser) -> None:
    """Where the runs run, and the view of where they stand."""
    parser.add_argument("--status", metavar="NAME", help="where every run of batch NAME stands (state.json, run "
                        "directories, squeue); nothing is started")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="serial",
                        help="serial: one run after another (default); local: --parallel N at once on this machine; "
                        "slurm: one SLURM job array, one task per run, submitted with sbatch")
    parser.add_argument("--parallel", type=int, help="local: runs at once (default: the GPUs / --gpus, else 2); "
                        "each gets its own GPUs (CUDA_VISIBLE_DEVICES) or its share of the CPU threads")
    slurm = parser.add_argument_group("--launcher slurm (sbatch's options of the same names)")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--time", help="each task's time limit, e.g. 24:00:00 (default: the partition's)")
    slurm.add_argument("--cpus-per-task", type=int)
    slurm.add_argument("--mem", help="memory per node, e.g. 64G")
    slurm.add_argument("--gres", help="generic resources per task (default gpu:<--gpus>; none on a CPU partition)")
    slurm.add_argument("--max-parallel", type=int, help="tasks running at once (the array's %%K)")
    slurm.add_argument("--signal-seconds", type=int, default=300,
                       help="SIGUSR1 this long before the time limit (--signal=B:USR1@T): the run checkpoints, "
                       "requeues and continues (default 300)")
    slurm.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="one more #SBATCH line, e.g. --sbatch=--qos=long (repeatable)")
    slurm.add_argument("--template", help="a file whose #SBATCH lines and shell lines (module load, source a venv) go "
                       "into the array script before the task's command (configs/slurm/array.sbatch)")


def refuse_what_no_run_can_use(args: argparse.Namespace) -> None:
    """SegError before any run starts for options every run would fail on (each run would exit 2 with the reason
    in its log, and the batch 1)."""
    if not args.config:
        raise SegError("--config: give the config file(s) the runs train (or --status NAME to see a batch)")
    if args.epochs < 1:
        raise SegError(f"--epochs {args.epochs}: every run trains 1 or more epochs")
    if args.gpus < 1:
        raise SegError(f"--gpus {args.gpus}: every run needs 1 or more devices")
    if args.folds is not None and args.folds < 2:
        raise SegError(f"--folds {args.folds}: cross-validation needs 2 or more folds (or leave --folds out)")
    if args.max_requeues < 0:
        raise SegError(f"--max-requeues {args.max_requeues}: 0 or more")
    refuse_bad_seeds(args.seeds)
    if unknown := [s for s in args.schedulers if s not in SCHEDULES]:
        raise SegError(f"--schedulers {' '.join(unknown)}: unknown; one of {', '.join(SCHEDULES)}")
    from ..model.networks import ARCHITECTURES

    if unknown := [a for a in args.archs if a not in ARCHITECTURES]:
        raise SegError(f"--archs {' '.join(unknown)}: unknown; one of {', '.join(ARCHITECTURES)}")
    if missing := [c for c in [*args.config, *([args.template] if args.template else [])] if not Path(c).is_file()]:
        raise SegError(f"{'--template' if args.template in missing else '--config'} {' '.join(missing)}: no such file")
    if Path(args.name).name != args.name or args.name in ("", ".", ".."):
        raise SegError(f"--name {args.name!r}: a batch name is one folder name under lightning_logs/batches/ "
                       f"(no '/' or '..')")


def refuse_options_of_other_launchers(args: argparse.Namespace) -> None:
    """SegError for an option the chosen launcher would ignore (the batch would not run as the user thinks)."""
    if args.parallel is not None and args.launcher != "local":
        raise SegError(f"--parallel {args.parallel}: runs at once on this machine need --launcher local")
    if args.parallel is not None and args.parallel < 1:
        raise SegError(f"--parallel {args.parallel}: 1 or more runs at once")
    given = [name for name in SLURM_OPTIONS if getattr(args, name)]
    if given and args.launcher != "slurm":
        options = " ".join("--" + name.replace("_", "-") for name in given)
        raise SegError(f"{options}: options of a SLURM array; add --launcher slurm (or leave them out)")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise SegError(f"--max-parallel {args.max_parallel}: 1 or more tasks at once")
