"""Seeds and statistics (issue 22, item 4): `seg batch --seeds` trains every run once per seed on one split,
`seg report` gives mean ± sd over the seeds and a paired comparison of two schedules, `--claim` one sentence."""

from __future__ import annotations

import math
from statistics import mean, stdev

import pytest
import torch

from segmentation.app.run_history import RunCurves
from segmentation.app.seed_claim import BETTER, MATCHED, SHORT, UNDECIDED, claim_sentences, verdict
from segmentation.app.seed_groups import group_by_seed, paired, per_seed
from segmentation.core.errors import SegError
from segmentation.data.msd import MSDDataModule
from segmentation.data.split import stored_split
from segmentation.training.checkpointing import load_checkpoint

from ..helpers import DEMO_CONFIG, TINY_CONFIG, values, weights

SCHEDULES, SEEDS = ("none", "reduce_on_plateau"), (0, 1)


def figure(numbers: list[float], digits: int, sign: str = "") -> str:
    """What the report prints for `numbers`: mean ± sample sd."""
    return f"{mean(numbers):{sign}.{digits}f} ± {stdev(numbers):.{digits}f}"


@pytest.mark.slow
def test_a_seeded_batch_varies_the_weights_on_one_split_and_its_report_is_the_events_mean_and_sd(
        demo_root, tmp_path, seg):
    def batch():
        return seg("batch", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data", str(demo_root),
                   "--archs", "unet", "--schedulers", "none", "--epochs", "2", "--no-estimate",
                   "--seeds", *map(str, SEEDS), "--name", "seeds", cwd=tmp_path)

    first = batch()
    assert first.returncode == 0, first.stdout[-3000:]
    runs = {seed: tmp_path / f"lightning_logs/demo_unet_none_seed{seed}/version_0" for seed in SEEDS}
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == [
        "batches", *sorted(run.parent.name for run in runs.values())]
    splits = {key: stored_split(load_checkpoint(run / "checkpoints/last.ckpt")) for key, run in runs.items()}
    assert splits[0] == splits[1]  # every seed validates on the same cases ...
    one, other = (weights(runs[seed] / "checkpoints/last.ckpt") for seed in SEEDS)
    assert any(not torch.equal(one[key], other[key]) for key in one)  # ... and trains differently
    assert values(runs[0], "train/loss") != values(runs[1], "train/loss")

    again = batch()  # nothing new to run
    assert again.returncode == 0 and "=== " not in again.stdout, again.stdout[-3000:]
    assert again.stdout.count("ok (finished before)") == 2
    assert all(sorted(p.name for p in run.parent.iterdir()) == ["version_0"] for run in runs.values())

    report = seg("report", str(tmp_path / "lightning_logs/batches/seeds"), "--out", str(tmp_path / "report"),
                 cwd=tmp_path)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    dice = [values(runs[seed], "val/dice") for seed in SEEDS]  # the runs' own events, read here
    reached = [float(next(e for e, d in enumerate(curve) if d >= 0.95 * max(curve))) for curve in dice]
    seconds = [sum(values(runs[seed], "time/epoch_seconds")) for seed in SEEDS]
    row = f"| demo_unet_none | 0 1 | 2 | {figure([max(c) for c in dice], 4)} | {figure(reached, 1)} | "
    assert row + f"{figure(seconds, 1)} |" in report.stdout, report.stdout
    assert "## Over seeds" in (tmp_path / "report/report.md").read_text()


def write_run(folder, dice: list[float], seconds: list[float]):
    """A run directory with the TensorBoard events a fit logs (val/dice, epoch, time/epoch_seconds per epoch)."""
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True)
    with SummaryWriter(str(folder)) as writer:
        for epoch, (d, s) in enumerate(zip(dice, seconds)):
            step = 10 * epoch + 9
            for tag, value in (("val/dice", d), ("time/epoch_seconds", s), ("epoch", epoch)):
                writer.add_scalar(tag, value, step)
    return folder


def test_the_paired_comparison_of_two_schedules_on_two_seeds_is_the_hand_computation_from_the_events(tmp_path, seg):
    rng = [[0.11, 0.52, 0.49], [0.2, 0.4, 0.45], [0.3, 0.61, 0.6], [0.25, 0.35, 0.31]]
    runs = {(schedule, seed): write_run(tmp_path / f"lightning_logs/demo_unet_{schedule}_seed{seed}/version_0",
                                        rng[2 * i + seed], [1.0 + seed, 2.0, 3.5])
            for i, schedule in enumerate(SCHEDULES) for seed in SEEDS}
    report = seg("report", *map(str, runs.values()), "--out", str(tmp_path / "report"),
                 "--claim", "reduce_on_plateau", "none", cwd=tmp_path)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    best = {key: max(values(run, "val/dice")) for key, run in runs.items()}  # read back from the events
    differences = [best["none", seed] - best["reduce_on_plateau", seed] for seed in SEEDS]
    assert differences == pytest.approx([0.52 - 0.61, 0.45 - 0.35], abs=1e-6)
    wins = f"{sum(d > 0 for d in differences)} | {sum(d < 0 for d in differences)} | {sum(d == 0 for d in differences)}"
    assert wins == "1 | 1 | 0"
    assert (f"| demo_unet_none | demo_unet_reduce_on_plateau | 0 1 | {figure(differences, 4, '+')} | {wins} |"
            in report.stdout), report.stdout
    for i, schedule in enumerate(SCHEDULES):
        bests = [best[schedule, seed] for seed in SEEDS]
        reached = [float(next(e for e, d in enumerate(rng[2 * i + s]) if d >= 0.95 * max(rng[2 * i + s])))
                   for s in SEEDS]
        assert f"| demo_unet_{schedule} | 0 1 | 3 | {figure(bests, 4)} | {figure(reached, 1)} | 7.0 ± 0.7 |" in (
            report.stdout), report.stdout
    assert "On this data, reduce_on_plateau for 3 epochs matched none for 3 epochs within the seeds' spread" in (
        report.stdout)


