"""What a batch runs: its `Run`s (architecture x schedule [x seed] [x fold]) with their full `seg fit` arguments."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..measure.estimate import Estimate
from .cross_validation import per_fold
from .seed_groups import per_seed


@dataclass
class Run:
    """One planned run of a batch and, once run, what came of it."""

    architecture: str
    scheduler: str
    fit_args: list[str]
    estimate: Optional[Estimate] = None  # of the whole `seg fit` process, as `seconds` times it
    status: str = "planned"
    seconds: float = 0.0
    run_dir: Optional[Path] = None
    best: Optional[tuple[float, int]] = None  # (val/dice, epoch)
    notes: list[str] = field(default_factory=list)
    action: str = "start"  # start | continue | skip
    fold: Optional[int] = None  # of `--folds`: its run directory is `<dataset>_<arch>_<schedule>_fold<K>`
    seed: Optional[int] = None  # of `--seeds`: `..._seed<S>[_fold<K>]` (app.seed_groups)

    @property
    def name(self) -> str:
        """`<architecture>_<scheduler>[_seed<S>][_fold<K>]`: the run's name in the plan, the logs, the state."""
        return (f"{self.architecture}_{self.scheduler}" + (f"_seed{self.seed}" if self.seed is not None else "")
                + (f"_fold{self.fold}" if self.fold is not None else ""))


def plan_runs(args: argparse.Namespace) -> list[Run]:
    """The runs of the batch with their full `seg fit` arguments."""
    runs = []
    for scheduler in args.schedulers:
        for architecture in args.archs:
            fit = [f"--config={c}" for c in args.config]
            if args.smoke:
                fit.append(f"--model.network_kwargs={json.dumps(smoke_network(architecture))}")
            fit += [f"--model.architecture={architecture}", f"--model.scheduler={scheduler}",
                    f"--trainer.max_epochs={args.epochs}", f"--trainer.devices={args.gpus}"]
            if args.gpus > 1:
                fit.append("--trainer.strategy=ddp")
            if args.data:
                fit.append(f"--data.root={args.data}")
            fit += [a for a in args.extra if a != "--"]
            runs += [fold for seed in per_seed(Run(architecture, scheduler, fit), args.seeds)
                     for fold in per_fold(seed, args.folds)]
    return runs


def smoke_network(architecture: str) -> dict:
    """The tiny `--model.network_kwargs` of `architecture` (empty for a name seg does not know: the run says so)."""
    from ..model.networks import ARCHITECTURES

    known = ARCHITECTURES.get(architecture)
    return dict(known.smoke_kwargs) if known else {}


