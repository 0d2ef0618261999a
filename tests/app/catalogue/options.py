"""Bad options and config files, and the other commands' own options (batch, synth, report, predict)."""

from __future__ import annotations

from ...helpers import DEMO_CONFIG
from .setting import Case, empty_folder, file_in_the_way, write, write_bytes

TOO_DEEP = '--model.network_kwargs={"channels": [4, 8, 16, 32, 64], "strides": [2, 2, 2, 2], "num_res_units": 0}'


def fit(*overrides: str):
    """The arguments of a tiny fit on the MSD demo data with `overrides`."""
    return lambda s: s.fit(s.root, *overrides)


def config(name: str, text: str):
    """`fit --config <name>` of a config file holding `text` (after the demo config)."""
    return lambda s: ["fit", "--config", str(DEMO_CONFIG), "--config", str(write(s.tmp / name, text))]


def plan(s, *words: str) -> list[str]:
    """`seg plan` of the MSD demo data with `words`."""
    return ["plan", "--config", str(DEMO_CONFIG), f"--data.root={s.root}", *words]


def lr_find(*words: str):
    """`seg lr-find` of the MSD demo data with `words`."""
    return lambda s: ["lr-find", "--config", str(DEMO_CONFIG), f"--data.root={s.root}", *words]


def batch(*words: str):
    return lambda s: ["batch", "--config", str(DEMO_CONFIG), *words]