def test_a_seed_varies_the_sampling_but_not_the_split(demo_root):
    def first_batch(sampling_seed):
        data = MSDDataModule(str(demo_root), patch_size=(16, 16, 16), batch_size=2, samples_per_volume=1,
                             val_fraction=0.34, num_workers=0, cache="none", sampling_seed=sampling_seed)
        data.setup("fit")
        return data.data_split, next(iter(data.train_dataloader()))["image"]

    (split, zero), (same_split, one), (_, zero_again) = first_batch(0), first_batch(1), first_batch(0)
    assert split == same_split and not torch.equal(zero, one) and torch.equal(zero, zero_again)
    assert first_batch(None)[0] == split  # without it: the split's seed, as before


def curves(name: str, seed: int, dice: list[float]) -> RunCurves:
    return RunCurves(f"{name}_seed{seed}/version_0", name, len(dice), dice=dict(enumerate(dice)),
                     epoch_seconds=dict.fromkeys(range(len(dice)), 2.0))


def claim(dynamic: list[float], static: list[float]) -> str:
    """The sentence for runs whose best val/dice per seed are `dynamic` (10 epochs) and `static` (20)."""
    runs = [curves("demo_unet_reduce_on_plateau", s, [0.0] * 9 + [d]) for s, d in enumerate(dynamic)]
    runs += [curves("demo_unet_none", s, [0.0] * 19 + [d]) for s, d in enumerate(static)]
    [sentence] = claim_sentences(paired(group_by_seed(runs)), "reduce_on_plateau", "none")
    return sentence


@pytest.mark.parametrize("dynamic, static, said", [
    ([0.70, 0.72, 0.74], [0.71, 0.70, 0.75], "matched none for 20 epochs within the seeds' spread"),
    ([0.80, 0.82, 0.84], [0.70, 0.72, 0.74], "matched none for 20 epochs and beat it by more than the seeds' spread"),
    ([0.60, 0.62, 0.64], [0.70, 0.72, 0.74], "did not match none for 20 epochs: it fell short"),
    ([0.70], [0.71], "cannot be said"),
])
def test_the_claim_says_one_verdict_from_the_paired_figures(dynamic, static, said):
    sentence = claim(dynamic, static)
    assert sentence.startswith("On this data") and sentence.count(". ") == 0 and said in sentence, sentence
    assert "reduce_on_plateau for 10 epochs" in sentence
    if len(dynamic) > 1:
        difference = mean(d - s for d, s in zip(dynamic, static))
        spread = math.sqrt((stdev(dynamic) ** 2 + stdev(static) ** 2) / 2)
        assert f"mean paired difference {difference:+.4f}, one pooled sd {spread:.4f}" in sentence


def test_the_verdict_rule_is_one_pooled_sd_either_way():
    assert verdict(0.01, 0.02, 3) == MATCHED and verdict(-0.02, 0.02, 3) == MATCHED
    assert verdict(0.03, 0.02, 3) == BETTER and verdict(-0.03, 0.02, 3) == SHORT
    assert verdict(0.0, math.nan, 1) == UNDECIDED and verdict(0.0, 0.0, 2) == MATCHED


def test_no_claim_without_both_schedules_and_no_seed_twice():
    with pytest.raises(SegError, match="--claim reduce_on_plateau none: the runs given hold no runs of both"):
        claim_sentences(paired(group_by_seed([curves("demo_unet_none", 0, [0.5])])), "reduce_on_plateau", "none")
    twice = [curves("demo_unet_none", 0, [0.5]), RunCurves("demo_unet_none_seed0/version_1", "", 1, {0: 0.4})]
    with pytest.raises(SegError, match="are both seed 0 of demo_unet_none"):
        group_by_seed(twice)


def test_seeds_name_the_runs_before_their_folds_and_leave_the_split_seed_alone():
    from segmentation.app.batch_plan import Run
    from segmentation.app.cross_validation import per_fold

    runs = [fold for seeded in per_seed(Run("unet", "none", ["--config=x"]), [3, 7]) for fold in per_fold(seeded, 2)]
    assert [run.name for run in runs] == ["unet_none_seed3_fold0", "unet_none_seed3_fold1",
                                          "unet_none_seed7_fold0", "unet_none_seed7_fold1"]
    assert runs[2].fit_args == ["--config=x", "--seed_everything=7", "--data.sampling_seed=7", "--data.fold=0",
                                "--data.num_folds=2"]
    assert per_seed(Run("unet", "none", []), None)[0].name == "unet_none"  # without --seeds: as before
