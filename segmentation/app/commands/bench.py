"""`seg bench --config X [--data.* ...] [--steps N] [--json]`: data pipeline, network ceiling, the Lightning loop,
seg fit's trainer and a plain loop, measured side by side on this machine and data (`measure.bench`)."""

from __future__ import annotations

import json
import time
from typing import NamedTuple

USAGE = """usage: seg bench --config CONFIG [--data.* ...] [--steps N] [--json] [--data-only | --network-only]

Measures, in one process: (a) the data pipeline alone in patches/s for each cache mode (none, store, gpu and the
configured one) with one worker and with the configured workers; (b) the network alone on synthetic tensors on
the device (forward + backward + optimizer step, the configured precision and compile): the ceiling; (c) the
Lightning loop alone (no seg callbacks); (d) seg fit's trainer (the same loop with seg's callbacks, logger and
checkpoints; no progress bar, no validation); (e) a plain MONAI + PyTorch loop on the same data. Every figure
trains the configured network itself (compiled if --model.compile) with the data on the device it trains on
(cache: gpu volumes included). Prints the table, the ratios fit/ceiling, fit/plain and fit/Lightning, and a
verdict (--json: every figure). --steps: timed steps or batches per figure (default 10).
--data-only: (a) alone (a CPU-only machine measuring the pipeline it would feed a GPU with). --network-only:
(b) to (e) alone, on the configured cache (a second bench of the same data, e.g. another network)."""

MODES = ("none", "store", "gpu")


class BenchOptions(NamedTuple):
    """seg bench's own options, and the LightningCLI arguments (`rest`) of the command line."""

    rest: list[str]
    steps: int = 10
    as_json: bool = False
    data_only: bool = False
    network_only: bool = False


def split_options(argv: list[str]) -> BenchOptions:
    """seg bench's options (--steps, --json, --data-only, --network-only) and the rest of the command line."""
    steps, flags, rest = 10, set(), []
    arguments = iter(argv)
    for arg in arguments:
        if arg in ("--json", "--data-only", "--network-only"):
            flags.add(arg)
        elif arg == "--steps" or arg.startswith("--steps="):
            steps = int(arg.split("=", 1)[1] if "=" in arg else next(arguments))
        else:
            rest.append(arg)
    return BenchOptions(rest, max(1, steps), "--json" in flags, "--data-only" in flags, "--network-only" in flags)


def measure_data(rest: list[str], configured, device, steps: int, figures) -> None:
    """Patches/s of each cache mode's loader (and its one-off preparation), into `figures`."""
    from ...measure.bench import data_rate
    from ..lightning_cli import build_cli

    for mode in dict.fromkeys([*MODES, configured.hparams.cache]):
        is_configured = mode == configured.hparams.cache
        datamodule = configured if is_configured else build_cli([*rest, f"--data.cache={mode}"]).datamodule
        datamodule.use_device(device)
        started = time.perf_counter()
        datamodule.prepare_data()
        datamodule.setup("fit")
        if mode != "none":
            figures.preparation_seconds[mode] = time.perf_counter() - started
        for workers in [0] if mode == "gpu" else sorted({1, datamodule.hparams.num_workers}):
            where = "in process" if workers == 0 else f"{workers} worker{'s' if workers > 1 else ''}"
            figures.data_patches_per_second[f"{mode}, {where}"] = data_rate(
                datamodule.training_loader(workers), steps, device, datamodule.on_after_batch_transfer)


def main(argv: list[str]) -> int:
    """Measure the figures and print them (table and verdict, or JSON)."""
    rest, steps, as_json, data_only, network_only = split_options(argv)
    if not rest or rest[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    from ...measure.bench import (
        BenchFigures,
        device_of,
        fit_rate,
        lightning_rate,
        network_ceiling,
        plain_loop_rate,
        trainer_settings,
    )
    from ..lightning_cli import build_cli

    cli = build_cli(rest)
    trainer_config = trainer_settings(dict(cli.config_init.get("trainer") or {}))
    device, datamodule, model = device_of(trainer_config), cli.datamodule, cli.model
    precision = str(trainer_config.get("precision") or "32-true")
    figures = BenchFigures(device=str(device), precision=precision, compiled=bool(model.hparams.compile),
                           batch_size=datamodule.hparams.batch_size)
    if not network_only:
        measure_data(rest, datamodule, device, steps, figures)
    if data_only:
        print(json.dumps(figures.data_as_dict()) if as_json else figures.data_table(), flush=True)
        return 0
    datamodule.use_device(device)  # every figure: cache: gpu volumes on the device it trains on
    if network_only:
        datamodule.prepare_data()  # (measure_data's loop prepares it otherwise)
    datamodule.setup("fit")
    finish = datamodule.on_after_batch_transfer
    batch = next(iter(datamodule.train_dataloader()))
    figures.ceiling_samples_per_second = network_ceiling(model, batch, device, precision, steps, finish)
    plain = [plain_loop_rate(model, datamodule.train_dataloader(), device, precision, steps, finish)]
    figures.lightning_samples_per_second = lightning_rate(model, datamodule, trainer_config, steps)
    figures.fit_samples_per_second = fit_rate(model, datamodule, trainer_config, steps)
    plain.append(plain_loop_rate(model, datamodule.train_dataloader(), device, precision, steps, finish))
    figures.plain_samples_per_second = sum(plain) / len(plain)
    print(json.dumps(figures.as_dict()) if as_json else figures.table(), flush=True)
    return 0
