"""Under DDP, a check after every training epoch that all ranks hold the same weights and learning rate.

DDP keeps replicas equal only as long as every rank applies the same update: a schedule decided from a
rank's own validation value, or a rank that skipped a step, makes them drift apart silently, and the
checkpoint (rank 0's) hides it. One all-gather of three numbers per epoch (the LR and two checksums of the
weights) finds it; the fit stops with a message naming the epoch and what differs.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.errors import SegError
from ..core.log import log


def weight_checksums(module: torch.nn.Module) -> tuple[float, float]:
    """(sum, sum of squares) of every parameter, in float64: equal weights give equal checksums, bitwise.
    The sums run where the weights are; two numbers cross to the host."""
    total = squares = torch.zeros((), dtype=torch.float64)
    for parameter in module.parameters():
        values = parameter.detach().double()
        total, squares = total.to(values.device) + values.sum(), squares.to(values.device) + (values * values).sum()
    return float(total), float(squares)


class RankAgreement(Callback):
    """Compares LR and weight checksums across ranks at every epoch's end (a no-op on one process)."""

    def __init__(self) -> None:
        self.epochs_checked = 0

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Gather (lr, checksums) from every rank; raise a SegError naming the epoch if any rank differs."""
        if trainer.world_size < 2:
            return
        lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        mine = torch.tensor([lr, *weight_checksums(pl_module)], dtype=torch.float64, device=pl_module.device)
        every = pl_module.all_gather(mine).reshape(trainer.world_size, 3).cpu()
        if not bool((every == every[0]).all()):
            rows = "; ".join(f"rank {rank}: lr {row[0]:.6g}, weights {row[1]:.10g} / {row[2]:.10g}"
                             for rank, row in enumerate(every.tolist()))
            raise SegError(f"after epoch {trainer.current_epoch} the {trainer.world_size} DDP ranks disagree ({rows}): "
                           f"their replicas have drifted apart; the checkpoints of this epoch hold rank 0's")
        self.epochs_checked += 1

    @override
    def on_fit_end(self, trainer, pl_module) -> None:
        """Say, once, that the ranks agreed (what a test of a multi-GPU run looks for)."""
        if self.epochs_checked and trainer.is_global_zero:
            log.info(f"ranks: {trainer.world_size}, weights and learning rate equal on all after each of "
                  f"{self.epochs_checked} epochs")
