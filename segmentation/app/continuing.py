"""What a `seg fit` continues: a preempted run started by this same command, and the horizon of a resumed run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..training.checkpointing import load_checkpoint
from ..training.config_diff import config_differences
from ..training.preemption import MARKER, preempted_checkpoint
from ..training.records import stored_config


def continue_preempted(run: Path, config_yaml: str) -> Optional[str]:
    """The checkpoint of this run name's preempted newest version, when this command is the one that started it
    (the same command again continues it, and says so); another command starts a new run, saying why."""
    ckpt = preempted_checkpoint(run)
    if ckpt is None:
        return None
    stored = stored_config(load_checkpoint(ckpt))
    changed = [line for line in config_differences(stored or "", config_yaml) if not line.startswith("seed_everything")]
    if stored is None or changed:
        print(f"not continuing the preempted run {ckpt.parent.parent}: this command differs from the one that "
              f"started it ({'; '.join(changed[:3]) or 'no stored config'}); starting a new run (to continue that "
              f"one: seg fit --ckpt_path {ckpt})", flush=True)
        return None
    print(f"continuing the preempted run {ckpt.parent.parent} from {ckpt} (its {MARKER} marker; to start a new "
          f"run instead, delete that file)", flush=True)
    return str(ckpt)


def max_epochs_on_command_line(command_line: list[str]) -> Optional[int]:
    """`--trainer.max_epochs N` as given on the command line (not from a config file), else None; given twice,
    the last one, as LightningCLI takes it."""
    given = None
    for index, arg in enumerate(command_line):
        if arg == "--trainer.max_epochs" and index + 1 < len(command_line):
            given = int(command_line[index + 1])
        elif arg.startswith("--trainer.max_epochs="):
            given = int(arg.split("=", 1)[1])
    return given


def keep_the_runs_horizon(saved: Optional[int], configured: Optional[int]) -> dict:
    """Trainer arguments that keep a resumed run's max_epochs when the command line does not change it.

    A config file given again (often the one the run started from, without the `--trainer.max_epochs` of its
    first command line) must not silently move the horizon; the difference is said.
    """
    if saved is None or saved == configured:
        return {}
    print(f"max_epochs: the run's {saved} is kept (the config says {configured}); "
          f"give --trainer.max_epochs on the command line to change it", flush=True)
    return {"max_epochs": saved}
