"""`seg export`: the standalone predictor, in a process that cannot import seg, writes `seg predict`'s label maps."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segmentation.export.network import output_count

from ..helpers import dice_by_numpy, only_run_dir, seg_capturing, tiny_fit_args

# a run trained on a resampled grid (the demo's 1.5 x 1.5 x 2 mm LPS cases reoriented and resampled)
SPACING = "--data.init_args.spacing=[2.0,2.0,2.5]"

# run with -S -I: neither the repository, the working directory nor seg's editable install is on sys.path;
# the environment's packages are added as a plain folder (no .pth files: no editable finder)
STANDALONE = """
import importlib.util, json, sys
sys.path.append({purelib!r})
assert importlib.util.find_spec("segmentation") is None, "segmentation is importable"
sys.path.insert(0, {folder!r})
import predict
for image, out in json.loads({pairs!r}):
    predict.main([image, "--out", out])
assert not {{"segmentation", "monai", "lightning"}} & set(sys.modules), "predict.py imported seg or MONAI"
"""


@pytest.fixture(scope="module")
def predicted(demo_root, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny run on a resampled grid and `seg predict`'s label maps of every demo case: (checkpoint, folder)."""
    work = tmp_path_factory.mktemp("export_run")
    fitted = seg_capturing(tiny_fit_args(demo_root, "--trainer.max_epochs=2", SPACING), cwd=work)
    assert fitted.returncode == 0, fitted.stderr
    ckpt = only_run_dir(work / "lightning_logs") / "checkpoints" / "best.ckpt"
    result = seg_capturing(["predict", "--ckpt_path", str(ckpt), f"--prediction_dir={work / 'seg_predict'}"], cwd=work)
    assert result.returncode == 0, result.stderr
    return ckpt, work / "seg_predict"