OPTIONS: dict[str, Case] = {
    # the model
    "negative lr": Case(fit("--model.lr=-0.001"), "--model.lr -0.001"),
    "lr not a number": Case(fit("--model.lr=nan"), "--model.lr nan"),
    "infinite lr": Case(fit("--model.lr=inf"), "--model.lr inf"),
    "an unknown architecture": Case(
        fit("--model.architecture=vnet9000"),
        "--model.architecture vnet9000: give one of unet, segresnet, dynunet, swinunetr, unetr"),
    "an unknown schedule": Case(
        fit("--model.scheduler=sgdr"),
        "--model.scheduler sgdr: give one of none, reduce_on_plateau, cosine, onecycle, polynomial"),
    "an unknown schedule interval": Case(
        fit("--model.schedule.interval=steps"), "--model.schedule.interval steps: give one of epoch, step"),
    "a warm-up as long as the run": Case(
        fit("--model.scheduler=cosine", "--model.schedule.warmup_epochs=2"),
        "--model.schedule.warmup_epochs 2 leaves nothing of the 2-epoch run"),
    "a warm-up in steps of an epoch-stepped schedule": Case(
        fit("--model.schedule.warmup_steps=5"), "--model.schedule.warmup_steps 5 counts optimizer steps"),
    "patch too small for the network's depth": Case(fit(TOO_DEEP), "--data.patch_size [16, 16, 16] is too small"),
    # the data
    "zero batch size": Case(fit("--data.batch_size=0"), "--data.batch_size 0"),
    "zero steps per epoch": Case(fit("--data.steps_per_epoch=0"), "--data.steps_per_epoch 0: must be 1 or more"),
    "a normalisation with std 0": Case(
        fit('--data.normalization={"scheme": "ct", "clip": [-50, 300], "mean": 100, "std": 0}'),
        "--data.normalization: std 0.0 is not positive; write {scheme: ct, clip: [lo, hi], mean: m, std: s}"),
    "a CT normalisation of a dataset of several channels": Case(
        lambda s: s.fit(s.roots("brats"), '--data.normalization={"scheme": "ct", "clip": [0, 1], "mean": 0, "std": 1}',
                        kind="brats"),
        "--data.normalization: scheme ct fixes the statistics of one channel and this dataset has 4"),
    "deep supervision on a network without heads": Case(
        fit("--model.deep_supervision=true"),
        "--model.deep_supervision: unet has no deep-supervision heads; architectures with them: dynunet"),
    "zero patches per volume": Case(fit("--data.samples_per_volume=0"), "--data.samples_per_volume 0"),
    "batch not a multiple of the patches per volume": Case(
        fit("--data.batch_size=3", "--data.samples_per_volume=2"),
        "--data.batch_size 3 is not a multiple of --data.samples_per_volume 2"),
    "negative workers": Case(fit("--data.num_workers=-3"), "--data.num_workers -3: must be 0"),
    "a foreground fraction above 1": Case(fit("--data.pos_fraction=2"),
                                          "--data.pos_fraction 2.0: must be a fraction from 0 to 1"),
    "every case for validation": Case(fit("--data.val_fraction=1.0"),
                                      "--data.val_fraction 1.0: must be a fraction above 0 and below 1"),
    "no case for validation": Case(fit("--data.val_fraction=0"), "--data.val_fraction 0.0: must be a fraction above 0"),
    "a negative test fraction": Case(fit("--data.test_fraction=-0.1"), "--data.test_fraction -0.1"),
    "every case held out for test": Case(fit("--data.test_fraction=0.99"), "leaves no case to train on"),
    "a fold with no case": Case(fit("--data.fold=7", "--data.num_folds=10"),
                                "leaves no case to validate on (6 training, 0 validation, 0 test cases)"),
    "a fold beyond the folds": Case(fit("--data.fold=5", "--data.num_folds=5"), "--data.fold 5"),
    "a negative fold": Case(fit("--data.fold=-1", "--data.num_folds=5"), "--data.fold -1"),
    "a single fold": Case(fit("--data.fold=0", "--data.num_folds=1"), "--data.num_folds 1"),
    "a zero spacing": Case(fit("--data.spacing=[0,0,0]"),
                           "--data.spacing [0.0, 0.0, 0.0]: each voxel size must be a positive number"),
    "a negative spacing": Case(fit("--data.spacing=[-1,1,1]"), "each voxel size must be a positive number"),
    "a patch of two axes": Case(fit("--data.patch_size=[16,16]"), "--data.patch_size"),
    "patch larger than every volume": Case(fit("--data.patch_size=[16,16,64]"),
                                           "--data.patch_size [16, 16, 64] is larger than every volume"),
    "the removed disk cache": Case(fit("--data.cache=disk"), "--data.cache disk was removed: use --data.cache store"),
    "an unknown cache": Case(fit("--data.cache=ram"), "--data.cache"),
    "a cache folder that is a file": Case(
        lambda s: s.fit(s.root, "--data.cache=store", f"--data.cache_dir={file_in_the_way(s.tmp / 'cache')}"),
        "--data.cache_dir"),
    "a dataset name that climbs out of lightning_logs": Case(fit("--data.init_args.name=../../elsewhere"),
                                                             "--data.name '../../elsewhere'"),
    # the trainer and seg's own
    "zero epochs": Case(fit("--trainer.max_epochs=0"), "--trainer.max_epochs 0"),
    "validation every 0 epochs": Case(fit("--trainer.check_val_every_n_epoch=0"),
                                      "--trainer.check_val_every_n_epoch 0: must be 1 or more"),
    "validation twice per epoch": Case(fit("--trainer.val_check_interval=0.5"), "--trainer.val_check_interval"),
    "zero devices": Case(fit("--trainer.devices=0"), "--trainer.devices 0: give 1 or more devices"),
    "a GPU on a machine without one": Case(fit("--trainer.accelerator=gpu"),
                                           "--trainer.accelerator gpu: torch sees no CUDA GPU", needs=("no-gpu",)),
    "an unknown precision": Case(fit("--trainer.precision=8"), "--trainer.precision 8: give one of 64, 32, 16"),
    "a run folder that is a file": Case(
        lambda s: s.fit(s.root, f"--trainer.default_root_dir={file_in_the_way(s.tmp / 'runs')}"),
        "--trainer.default_root_dir"),
    "keep 0 epoch files": Case(fit("--keep_last_epochs=0"), "--keep_last_epochs 0: keep 1 or more epoch files"),
    "a seed that is not a number": Case(fit("--seed_everything=abc"), "seed_everything"),
    "an option that does not exist": Case(fit("--model.lrr=0.1"), "--model.lrr"),
    "schedule options in their old place": Case(fit("--model.plateau_patience=3"), "--model.schedule.plateau_patience"),
    # config files
    "YAML syntax error": Case(config("broken.yaml", "trainer:\n  max_epochs: [1, 2\n"),
                              "broken.yaml is not valid YAML at line"),
    "missing config file": Case(lambda s: ["fit", "--config", str(s.tmp / "nowhere.yaml")],
                                "nowhere.yaml does not exist (--config)"),
    "a config that is a folder": Case(lambda s: ["fit", "--config", str(s.tmp)], "--config"),
    "config file that is not UTF-8": Case(
        lambda s: ["fit", "--config", str(write_bytes(s.tmp / "latin1.yaml", b"trainer: # \xe9t\xe9\n"))],
        "latin1.yaml is not UTF-8 text"),
    "config file that is a list": Case(config("list.yaml", "- trainer\n"), "list.yaml holds a list"),
    "empty config file": Case(config("empty.yaml", ""), "empty.yaml holds nothing; a config is a mapping"),
    "a key given twice in a config": Case(config("twice.yaml", "trainer:\n  max_epochs: 2\n  max_epochs: 3\n"),
                                          "twice.yaml"),
    "an unknown section in a config": Case(config("typo.yaml", "trainr:\n  max_epochs: 2\n"), "trainr"),
    # the other commands
    "seg plan onto a config it did not write": Case(
        lambda s: plan(s, "--out", str(write(s.tmp / "mine.yaml", "trainer: {max_epochs: 3}\n"))),
        "mine.yaml exists and was not written by seg plan"),
    "seg plan with a memory target of 0": Case(lambda s: plan(s, "--memory-gb", "0"), "--memory-gb 0: give a positive"),
    "seg plan with a memory target no patch fits": Case(
        lambda s: plan(s, "--memory-gb", "0.0001", "--out", str(s.tmp / "p.yaml")),
        "--memory-gb: 0.00 GiB does not hold"),
    "seg plan of an architecture it does not plan": Case(
        lambda s: plan(s, "--model.architecture=segresnet", "--model.network_kwargs={}", "--out", str(s.tmp / "p")),
        "--model.architecture segresnet: seg plan configures dynunet and unet"),
    "seg lr-find with --min-lr above --max-lr": Case(lr_find("--min-lr", "0.1", "--max-lr", "0.01"),
                                                     "--min-lr 0.1 --max-lr 0.01: --max-lr must be above --min-lr"),
    "seg lr-find of 0 steps": Case(lr_find("--steps", "0"), "--steps 0: give at least"),
    "seg lr-find applied onto a config it did not write": Case(
        lambda s: lr_find("--apply", str(write(s.tmp / "mine.yaml", "model: {lr: 0.1}\n")))(s),
        "mine.yaml exists and was not written by seg lr-find"),
    "an unknown command": Case(lambda s: ["train"], "train"),
    "seg batch with an unknown schedule": Case(batch("--schedulers", "sgdr", "--no-estimate"),
                                               "--schedulers sgdr: unknown; one of none, reduce_on_plateau"),
    "seg batch with an unknown architecture": Case(batch("--archs", "vnet9000", "--no-estimate"), "vnet9000"),
    "seg batch of 0 epochs": Case(batch("--epochs", "0"), "--epochs 0"),
    "seg batch with a negative seed": Case(batch("--seeds", "0", "-1", "--no-estimate"),
                                           "--seeds -1: a seed is 0 or more"),
    "seg batch with a seed twice": Case(batch("--seeds", "0", "1", "0", "--no-estimate"),
                                        "--seeds 0 1 0: 0 given twice; give each seed once"),
    "seg batch with a missing config": Case(lambda s: ["batch", "--config", str(s.tmp / "nowhere.yaml")],
                                            "nowhere.yaml: no such file"),
    "seg batch name that climbs out": Case(batch("--name", "../.."), "--name '../..': a batch name is one folder name"),
    "seg batch --parallel without the local launcher": Case(batch("--parallel", "2"),
                                                            "--parallel 2: runs at once on this machine need "
                                                            "--launcher local"),
    "seg batch --parallel 0": Case(batch("--launcher", "local", "--parallel", "0"), "--parallel 0: 1 or more"),
    "seg batch with SLURM options but no SLURM launcher": Case(
        batch("--partition", "gpu", "--max-parallel", "2"),
        "--partition --max-parallel: options of a SLURM array; add --launcher slurm"),
    "seg batch with a negative --max-requeues": Case(batch("--max-requeues", "-1"), "--max-requeues -1: 0 or more"),
    "seg batch with a missing SLURM template": Case(
        lambda s: batch("--launcher", "slurm", "--template", str(s.tmp / "array.sbatch"))(s),
        "--template", ),
    "seg batch DDP in a SLURM task with fewer processes than devices": Case(
        batch("--launcher", "slurm", "--gpus", "2", "--sbatch=--ntasks-per-node=1", "--no-estimate"),
        "(--ntasks-per-node=1, from --sbatch or --template) for --gpus 2: Lightning runs one process per device; "
        "set --ntasks-per-node=2"),
    "seg batch --launcher slurm without sbatch": Case(
        batch("--launcher", "slurm", "--no-estimate"), "sbatch is not on PATH (no SLURM client here); run the batch "
        "on this machine instead: --launcher local --parallel N", env={"PATH": "/nonexistent-seg-test-path"}),
    "seg batch --status of a batch that does not exist": Case(lambda s: ["batch", "--status", "nowhere"],
                                                              "--status nowhere: no batch there"),
    "seg report into a file": Case(lambda s: ["report", str(s.run), "--out", str(file_in_the_way(s.tmp / "out"))],
                                   "is a file; give a folder for report.png and report.md"),
    "seg report of a folder without runs": Case(
        lambda s: ["report", str(empty_folder(s.tmp / "no_runs")), "--out", str(s.tmp / "report")], "no_runs"),
    "seg synth into a file": Case(lambda s: ["synth", "msd", "--out", str(file_in_the_way(s.tmp / "out"))],
                                  "is a file; give a folder"),
    "seg synth of an unknown kind": Case(lambda s: ["synth", "kits", "--out", str(s.tmp / "kits")], "kits"),
    "seg synth with no cases": Case(lambda s: ["synth", "msd", "--out", str(s.tmp / "none"), "--cases", "0"],
                                    "--cases 0 --shape 48 48 48: give 1 or more cases"),
    "seg synth with a negative shape": Case(
        lambda s: ["synth", "msd", "--out", str(s.tmp / "neg"), "--shape", "-4", "8", "8"], "8 voxels per axis"),
}
