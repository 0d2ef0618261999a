"""Cross-validation results: every fold's validation cases scored as `seg test` scores, and the CV table.

`seg report --cv TARGET` (and `seg batch --folds K` at its end) finds the fold runs (`<run name>_fold<K>`) of a
batch or a run name, scores each fold's checkpoint on that fold's validation cases in native space with `seg
test`'s own path (the checkpoint's stored config and split, `--data.test_on val`, `training.evaluation`'s
NativeSpaceScorer), keeps the predicted label maps, and writes the table (`app.cv_table`).

Per fold run: `<run>/cv/<checkpoint>.csv` (the scorer's per-case CSV, reused while newer than the checkpoint)
and `<run>/cv/predictions/<case>.nii.gz` (label maps in each input's geometry, as `seg predict` writes them).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import yaml

from ..core.errors import SegError
from ..core.log import log
from ..core.storage import write_text_atomically
from .cv_table import CvTable, read_case_rows

if TYPE_CHECKING:
    from ..model.postprocessing import Postprocessing

FOLD_NAME = re.compile(r"^(?P<group>.+)_fold(?P<fold>\d+)$")
BATCHES = Path("lightning_logs") / "batches"
SUBCOMMAND_KEYS = ("ckpt_path", "weights_only")  # a stored fit config's keys that only a subcommand takes


def per_fold(run: Any, folds: Optional[int]) -> list[Any]:
    """A batch's `run` itself without `--folds`; else one copy per fold, training with `--data.fold K
    --data.num_folds N` (the test split carved first, the same in every fold: `data.split`)."""
    if not folds:
        return [run]
    return [replace(run, fold=k, fit_args=[*run.fit_args, f"--data.fold={k}", f"--data.num_folds={folds}"],
                    notes=[]) for k in range(folds)]


def fold_runs(target: str) -> tuple[dict[str, dict[int, Path]], Path]:
    """(group name -> fold -> run directory, the folder the tables go to) of a batch folder, a batch name, or a
    run name / path whose folds are `<name>_fold<K>` (each its newest `version_N`)."""
    given = Path(target)
    for batch in (given, BATCHES / target):
        if (batch / "state.json").is_file():
            return runs_of_batch(batch), batch
    named = given if given.parent != Path(".") or given.exists() else Path("lightning_logs") / target
    folds = {int(m["fold"]): newest_version(p) for p in named.parent.glob(f"{named.name}_fold*")
             if (m := FOLD_NAME.match(p.name)) and m["group"] == named.name and p.is_dir()}
    found = {fold: run for fold, run in folds.items() if run is not None}
    if not found:
        raise SegError(f"--cv {target}: no batch ({target}/state.json or {BATCHES / target}) and no fold runs "
                       f"{named}_fold<K>/version_N; give a batch folder, a batch name or a run name")
    return {named.name: found}, named.parent


def recorded_run_dirs(batch: Path) -> list[Path]:
    """The run directories a batch folder's `state.json` records (runs not started yet have none)."""
    return [Path(saved["run_dir"]) for saved in json.loads((batch / "state.json").read_text()).values()
            if saved.get("run_dir")]


def runs_of_batch(batch: Path) -> dict[str, dict[int, Path]]:
    """The fold runs a batch's `state.json` records, grouped by their run names without `_fold<K>`."""
    groups: dict[str, dict[int, Path]] = {}
    for run_dir in recorded_run_dirs(batch):
        if match := FOLD_NAME.match(run_dir.parent.name):
            groups.setdefault(match["group"], {})[int(match["fold"])] = run_dir
    if not groups:
        raise SegError(f"--cv {batch}: the batch has no fold runs yet; run it with `seg batch ... --folds K`")
    return groups


def newest_version(run: Path) -> Path | None:
    """The highest `version_N` of a run name's folder, else None."""
    versions = [p for p in run.glob("version_*") if re.fullmatch(r"version_\d+", p.name)]
    return max(versions, key=lambda p: int(p.name.split("_")[1])) if versions else None


def score_fold(run_dir: Path, checkpoint: str = "best") -> Path | None:
    """`<run>/cv/<checkpoint>.csv`: the fold's validation cases scored by `seg test`'s scorer, and their label maps
    kept in `<run>/cv/predictions/`; None (said) for a fold without that checkpoint yet."""
    ckpt = run_dir / "checkpoints" / f"{checkpoint}.ckpt"
    table = run_dir / "cv" / f"{checkpoint}.csv"
    if not ckpt.is_file():
        log.warning(f"{run_dir}: no {ckpt.name} yet; the fold is left out of the CV table")
        return None
    if table.is_file() and table.stat().st_mtime >= ckpt.stat().st_mtime:
        return table  # scored since the checkpoint was written
    from ..training.checkpointing import load_checkpoint
    from ..training.evaluation import NativeSpaceScorer
    from ..training.fold_predictions import KeepLabelMaps
    from ..training.records import stored_config
    from .lightning_cli import build_cli

    stored = stored_config(load_checkpoint(ckpt))
    if not stored:
        raise SegError(f"{ckpt} records no config; score it with `seg test --ckpt_path {ckpt} --data.test_on val`")
    log.info(f"scoring {run_dir.parent.name}'s validation cases with {ckpt.name} (as seg test --data.test_on val)")
    config = {key: value for key, value in yaml.safe_load(stored).items() if key not in SUBCOMMAND_KEYS}
    cli = build_cli(["--config", yaml.safe_dump(config), "--data.test_on=val", "--trainer.logger=false",
                     "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                     "--trainer.enable_checkpointing=false"])
    callbacks = cli.trainer.callbacks  # type: ignore[attr-defined]  # (set by Lightning's callback connector)
    callbacks += [NativeSpaceScorer(table), KeepLabelMaps(run_dir / "cv" / "predictions")]
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(ckpt), verbose=False)
    return table


def refuse_overlapping_folds(folds: dict[int, Path], checkpoint: str) -> None:
    """SegError when the folds do not share one test split, or a fold's validation case is another fold's test
    case or validated twice: such folds were not made from one split (other seeds, fractions or data)."""
    from ..data.split import stored_split
    from ..training.checkpointing import load_checkpoint

    splits = {fold: stored_split(load_checkpoint(run / "checkpoints" / f"{checkpoint}.ckpt"))
              for fold, run in folds.items() if (run / "checkpoints" / f"{checkpoint}.ckpt").is_file()}
    tests = {tuple(split.test) for split in splits.values()}
    validated = [case for split in splits.values() for case in split.val]
    if len(tests) > 1 or len(validated) != len(set(validated)) or set(validated) & set(next(iter(tests), ())):
        raise SegError(f"the fold runs {', '.join(str(r) for r in folds.values())} do not come from one split "
                       f"(their test cases differ, or validation cases repeat): run their folds with the same "
                       f"--data.seed, --data.test_fraction, --data.num_folds and data")


def cv_tables(target: str, checkpoint: str = "best", out: Path | None = None
              ) -> list[tuple[str, CvTable, Path, Optional[Postprocessing]]]:
    """Score every fold of `target` not scored yet and write `<group>_cv.csv`, `<group>_cv.md` and the
    postprocessing decision `<group>_postprocessing.json` (`app.cv_postprocessing`) per group of folds (into
    `out`, else the batch folder or the folds' parent); (group, table, CSV path) of each."""
    from .cv_postprocessing import decide_for_group

    groups, folder = fold_runs(target)
    results = []
    for group, folds in sorted(groups.items()):
        refuse_overlapping_folds(folds, checkpoint)
        scored = {fold: path for fold, run in sorted(folds.items()) if (path := score_fold(run, checkpoint))}
        if not scored:
            log.warning(f"{group}: no fold has a {checkpoint}.ckpt yet: no CV table")
            continue
        table = CvTable({fold: read_case_rows(path) for fold, path in scored.items()})
        destination = (out or folder) / f"{group}_cv.csv"
        table.write_csv(destination)
        title = (f"# {group}: {len(scored)}-fold cross-validation ({checkpoint}.ckpt of each fold on its validation "
                 f"cases, scored in native space as seg test)\n\n")
        write_text_atomically(destination.with_suffix(".md"), title + table.markdown())
        decision = decide_for_group(group, {fold: folds[fold] for fold in scored}, postprocessing_path(destination))
        results.append((group, table, destination, decision))
    return results


def postprocessing_path(table: Path) -> Path:
    """`<group>_postprocessing.json` beside `<group>_cv.csv`."""
    return table.with_name(table.name.removesuffix("_cv.csv") + "_postprocessing.json")
