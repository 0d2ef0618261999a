"""The samplers: an epoch's order is a function of (seed, epoch), dealt out by rank, resumable inside an epoch."""

from __future__ import annotations

import pytest
import torch

from segmentation.data.sampling import EpochSeededSampler, ShardSampler, epoch_seed

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def indices(epoch_sampler) -> list[int]:
    """The volume indices an iteration yields (each comes as `(index, epoch)`)."""
    return [index for index, _ in epoch_sampler]


def sampler(size: int, rank: int = 0, world_size: int = 1, epoch: int = 0) -> EpochSeededSampler:
    return EpochSeededSampler(size, seed=3, generator=torch.Generator(), start_epoch=epoch, rank=rank,
                              world_size=world_size)


@pytest.mark.parametrize("size, world_size", [(7, 2), (8, 4), (3, 2), (1, 3)])
def test_ranks_deal_out_one_permutation_in_equal_shares(size, world_size):
    shares = [indices(sampler(size, rank, world_size, epoch=5)) for rank in range(world_size)]
    assert len({len(share) for share in shares}) == 1  # DDP ranks must take the same number of steps
    assert all(len(share) == len(sampler(size, rank, world_size)) for rank, share in enumerate(shares))
    dealt = [index for position in range(len(shares[0])) for index in (share[position] for share in shares)]
    whole = indices(sampler(size, epoch=5))
    assert dealt[:size] == whole and set(dealt) == set(range(size))  # the rest only repeats, to even the shares


def test_the_order_depends_on_seed_and_epoch_only():
    assert indices(sampler(10, epoch=2)) == indices(sampler(10, epoch=2))
    assert indices(sampler(10, epoch=2)) != indices(sampler(10, epoch=3))


def test_ranks_seed_their_random_streams_apart_and_rank_0_as_one_process():
    sampler(4, rank=0, world_size=2, epoch=1)
    rank0 = torch.rand(3)
    sampler(4, rank=1, world_size=2, epoch=1)
    rank1 = torch.rand(3)
    sampler(4, epoch=1)
    assert torch.equal(torch.rand(3), rank0) and not torch.equal(rank0, rank1)
    assert epoch_seed(3, 1, rank=0) == epoch_seed(3, 1)


def test_a_resume_inside_an_epoch_serves_the_rest_of_that_epoch_once():
    whole = indices(sampler(9, rank=1, world_size=2, epoch=4))
    resumed = sampler(9, rank=1, world_size=2, epoch=4)
    resumed.resume_inside(4, 3 * 2)  # 3 volumes trained by each of the 2 ranks
    assert indices(resumed) == whole[3:]
    assert indices(resumed) == whole  # the next iteration (e.g. after set_epoch) is whole again
    other = sampler(9, epoch=4)
    other.resume_inside(3, 2)  # a position of another epoch: ignored
    assert indices(other) == indices(sampler(9, epoch=4))


def test_a_resume_on_another_world_size_deals_out_exactly_the_volumes_not_yet_trained():
    permutation = indices(sampler(10, epoch=2))
    shares = []
    for rank in range(3):
        resumed = sampler(10, rank=rank, world_size=3, epoch=2)
        resumed.resume_inside(2, 4)  # 2 ranks had trained 2 volumes each
        shares.append(indices(resumed))
    assert sorted(set(sum(shares, []))) == sorted(permutation[4:]) and len({len(s) for s in shares}) == 1


def test_validation_shards_cover_every_case_once():
    shards = [list(ShardSampler(5, rank, 2)) for rank in range(2)]
    assert shards == [[0, 2, 4], [1, 3]] and [len(ShardSampler(5, r, 2)) for r in range(2)] == [3, 2]


def test_an_items_random_choices_depend_on_seed_epoch_and_index_only():
    from monai import transforms as mt
    from monai.data import Dataset

    from segmentation.data.sampling import SeededItems

    noise = mt.Compose([mt.RandGaussianNoised(keys="x", prob=1.0)])
    items = SeededItems(Dataset([{"x": torch.zeros(1, 4)} for _ in range(3)], noise), noise, seed=7)
    first = items[(1, 2)]["x"]
    items[(0, 2)], items[(2, 5)]  # other draws in between change nothing
    assert torch.equal(items[(1, 2)]["x"], first)
    assert not torch.equal(items[(1, 3)]["x"], first) and not torch.equal(items[(2, 2)]["x"], first)


def drawing(draws: int, rank: int = 0, world_size: int = 1, epoch: int = 0) -> EpochSeededSampler:
    return EpochSeededSampler(5, seed=3, generator=torch.Generator(), start_epoch=epoch, rank=rank,
                              world_size=world_size, draws=draws)


def test_fixed_draws_per_epoch_are_seeded_with_replacement_and_numbered():
    keys = list(drawing(12, epoch=2))
    assert len(keys) == len(drawing(12)) == 12  # more draws than the 5 volumes: with replacement
    assert [position for _, _, position in keys] == list(range(12)) and {e for _, e, _ in keys} == {2}
    assert len({index for index, _, _ in keys}) < 12  # a volume drawn again (its position seeds another patch)
    assert keys == list(drawing(12, epoch=2)) and keys != list(drawing(12, epoch=3))  # seeded by (seed, epoch)


def test_fixed_draws_are_dealt_out_by_rank_and_resume_inside_the_epoch():
    whole = list(drawing(12, epoch=1))
    shares = [list(drawing(12, rank, 2, epoch=1)) for rank in range(2)]
    assert shares[0] == whole[0::2] and shares[1] == whole[1::2] and len(drawing(12, 1, 2)) == 6
    resumed = drawing(12, epoch=1)
    resumed.resume_inside(1, 8)  # 4 batches of 2 volumes trained
    assert list(resumed) == whole[8:]
