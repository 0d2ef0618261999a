"""What seg adds to a trainer by default (training.defaults)."""

from __future__ import annotations

import pytest
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment

from segmentation.core.errors import SegError
from segmentation.training.checkpoint_writer import EpochCheckpointWriter
from segmentation.training.defaults import accelerator_defaults, with_seg_plugins

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_a_cuda_machine_gets_bf16_and_cudnn_autotuning_unless_the_config_says_otherwise():
    assert accelerator_defaults({}, cuda_available=True) == {"precision": "bf16-mixed", "benchmark": True}
    assert accelerator_defaults({"precision": "32-true", "deterministic": True}, cuda_available=True) == {
        "deterministic": "warn"}  # (strict mode would stop at NLLLoss / trilinear backward: see below)
    assert accelerator_defaults({"deterministic": True}, cuda_available=False) == {}  # the CPU: strict, bitwise
    assert accelerator_defaults({"accelerator": "cpu"}, cuda_available=True) == {}
    assert accelerator_defaults({}, cuda_available=False) == {}


def test_configured_plugins_keep_the_atomic_checkpoint_writer_and_a_second_writer_is_refused():
    environment = LightningEnvironment()
    kept = with_seg_plugins([environment], on_slurm=True)
    assert kept[0] is environment and isinstance(kept[1], EpochCheckpointWriter) and len(kept) == 2  # (its own env)
    on_slurm = with_seg_plugins(None, on_slurm=True)
    assert isinstance(on_slurm[0], EpochCheckpointWriter) and isinstance(on_slurm[1], SLURMEnvironment)
    assert not on_slurm[1].auto_requeue
    with pytest.raises(SegError, match="--trainer.plugins: a CheckpointIO plugin would replace"):
        with_seg_plugins([TorchCheckpointIO()], on_slurm=False)


def test_torch_still_has_no_deterministic_cuda_kernel_for_what_seg_runs_in_warn_mode():
    """`deterministic: true` on CUDA becomes "warn" because torch documents these as raising in strict mode; when an
    upgrade gives them deterministic kernels, this fails and strict mode can come back."""
    documented = " ".join(torch.use_deterministic_algorithms.__doc__.split())
    raising = documented.split("nondeterministic operations will throw a", 1)[1]
    assert ":class:`torch.nn.NLLLoss` when called on a CUDA tensor" in raising
    assert "interpolate` when attempting to differentiate a CUDA tensor" in raising and "``trilinear``" in raising
