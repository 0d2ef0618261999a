"""Benchmark: where a seg epoch's time goes, against a plain MONAI + PyTorch loop doing the same work.

A 10-case BraTS-layout MRI task (synthetic, 96x96x72), 64³ patches, the brats config's UNet 16..256, the
crop-first store, in-process data loading. Measured per epoch (median of the epochs after the first):

* `seg fit` as configured (its epoch/last/best checkpoints, previews every 10 epochs, Gaussian windows);
* `seg fit` without previews, and without any checkpoint (what those cost);
* a plain loop over the same loaders, network, loss and AdamW: training, sliding-window validation with
  Gaussian weighting and Dice counts, one `torch.save` of weights + optimizer per epoch.

Run: python benchmarks/epoch_overhead.py [EPOCHS] [WORK_DIR]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from monai.inferers import sliding_window_inference
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segmentation.app.lightning_cli import build_cli
from segmentation.core.constants import EPOCH_SECONDS_TAG
from segmentation.data.synthetic import write
from segmentation.model.metrics import overlap_counts

REPO = Path(__file__).resolve().parents[1]


def fit_args(root: Path, epochs: int) -> list[str]:
    """The benchmark's `seg fit` arguments (config, data, small task)."""
    return ["--config", str(REPO / "configs/brats.yaml"), f"--data.root={root}", "--data.patch_size=[64,64,64]",
            "--data.num_workers=0", "--data.cache=store", "--data.val_fraction=0.2", "--data.test_fraction=0",
            f"--trainer.max_epochs={epochs}", "--trainer.enable_progress_bar=false", "--model.sw_batch_size=2"]


def seg_epoch_seconds(root: Path, work: Path, epochs: int, *extra: str) -> float:
    """Median wall seconds per epoch (after the first) of a real `seg fit` subprocess, its checkpoint writes
    included: the time between two epochs' logged metrics, which Lightning writes after the epoch's
    checkpoints (seg's epoch timer stops before them)."""
    logs = work / f"run{len(list(work.glob('run*')))}"
    command = [sys.executable, "-m", "segmentation", "fit", *fit_args(root, epochs),
               f"--trainer.default_root_dir={logs}", *extra]
    subprocess.run(command, check=True, capture_output=True)
    run = next(logs.glob("lightning_logs/*/version_0"))
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    logged = [event.wall_time for event in events.Scalars(EPOCH_SECONDS_TAG)]
    return statistics.median(later - earlier for earlier, later in zip(logged, logged[1:]))


def plain_epoch_seconds(root: Path, work: Path, epochs: int) -> float:
    """Median wall seconds per epoch (after the first) of the plain loop on seg's own loaders and network."""
    cli = build_cli(fit_args(root, epochs))
    model, data = cli.model, cli.datamodule
    data.prepare_data()
    data.setup("fit")
    net, loss = model.net, model.loss
    optimizer = torch.optim.AdamW(net.parameters(), lr=model.hparams.lr, weight_decay=model.hparams.weight_decay)
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        net.train()
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            batch = data.on_after_batch_transfer(batch, 0)  # (on the CPU: what Lightning's hook does)
            optimizer.zero_grad(set_to_none=True)
            loss(net(batch["image"]), batch["label"]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for batch in data.val_dataloader():
                logits = sliding_window_inference(batch["image"], tuple(model.hparams.roi_size), 2, net,
                                                  overlap=model.hparams.sw_overlap, mode="gaussian")
                overlap_counts(torch.sigmoid(logits)[0] > 0.5, batch["label"][0] > 0.5, 3, True)
        torch.save({"state_dict": net.state_dict(), "optimizer": optimizer.state_dict()}, work / "plain.ckpt")
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


def main() -> None:
    """Print seconds per epoch of each variant and its ratio to the plain loop."""
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="seg-epoch-"))
    root = work / "brats"
    if not root.exists():
        write("brats", root, cases=10, shape=(96, 96, 72), seed=0)
    plain = [plain_epoch_seconds(root, work, epochs)]
    rows = {
        "seg fit (as configured)": seg_epoch_seconds(root, work, epochs),
        "seg fit, --preview_every_n_epochs 0": seg_epoch_seconds(root, work, epochs, "--preview_every_n_epochs=0"),
        "seg fit, no checkpoints": seg_epoch_seconds(root, work, epochs, "--trainer.enable_checkpointing=false"),
    }
    plain.append(plain_epoch_seconds(root, work, epochs))  # interleaved: before and after the seg runs
    reference = rows["plain MONAI + PyTorch loop (mean of 2)"] = sum(plain) / 2
    for name, value in rows.items():
        print(f"{name:<42} {value:6.2f} s/epoch   ratio to plain {value / reference:.2f}")


if __name__ == "__main__":
    main()
