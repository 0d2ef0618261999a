"""BraTS regions (sigmoid outputs) validated by sliding windows under bf16-mixed: float32 logits and Dice, and the
Dice of a float32 evaluation within a bound derived from bf16's precision. The same body on the CPU (Lightning's
bf16-mixed is CPU autocast there) and, marked `gpu`, on CUDA."""

from __future__ import annotations

import math
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from segmentation.core.constants import MONITOR
from segmentation.data.brats import labels_to_regions
from segmentation.data.layouts.brats import BRATS2021, REGIONS
from segmentation.data.synthetic.brats import brain_tissues, modality_volumes, tissue_masks, tumour_labels
from segmentation.model.module import SegmentationModule

SHAPE = (40, 36, 28)  # divisible by 4 (the network's two strides), so whole volumes train too
ROI, SW_BATCH, OVERLAP = (16, 16, 16), 4, 0.25
# windows per axis at overlap 0.25 (stride 12): 40 -> 3, 36 -> 3, 28 -> 2: 18 windows, 4 per forward: 5 forwards,
# the last one of 2 windows (a partial batch)
WINDOWS = 3 * 3 * 2
TRAIN_STEPS = 60
U = 2.0 ** -8  # bf16 keeps 8 significant bits: one rounding is off by at most 2^-8 of the value, relatively
LOGIT_BAND = 8 * U  # the bf16 logits' error bound, as a fraction of the largest float32 logit (see the docstring)
DICE_TOLERANCE = 0.05  # a region's |Dice(bf16) - Dice(fp32)|, at most (see the docstring)


