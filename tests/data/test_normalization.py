"""`--data.normalization`: the planned CT z-score and per-channel z-score, refused when malformed, applied by every
pipeline, keyed into the store, guarded in ensembles, carried by the checkpoint to `seg predict` and `seg export`."""

from __future__ import annotations

import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from monai import transforms as mt
from monai.bundle import ConfigParser

from segmentation.core.errors import SegError
from segmentation.data.brats import BraTSDataModule
from segmentation.data.msd import MSDDataModule
from segmentation.data.normalization import normalization_transform
from segmentation.data.synthetic import write
from segmentation.export import standalone
from segmentation.export.bundle import intensity_step
from segmentation.export.contract import build_contract, intensity_of
from segmentation.training.ensembles import disagreements, preprocessing_settings

from ..helpers import DEMO_CONFIG, TINY_CONFIG, only_run_dir, run_seg

CT = {"scheme": "ct", "clip": [-50.0, 300.0], "mean": 100.0, "std": 50.0}
OTHER_CT = {"scheme": "ct", "clip": [-50.0, 300.0], "mean": 280.0, "std": 5.0}


def ct_volume(seed: int = 0) -> np.ndarray:
    """A (1, X, Y, Z) CT-like volume spanning well past both ends of the CT window."""
    return np.random.default_rng(seed).uniform(-1000, 1200, size=(1, 12, 10, 8)).astype(np.float32)


def normalised(settings: dict, image: np.ndarray, channels: int = 1) -> np.ndarray:
    out = normalization_transform(settings, channels)({"image": torch.from_numpy(image.copy())})["image"]
    return np.asarray(out, dtype=np.float64)


def clip_then_zscore(image: np.ndarray, clip, mean: float, std: float) -> np.ndarray:
    return (np.clip(image.astype(np.float64), *clip) - mean) / std


@pytest.mark.unit
def test_ct_is_clip_then_zscore_with_the_fixed_statistics():
    image = ct_volume()
    expected = clip_then_zscore(image, CT["clip"], CT["mean"], CT["std"])
    np.testing.assert_allclose(normalised(CT, image), expected, rtol=1e-6, atol=1e-5)
    assert normalised(CT, image).min() == pytest.approx(-3.0) and normalised(CT, image).max() == pytest.approx(4.0)
    # integers are numbers too (YAML `mean: 100`)
    as_ints = {"scheme": "ct", "clip": [-50, 300], "mean": 100, "std": 50}
    np.testing.assert_allclose(normalised(as_ints, image), expected, rtol=1e-6, atol=1e-5)


@pytest.mark.unit
@pytest.mark.parametrize("nonzero", [True, False])
def test_zscore_is_per_channel_over_nonzero_or_all_voxels(nonzero):
    rng = np.random.default_rng(1)
    image = rng.normal(50, 20, size=(2, 10, 9, 8)).astype(np.float32)
    image[:, :3] = 0  # a zero border (what nonzero: true leaves out)
    image[1] *= 4
    out = normalised({"scheme": "zscore", "nonzero": nonzero}, image, channels=2)
    for channel in range(2):
        values = image[channel].astype(np.float64)
        mask = values != 0 if nonzero else np.ones(values.shape, dtype=bool)
        expected = values.copy()
        expected[mask] = (values[mask] - values[mask].mean()) / values[mask].std()
        np.testing.assert_allclose(out[channel], expected, rtol=1e-5, atol=1e-5)
    assert (out[:, :3] == 0).all() == nonzero
    # nonzero defaults to false (nnU-Net's ZScoreNormalization without a mask)
    np.testing.assert_allclose(normalised({"scheme": "zscore"}, image, 2),
                               normalised({"scheme": "zscore", "nonzero": False}, image, 2))


