"""Command-line reading done before LightningCLI parses: whole-number batch limits stay counts."""

from __future__ import annotations

import pytest

from segmentation.app.argv import integer_limits, with_integer_limits

pytestmark = pytest.mark.unit


def test_a_whole_number_limit_is_a_count_and_a_fraction_is_left_to_lightning(tmp_path):
    config = tmp_path / "limits.yaml"
    config.write_text("trainer:\n  limit_val_batches: 2\n  limit_train_batches: 0.5\n")
    assert integer_limits(["fit", "--config", str(config)]) == {"limit_val_batches": 2}
    assert integer_limits(["fit", "--config", str(config), "--trainer.limit_val_batches=0.25"]) == {}
    assert integer_limits(["fit", "--trainer.limit_test_batches", "3", "--trainer.limit_val_batches=1"]) == {
        "limit_test_batches": 3, "limit_val_batches": 1}
    assert integer_limits(["fit", "--trainer.limit_val_batches=1.0"]) == {}


def test_the_stored_config_keeps_a_count_of_batches_a_resume_then_reads_as_one():
    stored = "trainer:\n  limit_val_batches: 1.0\n  limit_train_batches: null\nmodel:\n  lr: 1.0\n"
    written = with_integer_limits(stored, {"limit_val_batches": 1})
    assert written == "trainer:\n  limit_val_batches: 1\n  limit_train_batches: null\nmodel:\n  lr: 1.0\n"
    assert integer_limits(["fit", "--config", written]) == {"limit_val_batches": 1}