def brats_case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic BraTS 2021 case as a batch of one: (1, 4, X, Y, Z) z-scored image, (1, 3, X, Y, Z) regions."""
    rng, size = np.random.default_rng(seed), np.array(SHAPE, dtype=float)
    brain, healthy = brain_tissues(rng, size)
    label = tumour_labels(rng, size, brain, BRATS2021.enhancing)
    image = np.stack(modality_volumes(rng, brain, tissue_masks(healthy, label, BRATS2021.enhancing))).astype(np.float32)
    for channel in image:  # MRI z-score on the brain's voxels, as the BraTS pipeline normalises
        inside = channel > 0
        channel[inside] = (channel[inside] - channel[inside].mean()) / channel[inside].std()
    regions = torch.as_tensor(labels_to_regions(torch.from_numpy(label[None]), BRATS2021.enhancing))
    return torch.from_numpy(image)[None], regions[None].float()


def regions_module() -> SegmentationModule:
    """A small UNet with sigmoid outputs for the regions TC, WT, ET (as BraTS configures it)."""
    return SegmentationModule("unet", in_channels=4, out_channels=3, class_names=REGIONS, multilabel=True,
                              roi_size=ROI, sw_batch_size=SW_BATCH, sw_overlap=OVERLAP,
                              network_kwargs={"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 0})


@pytest.fixture(scope="module")
def trained() -> tuple[dict, tuple[torch.Tensor, torch.Tensor]]:
    """Weights trained in float32 on the CPU (seeded: the same on every machine) for a few steps on two cases, so
    that the predictions of a third case are neither constant nor certain; and that validation case."""
    torch.manual_seed(0)
    module = regions_module()
    cases = [brats_case(seed) for seed in (0, 2)]
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    for step in range(TRAIN_STEPS):
        image, target = cases[step % len(cases)]
        loss = module.loss(module(image), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return module.state_dict(), brats_case(1)


def validate(state: dict, case: tuple[torch.Tensor, torch.Tensor], device: torch.device,
             precision: str) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """The module's validation path on one case (validation_step under Lightning's precision context, then the
    epoch end, with a stand-in trainer): its logits, what it logged, and how many forwards the windows took."""
    module = regions_module()
    module.load_state_dict(state)
    module.to(device).eval()
    logits: list[torch.Tensor] = []
    infer_volume = module.infer_volume

    def recorded(image: torch.Tensor) -> torch.Tensor:
        logits.append(infer_volume(image))
        return logits[-1]

    module.infer_volume = recorded  # type: ignore[method-assign]
    forwards: list[int] = []
    module.net.register_forward_pre_hook(lambda net, args: forwards.append(len(args[0])))
    logged: dict[str, torch.Tensor] = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)  # type: ignore[method-assign]
    module.trainer = SimpleNamespace(world_size=1, sanity_checking=False, lr_scheduler_configs=[])  # type: ignore
    image, target = case
    batch = {"image": image.to(device), "label": target.to(device), "index": torch.tensor([0])}
    context = MixedPrecision("bf16-mixed", device.type).val_step_context() if precision == "bf16-mixed" \
        else nullcontext()
    with torch.no_grad():
        module.on_validation_epoch_start()
        with context:  # as Lightning's validation loop runs the step (the epoch end runs outside it)
            module.validation_step(batch, 0)
        module.on_validation_epoch_end()
    (found,) = logits
    return found, logged, len(forwards)


@pytest.mark.unit
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_bf16_sliding_window_validation_of_regions_matches_float32(trained, device, monkeypatch):
    """bf16-mixed validation of sigmoid regions gives float32 logits and Dice, the Dice of float32 within a bound.

    The bound. bf16 keeps 8 significant bits, so each rounding under autocast is off by at most u = 2^-8 of its
    value (relatively); the convolutions accumulate in float32, and the errors of the network's ~10 rounded layers
    add up to a few u of the activations' scale. So every bf16 logit is within delta = 8 u max|z32| of its float32
    logit z32 (asserted; measured on the CPU: at most 1.0-1.8 u max|z32|, a margin over 4x for CUDA's kernels). A
    region's prediction (sigmoid(z) > 0.5, i.e. z > 0) can then flip only at voxels with |z32| <= delta (asserted).
    Flipping f voxels moves Dice = 2 TP / S (S = predicted + true voxels) by |2 (a S - b TP) / (S (S + b))| with
    |a|, |b| <= f (the changes of TP and of S) and TP <= S / 2: at most 2 f / (S - f). That holds exactly whatever
    the kernels, so it is asserted with the flips counted: no flip, no Dice change (Dice counted in bf16, which
    holds integers exactly only to 256, or from bf16 probabilities, would break it).

    The tolerance. How many voxels flip is the kernels' business; measured on the CPU (seeded weights trained 40
    to 120 steps, this case): 0-2 flips per region once trained 60 steps or more (5-14 at 40, where the predictions
    are still diffuse), |Dice(bf16) - Dice(fp32)| at most 0.0036 per region and 0.0012 for the mean; at 60 steps,
    as here, 0, 0 and 0.0021 (2 flips in ET, S = 356). DICE_TOLERANCE = 0.05 is ~9 flips in the smallest region
    (one flip there is worth 2 / 356 = 0.0056): over 10x the CPU's worst, room for CUDA's other summation orders,
    still far below a broken autocast (a region lost or flooded moves its Dice by its whole value, 0.38-0.86 here).
    """
    if device == "cuda":  # a float32 reference without TF32 (10-bit) convolutions and matmuls
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    state, case = trained
    target = case[1] > 0.5
    z32, logged32, forwards = validate(state, case, torch.device(device), "32-true")
    z16, logged16, _ = validate(state, case, torch.device(device), "bf16-mixed")
    assert forwards == math.ceil(WINDOWS / SW_BATCH) == 5 and WINDOWS % SW_BATCH != 0  # several, the last partial
    assert z16.dtype == z32.dtype == torch.float32, (z16.dtype, z32.dtype)  # sliding windows add up in float32
    assert z16.device.type == device
    names = [MONITOR, *(f"{MONITOR}/{name}" for name in REGIONS)]
    for logged in (logged16, logged32):
        assert all(logged[name].dtype == torch.float32 for name in names), {n: logged[n].dtype for n in names}
    z16, z32 = z16.cpu(), z32.cpu()
    error, scale = (z16 - z32).abs(), float(z32.abs().max())
    delta = LOGIT_BAND * scale
    assert 0.0 < float(error.max()) <= delta, (float(error.max()) / scale / U, "u of the largest logit")  # (bf16 ran)
    for channel, name in enumerate(REGIONS):
        p32, p16, truth = z32[0, channel] > 0, z16[0, channel] > 0, target[0, channel]
        assert 0 < int(p32.sum()) < p32.numel() and truth.any(), name  # a real prediction, not a constant one
        flipped = p32 != p16
        band = z32[0, channel].abs() <= delta
        assert not (flipped & ~band).any(), name  # flips only where float32 is within delta of the threshold
        flips, size = int(flipped.sum()), int(p32.sum() + truth.sum())
        d16, d32 = float(logged16[f"{MONITOR}/{name}"]), float(logged32[f"{MONITOR}/{name}"])
        assert 0.0 < d32 < 1.0, (name, d32)
        assert abs(d16 - d32) <= 2 * flips / (size - flips) + 1e-6, (name, d16, d32, flips, size)  # (float32 logs)
        assert abs(d16 - d32) <= DICE_TOLERANCE, (name, d16, d32, flips, size)
    assert abs(float(logged16[MONITOR]) - float(logged32[MONITOR])) <= DICE_TOLERANCE
