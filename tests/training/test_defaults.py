"""What seg adds to a trainer by default (training.defaults)."""

from __future__ import annotations

import pytest

from segmentation.training.defaults import accelerator_defaults

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_a_cuda_machine_gets_bf16_and_cudnn_autotuning_unless_the_config_says_otherwise():
    assert accelerator_defaults({}, cuda_available=True) == {"precision": "bf16-mixed", "benchmark": True}
    assert accelerator_defaults({"precision": "32-true", "deterministic": True}, cuda_available=True) == {}
    assert accelerator_defaults({"accelerator": "cpu"}, cuda_available=True) == {}
    assert accelerator_defaults({}, cuda_available=False) == {}
