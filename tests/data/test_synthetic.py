"""The synthetic writers' registry: every writer found by name, each writing its dataset's real layout."""

from __future__ import annotations

import pytest

from segmentation.data import synthetic


@pytest.mark.unit
def test_every_writer_module_registers_its_writers():
    assert sorted(synthetic.writers()) == ["brats", "brats2023", "demo", "msd", "totalseg"]
    assert all(registered.description for registered in synthetic.writers().values())


@pytest.mark.unit
def test_registering_another_writer_under_a_taken_name_is_refused():
    synthetic.writers()
    with pytest.raises(ValueError, match="registered twice"):
        synthetic.register("demo", "an impostor")(lambda out, **kwargs: out)


def test_seg_synth_writes_the_msd_layout(tmp_path, seg):
    result = seg("synth", "demo", "--out", "task", "--cases", "3", "--shape", "16", "16", "16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "task/imagesTr").iterdir()) == [
        "demo_000.nii.gz", "demo_001.nii.gz", "demo_002.nii.gz"
    ]
    assert (tmp_path / "task/labelsTr/demo_002.nii.gz").is_file() and (tmp_path / "task/dataset.json").is_file()


def test_unknown_kind_lists_the_registered_ones(tmp_path, seg):
    result = seg("synth", "kits", "--out", "x", cwd=tmp_path)
    assert result.returncode == 2 and "brats2023" in result.stderr and not (tmp_path / "x").exists()
