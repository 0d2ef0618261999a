"""`seg predict` writes label maps in each input's own geometry and the dataset's label values."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ..helpers import write_oblique_case


def test_predict_writes_label_maps_in_each_inputs_geometry(finished_run, tmp_path, seg):
    ckpt = finished_run / "checkpoints/last.ckpt"
    source, _ = write_oblique_case(tmp_path)
    result = seg("predict", "--ckpt_path", str(ckpt), "--data.spacing=[2.0,2.0,2.0]",
                     f"--data.predict_images=[{source}]", "--prediction_dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    written, original = nib.load(str(tmp_path / "out/oblique_ct.nii.gz")), nib.load(str(source))
    assert written.shape == original.shape
    assert np.allclose(written.affine, original.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
    assert "wrote 1 label maps to out\n" in result.stdout
    again = seg("predict", "--ckpt_path", str(ckpt), "--data.spacing=[2.0,2.0,2.0]",
                f"--data.predict_images=[{source}]", "--prediction_dir=out", cwd=tmp_path)
    assert "wrote 1 label maps to out (1 of them replaced files of the same name there)" in again.stdout  # not silent


def test_predict_reads_a_folder_or_a_glob_of_new_images_and_another_root(finished_run, tmp_path, seg):
    """New data: no split applies (the checkpoint's names cases of the training root only)."""
    (tmp_path / "new").mkdir()
    source, _ = write_oblique_case(tmp_path)
    source.rename(tmp_path / "new" / source.name)  # a folder of images only
    ckpt = str(finished_run / "checkpoints/last.ckpt")
    for entry, out in ((tmp_path / "new", "by_folder"), (tmp_path / "new" / "*_ct.nii.gz", "by_glob")):
        result = seg("predict", "--ckpt_path", ckpt, f"--data.predict_images=[{entry}]", f"--prediction_dir={out}",
                     cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == ["oblique_ct.nii.gz"]
    assert seg("synth", "demo", "--out", "other", "--cases", "2", "--shape", "24", "24", "24", "--seed", "5",
               cwd=tmp_path).returncode == 0
    result = seg("predict", "--ckpt_path", ckpt, "--data.root=other", "--prediction_dir=other_out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "other_out").iterdir()) == ["demo_000.nii.gz", "demo_001.nii.gz"]
    result = seg("predict", "--ckpt_path", ckpt, f"--data.predict_images=[{tmp_path / 'nothing'}]", cwd=tmp_path)
    assert result.returncode == 2 and "nothing is no file, folder or glob pattern" in result.stderr
