"""Cutting training patches from stored volumes: windows, compact items, and finishing them on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai import transforms as mt

from segmentation.core.memory import reuse_freed_memory
from segmentation.data.brats import BraTSDataModule, BraTSRegionsd, labels_to_regions, tensor_labels_to_regions
from segmentation.data.patches import INTENSITY, finish_patches, read_window
from segmentation.data.synthetic import write


def reference_window(array: np.ndarray, starts, size, fill, flips) -> np.ndarray:
    """The window the slow obvious way: pad the whole array with `fill`, slice, flip."""
    margin = 4 * max(size)
    padded = np.stack([np.pad(channel, margin, constant_values=value) for channel, value in zip(array, fill)])
    window = padded[(slice(None), *(slice(a + margin, a + margin + n) for a, n in zip(starts, size)))]
    return np.flip(window, axis=tuple(flips)).copy() if flips else window.copy()


@pytest.mark.unit
@pytest.mark.parametrize("held", ["memory map", "tensor"])
@pytest.mark.parametrize("starts, flips", [((2, 3, 1), ()), ((2, 3, 1), (1, 3)), ((-3, 5, 9), (2,)),
                                           ((-2, -4, -1), (1, 2, 3)), ((8, 1, 10), (3,)),
                                           ((20, 0, 0), (1,)), ((-9, 0, 0), (1, 2))])  # (last two: all fill)
def test_a_window_equals_pad_slice_flip_and_is_a_copy(tmp_path, held, starts, flips):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 12, 10, 14)).astype(np.float16)
    np.save(tmp_path / "image.npy", data)
    array = np.load(tmp_path / "image.npy", mmap_mode="r")
    if held == "tensor":
        array = torch.from_numpy(np.array(array))
    fill, size = [-1.5, 2.0], (6, 7, 8)
    window = read_window(array, starts, size, fill, flips, torch.float32)
    assert window.dtype == torch.float32 and tuple(window.shape) == (2, *size)
    expected = reference_window(data.astype(np.float32), starts, size, fill, flips)
    assert np.array_equal(window.numpy(), expected)
    window.fill_(7.0)
    assert np.array_equal(np.asarray(array, dtype=np.float16), data)  # the volume is untouched


@pytest.mark.unit
def test_uint8_regions_equal_monai_conversion():
    label = torch.from_numpy(np.random.default_rng(1).choice([0, 1, 2, 4], size=(1, 9, 8, 7)).astype(np.uint8))
    ours = labels_to_regions(label, 4)
    monai = mt.ConvertToMultiChannelBasedOnBratsClasses(et_label=4)(label.numpy())
    assert ours.dtype == torch.float32 and np.array_equal(ours.numpy(), monai.astype(np.float32))
    assert torch.equal(ours, labels_to_regions(label.long(), 4))  # the tensor path (e.g. CUDA) agrees


@pytest.mark.unit
def test_finishing_a_batch_applies_each_patch_change_and_the_label_transform():
    rng = np.random.default_rng(2)
    image = torch.from_numpy(rng.normal(size=(3, 4, 5, 5, 5)).astype(np.float16))
    label = torch.from_numpy(rng.choice([0, 1, 2, 4], size=(3, 1, 5, 5, 5)).astype(np.uint8))
    intensity = torch.tensor([[1.05, 0.0], [1.0, -0.07], [0.93, 0.02]])
    batch = finish_patches({"image": image, "label": label, INTENSITY: intensity},
                           BraTSRegionsd(keys="label", enhancing=4))
    assert INTENSITY not in batch and batch["image"].dtype == torch.float32 and batch["label"].shape == (3, 3, 5, 5, 5)
    for i, (scale, shift) in enumerate(intensity.tolist()):
        assert torch.equal(batch["image"][i], image[i].float() * scale + shift)  # bitwise: the same f32 operations
        assert torch.equal(batch["label"][i], labels_to_regions(label[i], 4))
    validation = {"image": torch.ones(1, 1, 2, 2, 2), "label": torch.zeros(1, 1, 2, 2, 2)}
    assert finish_patches(validation, None) is validation


@pytest.mark.unit
@pytest.mark.parametrize("enhancing, values", [(4, [0, 1, 2, 4]), (3, [0, 1, 2, 3])])
def test_brats_regions_of_a_whole_batch_equal_the_per_patch_regions_bit_for_bit(enhancing, values):
    labels = torch.from_numpy(np.random.default_rng(3).choice(values, size=(4, 1, 9, 8, 7)).astype(np.uint8))
    per_patch = torch.stack([labels_to_regions(label, enhancing) for label in labels])  # (what finishing did)
    regions = BraTSRegionsd(keys="label", enhancing=enhancing)
    for batched in (regions.batch_targets(labels),  # the store's uint8 batch on the CPU (NumPy)
                    tensor_labels_to_regions(labels, enhancing),  # the path of a batch on the accelerator
                    tensor_labels_to_regions(labels.long(), enhancing)):
        assert batched.dtype == torch.float32 and batched.shape == (4, 3, 9, 8, 7)
        assert torch.equal(batched.view(torch.int32), per_patch.view(torch.int32))


@pytest.mark.unit
def test_finishing_makes_the_targets_of_the_whole_batch_at_once_where_the_transform_can():
    calls = []

    class Counting(BraTSRegionsd):
        def __call__(self, data):
            calls.append("patch")
            return super().__call__(data)

        def batch_targets(self, labels):
            calls.append(tuple(labels.shape))
            return super().batch_targets(labels)

    label = torch.from_numpy(np.random.default_rng(4).choice([0, 1, 2, 4], size=(3, 1, 5, 5, 5)).astype(np.uint8))
    batch = {"image": torch.zeros(3, 4, 5, 5, 5, dtype=torch.float16), "label": label, INTENSITY: torch.ones(3, 2)}
    finished = finish_patches(batch, Counting(keys="label", enhancing=4))
    assert calls == [(3, 1, 5, 5, 5)] and finished["label"].shape == (3, 3, 5, 5, 5)


@pytest.mark.gpu
def test_brats_regions_of_a_batch_on_cuda_equal_the_per_patch_regions_on_the_cpu():
    labels = torch.from_numpy(np.random.default_rng(5).choice([0, 1, 2, 4], size=(2, 1, 32, 32, 32)).astype(np.uint8))
    per_patch = torch.stack([labels_to_regions(label, 4) for label in labels])
    on_cuda = BraTSRegionsd(keys="label", enhancing=4).batch_targets(labels.cuda())
    assert on_cuda.is_cuda and torch.equal(on_cuda.cpu().view(torch.int32), per_patch.view(torch.int32))


def test_store_batches_travel_compact_and_are_finished_by_the_datamodule_hook(tmp_path):
    root = write("brats", tmp_path / "brats", cases=3, shape=(24, 24, 20), seed=0)
    datamodule = BraTSDataModule(str(root), cache="store", num_workers=0, patch_size=(16, 16, 16), batch_size=2,
                                 samples_per_volume=2)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].dtype == torch.float16 and batch["label"].dtype == torch.uint8
    assert tuple(batch[INTENSITY].shape) == (2, 2)
    finished = datamodule.on_after_batch_transfer(batch, 0)
    assert finished["image"].dtype == torch.float32 and tuple(finished["label"].shape) == (2, 3, 16, 16, 16)


def test_freed_patch_memory_is_kept_for_reuse_on_glibc():
    assert reuse_freed_memory()  # this project's machines run glibc: a False here means patches got 2x slower
