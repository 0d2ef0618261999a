"""`--data.steps_per_epoch`: a fixed number of batches per epoch, volumes drawn with replacement, seeded, resumable.

Not the unit tier: the store's set-up starts a process (it inspects the machine).
"""

from __future__ import annotations

import pytest
import torch


def epoch_patches(root, cache: str, position=None) -> list[torch.Tensor]:
    """Every training patch of epoch 0 with `--data.steps_per_epoch 3` (2 patches a batch), from `position` on."""
    from segmentation.data.msd import MSDDataModule

    datamodule = MSDDataModule(str(root), patch_size=(16, 16, 16), batch_size=2, samples_per_volume=1,
                               num_workers=0, cache=cache, val_fraction=0.34, steps_per_epoch=3,
                               cache_dir=str(root / f".cache_{cache}"))
    datamodule.setup("fit")
    datamodule.resume_position = position
    batches = [datamodule.on_after_batch_transfer(batch, 0) for batch in datamodule.train_dataloader()]
    return [patch for batch in batches for patch in batch["image"]]


@pytest.mark.parametrize("cache", ["none", "store"])
def test_steps_per_epoch_draws_that_many_batches_seeded_and_resumable(demo_root, cache):
    patches = epoch_patches(demo_root, cache)
    assert len(patches) == 3 * 2  # steps_per_epoch x batch_size, though the split has only 4 training volumes
    again = epoch_patches(demo_root, cache)
    assert all(torch.equal(a, b) for a, b in zip(patches, again))  # seeded: the same on a rerun
    assert not all(torch.equal(patches[0], patch) for patch in patches[1:])
    resumed = epoch_patches(demo_root, cache, {"epoch": 0, "consumed": 2 * 2})  # after 2 of the 3 batches
    assert len(resumed) == 2 and all(torch.equal(a, b) for a, b in zip(resumed, patches[4:]))
