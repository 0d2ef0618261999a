"""The nnU-Net-like recipe (configs/fragments/nnunet.yaml) end to end on tiny synthetic runs: it composes with the
demo config, trains DynUNet with deep supervision on a fixed number of steps per epoch, resumes bitwise exactly,
and predicts with the full-resolution output alone."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import torch

from segmentation.core.faults import SIGNAL_VARIABLE
from segmentation.training.preemption import PREEMPTED_EXIT

from ..helpers import DETERMINISTIC, REPO, only_run_dir, resume_in_process, scalars, seg_in_process, tiny_fit_args
from ..helpers import weights as checkpoint_weights

RECIPE = REPO / "configs" / "fragments" / "nnunet.yaml"
# after the tests' tiny fragment: DynUNet on the demo's 32^3 volumes (4 levels: one deep-supervision head)
TINY_RECIPE = ["--config", str(RECIPE), "--data.patch_size=[32,32,32]", "--data.batch_size=2",
               "--model.network_kwargs={filters: [4, 8, 16, 32]}", "--data.steps_per_epoch=2"]


def recipe_fit(root, logs, *overrides: str, signal_at: str = "", status: int = 0):
    """A tiny in-process fit of the recipe that receives `signal_at` (`SIGTERM:3`: after step 3; "" none)."""
    os.environ[SIGNAL_VARIABLE] = signal_at
    try:
        assert seg_in_process(tiny_fit_args(root, f"--trainer.default_root_dir={logs}", *TINY_RECIPE,
                                            *DETERMINISTIC, *overrides)) == status
    finally:
        del os.environ[SIGNAL_VARIABLE]
    return only_run_dir(logs / "lightning_logs")


def test_the_recipe_trains_resumes_exactly_and_predicts_full_resolution(demo_root, tmp_path, capsys):
    run_a = recipe_fit(demo_root, tmp_path / "a", "--trainer.max_epochs=2")
    hparams = torch.load(run_a / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert hparams["hyper_parameters"]["deep_supervision"] and hparams["hyper_parameters"]["architecture"] == "dynunet"
    assert hparams["optimizer_states"][0]["param_groups"][0]["nesterov"]
    assert hparams["global_step"] == 2 * 2  # steps_per_epoch x epochs, though 4 training volumes make 2 batches
    assert any("deep_supervision_heads" in key for key in hparams["state_dict"])

    # preempted inside epoch 1 (after its first of 2 steps), resumed from that position
    run_b = recipe_fit(demo_root, tmp_path / "b", "--trainer.max_epochs=2", signal_at="SIGTERM:3",
                       status=PREEMPTED_EXIT)
    assert "inside epoch 1 after 1 of its batches" in resume_in_process(run_b / "checkpoints/last.ckpt",
                                                                         capsys=capsys)
    final_a, final_b = checkpoint_weights(run_a / "checkpoints/last.ckpt"), checkpoint_weights(
        run_b / "checkpoints/last.ckpt")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), "weights differ from the uninterrupted run"
    assert [v for _, v in scalars(run_b, "val/dice")] == [v for _, v in scalars(run_a, "val/dice")]

    image = next((demo_root / "imagesTr").glob("*.nii.gz"))
    assert seg_in_process(["predict", f"--ckpt_path={run_a / 'checkpoints/last.ckpt'}",
                           f"--data.predict_images=[{image}]", f"--prediction_dir={tmp_path / 'out'}"]) == 0
    written = nib.load(str(tmp_path / "out" / image.name))
    assert written.shape == nib.load(str(image)).shape  # one label map, from the full-resolution head
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
