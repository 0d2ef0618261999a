"""Benchmark: seconds per checkpoint write, seg's AtomicCheckpointIO vs Lightning's TorchCheckpointIO.

Both write the same checkpoint (a MONAI UNet 16..256 with AdamW moments, as
`seg` trains it) to the same directory. Run: python benchmarks/checkpoint_write.py [DIR]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from segmentation.model.networks import build_network
from segmentation.training.checkpointing import AtomicCheckpointIO


def realistic_checkpoint() -> dict:
    """State dict and AdamW state of the default UNet after one step."""
    net = build_network("unet", 4, 4, (96, 96, 96))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    return {"state_dict": net.state_dict(), "optimizer_states": [optimizer.state_dict()], "epoch": 0}


def seconds_per_save(io, checkpoint: dict, target: Path, repeats: int) -> float:
    io.save_checkpoint(checkpoint, target)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        io.save_checkpoint(checkpoint, target)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    checkpoint = realistic_checkpoint()
    repeats = 10
    atomic = seconds_per_save(AtomicCheckpointIO(), checkpoint, folder / "atomic.ckpt", repeats)
    plain = seconds_per_save(TorchCheckpointIO(), checkpoint, folder / "plain.ckpt", repeats)
    size = (folder / "atomic.ckpt").stat().st_size / 1e6
    print(f"checkpoint size: {size:.1f} MB ({folder})")
    print(f"Lightning TorchCheckpointIO: {plain * 1000:.0f} ms per save")
    print(f"seg AtomicCheckpointIO (fsync + rename): {atomic * 1000:.0f} ms per save")
    print(f"ratio atomic / Lightning: {atomic / plain:.2f}")


if __name__ == "__main__":
    main()
