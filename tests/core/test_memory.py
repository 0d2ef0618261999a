"""The budget of `cache: gpu`: training volumes beside the parameters, the optimizer's state and one measured step."""

from __future__ import annotations

import pytest
import torch

from segmentation.core.errors import SegError
from segmentation.core.memory import GiB, GpuCacheBudget, measure_step_peak, optimizer_copies, parameter_bytes


@pytest.mark.unit
def test_volumes_that_fit_alone_are_refused_beside_the_model_optimizer_and_step():
    # 30 GiB of volumes in 40 GiB free: the old check (80% of free: 32 GiB) let them in; training needs 8 more
    budget = GpuCacheBudget("cuda:0", free=40 * GiB, volumes=30 * GiB, volume_count=400, parameters=GiB // 2,
                            copies=2, step_peak=6 * GiB + GiB // 2)
    assert budget.training == 8 * GiB and budget.needed == 38 * GiB and budget.usable == 36 * GiB
    with pytest.raises(SegError) as refused:
        budget.refuse_if_short()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("--data.cache gpu: every rank holds all 400 training volumes")
    for words in ("(30.00 GiB)", "parameters 0.50 GiB", "optimizer state 1.00 GiB (2 copies)",
                  "one training step 6.50 GiB (measured)", "38.00 GiB in all", "cuda:0 has 40.00 GiB free",
                  "90% of it may be used: 36.00 GiB", "--data.cache store", "--data.cache memory",
                  "a smaller --data.batch_size or --data.patch_size"):
        assert words in message


@pytest.mark.unit
def test_what_fits_is_not_refused_and_the_patch_advice_comes_only_when_the_step_makes_it_short():
    GpuCacheBudget("cuda:0", free=40 * GiB, volumes=30 * GiB, volume_count=4, parameters=GiB // 4,
                   step_peak=GiB).refuse_if_short()  # 31.75 of 36
    with pytest.raises(SegError) as refused:
        GpuCacheBudget("cuda:0", free=40 * GiB, volumes=37 * GiB, volume_count=4, step_peak=GiB).refuse_if_short()
    assert "--data.cache store" in str(refused.value) and "--data.patch_size" not in str(refused.value)


@pytest.mark.unit
def test_sgd_keeps_one_copy_adam_two_and_ranks_sharing_a_memory_each_hold_every_volume():
    assert (optimizer_copies("adamw"), optimizer_copies("Adam"), optimizer_copies("sgd")) == (2, 2, 1)
    assert optimizer_copies(None) == 2  # unknown: the larger
    sgd, adam = (GpuCacheBudget("cuda:0", 10 * GiB, 0, 0, parameters=GiB, copies=c) for c in (1, 2))
    assert (sgd.needed, adam.needed) == (2 * GiB, 3 * GiB)
    shared = GpuCacheBudget("cpu", free=20 * GiB, volumes=4 * GiB, volume_count=12, ranks=4, parameters=GiB // 4,
                            copies=1)
    assert shared.needed == 4 * (4 * GiB + GiB // 2) == 18 * GiB == shared.usable  # fits, just
    shared.refuse_if_short()
    shared = GpuCacheBudget("cpu", free=20 * GiB, volumes=5 * GiB, volume_count=12, ranks=4, parameters=GiB // 4,
                            copies=1)  # 4 x 5 GiB: one rank alone would fit
    with pytest.raises(SegError, match="each of the 4 ranks sharing cpu holds all 12 training volumes"):
        shared.refuse_if_short()
    assert "not measured" in shared.parts()


@pytest.mark.unit
def test_parameter_bytes_count_every_parameter():
    assert parameter_bytes(torch.nn.Conv3d(2, 3, 3)) == (2 * 3 * 27 + 3) * 4 and parameter_bytes(None) == 0


@pytest.mark.gpu
def test_one_step_is_measured_on_cuda_and_leaves_the_module_as_it_was():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(4, 16, 3, padding=1), torch.nn.BatchNorm3d(16), torch.nn.ReLU(),
                              torch.nn.Dropout(0.5), torch.nn.Conv3d(16, 3, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cuda = torch.device("cuda", torch.cuda.current_device())
    rng = torch.cuda.get_rng_state(cuda)
    peak = measure_step_peak(net, (2, 4, 32, 32, 32), cuda)
    activation = 2 * 16 * 32**3 * 4  # one float32 feature map of the first layer
    assert peak > 2 * activation and peak < 200 * activation
    assert next(net.parameters()).device.type == "cpu" and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # running statistics restored
    assert torch.equal(torch.cuda.get_rng_state(cuda), rng)
    half = measure_step_peak(net, (2, 4, 32, 32, 32), cuda, torch.bfloat16)
    assert 0 < half < peak
