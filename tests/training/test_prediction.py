"""`seg predict` writes label maps in each input's own geometry and the dataset's label values."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from ..data.test_geometry import write_oblique_case


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