def run_standalone(folder: Path, images: list[Path], out: Path, cwd: Path) -> None:
    pairs = json.dumps([[str(image), str(out / image.name)] for image in images])
    script = STANDALONE.format(purelib=sysconfig.get_paths()["purelib"], folder=str(folder), pairs=pairs)
    done = subprocess.run([sys.executable, "-S", "-I", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_standalone_predictor_writes_seg_predicts_label_maps(fmt, predicted, demo_root, tmp_path, seg):
    ckpt, expected = predicted
    result = seg("export", "--ckpt_path", str(ckpt), "--out", "exported", "--format", fmt, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "exported"
    contract = json.loads((folder / "contract.json").read_text())
    assert contract["preprocessing"]["spacing"] == [2.0, 2.0, 2.5] and contract["preprocessing"]["orientation"] == "RAS"
    assert contract["output"]["label_values"] == [0, 1, 2] and contract["postprocessing"] == []
    assert contract["tta_axes"] == [] and contract["window"]["blending"] == "gaussian"
    assert [output_count(folder / name) for name in contract["networks"]] == [1]
    images = sorted((demo_root / "imagesTr").glob("*.nii.gz"))
    run_standalone(folder, images, tmp_path / "standalone", cwd=tmp_path)
    for image in images:
        ours, theirs = nib.load(tmp_path / "standalone" / image.name), nib.load(expected / image.name)
        a, b = np.asarray(ours.dataobj), np.asarray(theirs.dataobj)
        assert a.shape == b.shape == nib.load(image).shape
        np.testing.assert_allclose(ours.affine, nib.load(image).affine)
        assert (a == b).mean() >= 0.999, image.name
        for value in (1, 2):
            assert dice_by_numpy(a, b, value) >= 0.999, (image.name, value)


def test_an_ensemble_with_mirror_tta_predicts_as_seg_predict_does(predicted, demo_root, tmp_path, seg):
    ckpt, _ = predicted
    result = seg("export", "--ckpt_path", str(ckpt), str(ckpt), "--out", "ens", "--tta_axes", "0", "2",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    contract = json.loads((tmp_path / "ens" / "contract.json").read_text())
    assert contract["networks"] == ["model_0.ts", "model_1.ts"] and contract["tta_axes"] == [0, 2]
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == ["contract.json", "model_0.ts", "model_1.ts",
                                                                    "predict.py", "standalone_components.py"]
    images = sorted((demo_root / "imagesTr").glob("*.nii.gz"))[:2]
    listed = "[" + ",".join(str(i) for i in images) + "]"
    result = seg("predict", "--ckpt_path", str(ckpt), str(ckpt), f"--data.predict_images={listed}", "--tta", "flips",
                 "--tta_axes", "0,2", "--prediction_dir=seg_tta", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_standalone(tmp_path / "ens", images, tmp_path / "standalone", cwd=tmp_path)
    for image in images:
        ours = np.asarray(nib.load(tmp_path / "standalone" / image.name).dataobj)
        assert (ours == np.asarray(nib.load(tmp_path / "seg_tta" / image.name).dataobj)).mean() >= 0.999


@pytest.mark.parametrize("args,message", [
    (["--ckpt_path", "missing.ckpt", "--out", "x"], "checkpoint missing.ckpt does not exist"),
    (["--ckpt_path", "CKPT", "--out", "x", "--format", "tflite"], "invalid choice: 'tflite'"),
    (["--ckpt_path", "CKPT", "--out", "full"], "exists and is not empty; add --overwrite"),
    (["--ckpt_path", "CKPT", "--out", "x", "--tta_axes", "3"], "--tta_axes takes distinct spatial axes"),
    (["--ckpt_path", "CKPT", "--out", "x", "--data_root", "nowhere"], "--data_root nowhere is not a folder"),
    (["--ckpt_path", "not_a_checkpoint.ckpt", "--out", "x"], "is truncated or corrupt"),
    (["--out", "x"], "the following arguments are required: --ckpt_path"),
])
def test_bad_input_is_one_line_and_writes_nothing(args, message, predicted, tmp_path, seg):
    ckpt, _ = predicted
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "not_a_checkpoint.ckpt").write_bytes(b"garbage")
    result = seg("export", *[str(ckpt) if a == "CKPT" else a for a in args], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seg: error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_the_monai_bundle_layout_is_read_and_run_by_monais_bundle_workflow(predicted, demo_root, tmp_path, seg):
    import shutil

    import torch
    from monai.bundle import ConfigWorkflow

    ckpt, expected = predicted
    result = seg("export", "--ckpt_path", str(ckpt), "--out", "bundle", "--bundle", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "bundle"
    images = sorted((demo_root / "imagesTr").glob("*.nii.gz"))[:2]
    (root / "images").mkdir()
    for image in images:
        shutil.copy(image, root / "images")
    workflow = ConfigWorkflow(config_file=str(root / "configs" / "inference.json"),
                              meta_file=str(root / "configs" / "metadata.json"), workflow_type="infer",
                              bundle_root=str(root))
    with torch.enable_grad():  # the bundle's `initialize` turns gradients off process-wide, as bundles do
        workflow.initialize()
        assert isinstance(workflow.network_def, torch.jit.ScriptModule)
        assert workflow.parser.get("_meta_")["network_data_format"]["outputs"]["pred"]["num_channels"] == 3
        workflow.run()
    assert torch.is_grad_enabled()  # (later tests in this process train)
    for image in images:
        ours = np.asarray(nib.load(root / "eval" / image.name.replace(".nii.gz", "_seg.nii.gz")).dataobj).squeeze()
        assert (ours == np.asarray(nib.load(expected / image.name).dataobj)).mean() >= 0.999


def test_a_bundle_takes_one_torchscript_network(predicted, tmp_path, seg):
    ckpt, _ = predicted
    result = seg("export", "--ckpt_path", str(ckpt), "--out", "x", "--bundle", "--format", "onnx", cwd=tmp_path)
    assert result.returncode == 2 and "--bundle takes one checkpoint and --format torchscript" in result.stderr
    assert not (tmp_path / "x").exists()