@pytest.mark.unit
@pytest.mark.parametrize("settings,channels,said", [
    ({"scheme": "nnunet"}, 1, "unknown scheme 'nnunet'"),
    ({"clip": [0, 1]}, 1, "unknown scheme None"),
    ("ct", 1, "'ct' is not a mapping"),
    ({**CT, "percentile": 99.5}, 1, "unknown key percentile for scheme ct"),
    ({"scheme": "zscore", "nonzero": True, "mean": 3}, 1, "unknown key mean for scheme zscore"),
    ({"scheme": "zscore", "nonzero": "yes"}, 1, "nonzero 'yes' is not true or false"),
    ({"scheme": "ct", "clip": [0, 1], "mean": 0}, 1, "scheme ct needs std"),
    ({**CT, "clip": [300.0, -50.0]}, 1, "clip [300.0, -50.0] is empty: lo must be below hi"),
    ({**CT, "clip": [10, 10]}, 1, "clip [10.0, 10.0] is empty"),
    ({**CT, "clip": [0, 1, 2]}, 1, "clip [0, 1, 2] is not two numbers"),
    ({**CT, "clip": "0,1"}, 1, "clip '0,1' is not two numbers"),
    ({**CT, "std": 0.0}, 1, "std 0.0 is not positive"),
    ({**CT, "std": -2.0}, 1, "std -2.0 is not positive"),
    ({**CT, "std": math.inf}, 1, "std inf is not a finite number"),
    ({**CT, "mean": math.nan}, 1, "mean nan is not a finite number"),
    ({**CT, "mean": "100"}, 1, "mean '100' is not a finite number"),
    ({**CT, "std": True}, 1, "std True is not a finite number"),
    (CT, 4, "scheme ct fixes the statistics of one channel and this dataset has 4"),
])
def test_bad_settings_are_refused_naming_the_option_and_what_to_write(settings, channels, said):
    with pytest.raises(SegError) as refused:
        normalization_transform(settings, channels)
    message = str(refused.value)
    assert message.startswith("--data.normalization: ") and said in message, message
    assert "; write {scheme: " in message, message


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write("demo", tmp_path_factory.mktemp("norm_demo"), cases=3, shape=(24, 24, 24), seed=0)


def module(root, **settings) -> MSDDataModule:
    return MSDDataModule(str(root), name="demo", **{"cache": "store", "num_workers": 0, "patch_size": (16, 16, 16),
                                                    **settings})


@pytest.mark.unit
def test_the_datamodule_applies_the_planned_normalisation_everywhere_and_keys_its_store_by_it(demo):
    own, planned, other = module(demo), module(demo, normalization=CT), module(demo, normalization=OTHER_CT)
    assert isinstance(own.intensity(), mt.ScaleIntensityRanged) and own.intensity().scaler.b_max == 1.0
    assert planned.hparams.normalization == CT
    case = own.list_cases()[0]
    image = np.asarray(nib.load(case["image"]).dataobj, dtype=np.float32)
    for stage in ("train", "predict"):  # the training preprocessing and the inference plan's pipeline
        chain = (mt.Compose(planned.preprocessing()) if stage == "train"
                 else planned.inference_plan("predict").pipeline)
        out = np.asarray(chain(dict(case))["image"], dtype=np.float64)
        assert out.min() == pytest.approx(-3.0, abs=1e-5) and out.max() <= 4.0 + 1e-5
        # the same voxels (reoriented, not resampled) as numpy's clip-then-zscore of the file's values
        np.testing.assert_allclose(np.sort(out.ravel()), np.sort(clip_then_zscore(image, CT["clip"], 100.0,
                                                                                  50.0).ravel()), atol=1e-4)
    folders = {m.store().folder for m in (own, planned, other)}
    assert len(folders) == 3  # another normalisation is another store
    assert module(demo, normalization=dict(CT)).store().folder == planned.store().folder
    planned.build_store(planned.list_cases())
    stored = planned.store().arrays(case["case"])[0]
    assert float(np.min(stored)) == pytest.approx(-3.0, abs=1e-2)  # what the store holds is the planned one's


@pytest.mark.unit
def test_bad_settings_are_refused_when_the_datamodule_is_made_and_ct_on_several_channels_at_first_use(tmp_path):
    with pytest.raises(SegError, match="--data.normalization: std 0.0 is not positive"):
        module(tmp_path, normalization={**CT, "std": 0})
    brats = write("brats", tmp_path / "brats", cases=2, shape=(16, 16, 16), seed=0)
    datamodule = BraTSDataModule(str(brats), num_workers=0, normalization=CT)
    for first_use in (datamodule.intensity, datamodule.prepare_data):  # (seg prepares data before a run folder)
        with pytest.raises(SegError, match="scheme ct fixes the statistics of one channel and this dataset has 4"):
            first_use()
    zscored = BraTSDataModule(str(brats), num_workers=0, normalization={"scheme": "zscore", "nonzero": True})
    assert isinstance(zscored.intensity(), mt.NormalizeIntensityd)


@pytest.mark.unit
def test_ensemble_members_with_another_normalisation_are_refused(demo):
    def checkpoint(normalization):
        return {"hyper_parameters": {"out_channels": 3},
                "datamodule_hyper_parameters": dict(module(demo, normalization=normalization).hparams)}

    assert "normalization" in preprocessing_settings(checkpoint(CT)["datamodule_hyper_parameters"])
    assert disagreements(checkpoint(CT), checkpoint(dict(CT))) == []
    found = disagreements(checkpoint(CT), checkpoint(OTHER_CT))
    assert len(found) == 1 and found[0].startswith("data.normalization {") and "'mean': 280.0" in found[0]
    assert len(disagreements(checkpoint(CT), checkpoint(None))) == 1


@pytest.mark.unit
@pytest.mark.parametrize("settings", [CT, {"scheme": "zscore", "nonzero": False}, {"scheme": "zscore",
                                                                                    "nonzero": True}])
def test_the_export_contract_carries_the_normalisation_and_its_readers_apply_it(settings, demo):
    datamodule = module(demo, normalization=settings)
    contract = build_contract({"out_channels": 3, "roi_size": [16, 16, 16]}, datamodule, ["model.ts"], "torchscript",
                              [])
    intensity = contract["preprocessing"]["intensity"]
    assert intensity == intensity_of(datamodule.intensity())
    if settings["scheme"] == "ct":
        assert intensity["kind"] == "window" and intensity["window"] == [-50.0, 300.0]
        assert intensity["range"] == [-3.0, 4.0]  # [(lo - mean) / std, (hi - mean) / std]
    else:
        assert intensity["kind"] == "zscore" and intensity["nonzero"] is settings["nonzero"]
        assert ("nonzero voxels" in intensity["statistics"]) is settings["nonzero"]
    image = ct_volume(3)
    image[:, :2] = 0
    expected = normalised(settings, image)
    if settings["scheme"] == "ct":
        np.testing.assert_allclose(expected, clip_then_zscore(image, CT["clip"], CT["mean"], CT["std"]), atol=1e-5)
    np.testing.assert_allclose(standalone.normalise(image.copy(), intensity), expected, rtol=1e-5, atol=1e-5)
    step = intensity_step(intensity)
    bundle_transform = ConfigParser({"step": step}).get_parsed_content("step")
    out = np.asarray(bundle_transform({"image": torch.from_numpy(image.copy())})["image"], dtype=np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_the_statistics_reach_predict_and_export_from_the_checkpoint_alone(tmp_path, seg, demo_root):
    """A fit with a CT normalisation, then a real `seg` process predicting from the checkpoint alone (no --config,
    no --data.normalization): the labels equal a predict told the same statistics and differ from one told others;
    the export of the checkpoint states them."""
    def ran(done) -> None:
        assert done.returncode == 0, done.stderr[-3000:]

    planned = json.dumps(CT)
    shutil.copytree(demo_root, tmp_path / "D", ignore=shutil.ignore_patterns(".seg_cache"))
    ran(seg("fit", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data.root", "D",
            "--trainer.max_epochs", "1", "--data.normalization", planned, cwd=tmp_path))
    ckpt = str(only_run_dir(tmp_path / "lightning_logs") / "checkpoints" / "last.ckpt")
    images = sorted((tmp_path / "D" / "imagesTr").glob("*.nii.gz"))[:2]
    listed = f"--data.predict_images=[{','.join(str(i) for i in images)}]"
    ran(run_seg("predict", "--ckpt_path", ckpt, listed, "--prediction_dir=alone", cwd=tmp_path))
    ran(seg("predict", "--ckpt_path", ckpt, listed, "--prediction_dir=told", "--data.normalization", planned,
            cwd=tmp_path))
    ran(seg("predict", "--ckpt_path", ckpt, listed, "--prediction_dir=other", "--data.normalization",
            json.dumps(OTHER_CT), cwd=tmp_path))

    def labels(folder: str) -> list[np.ndarray]:
        return [np.asarray(nib.load(tmp_path / folder / image.name).dataobj) for image in images]

    alone, told, other = labels("alone"), labels("told"), labels("other")
    assert all(np.array_equal(a, t) for a, t in zip(alone, told))
    assert any(not np.array_equal(a, o) for a, o in zip(alone, other))
    ran(seg("export", "--ckpt_path", ckpt, "--out", "exported", cwd=tmp_path))
    intensity = json.loads((tmp_path / "exported" / "contract.json").read_text())["preprocessing"]["intensity"]
    assert intensity["kind"] == "window" and intensity["window"] == [-50.0, 300.0]
    assert intensity["range"] == [-3.0, 4.0]  # [(lo - mean) / std, (hi - mean) / std] of the planned statistics
