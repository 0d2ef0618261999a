"""BraTSDataModule: the BraTS brain-tumour challenges in their own folder layouts (all BraTS naming lives here).

Two layouts are recognised, from the names of the case folders under the root:

* BraTS 2021: `<root>/BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz`,
  labels 0 background, 1 necrotic core, 2 edema, 4 enhancing tumour.
* BraTS 2023+ (GLI, MEN, MET, PED, SSA): `<root>/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz`,
  labels 0, 1 necrotic core, 2 edema, 3 enhancing tumour.

The network sees the four modalities in one order for both layouts: T1, T1 with contrast,
T2, FLAIR (2021: t1, t1ce, t2, flair; 2023: t1n, t1c, t2w, t2f). It predicts the three
overlapping regions of the challenge as sigmoid channels: TC (tumour core = necrotic +
enhancing), WT (whole tumour = every tumour label), ET (enhancing tumour).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Mapping

import torch
from lightning.pytorch.utilities import rank_zero_info
from monai import transforms as mt
from monai.config import KeysCollection, NdarrayOrTensor

from ..errors import SegError
from .base import VolumeDataModule, missing_root, synth_hint

REGIONS = ("tc", "wt", "et")
NECROTIC, EDEMA = 1, 2


@dataclass(frozen=True)
class BraTSLayout:
    """The file naming and label values of one BraTS edition.

    Args:
        name: human-readable name, used in messages.
        case_pattern: regular expression a case folder's name matches.
        case_format: `str.format` pattern of a case id from its index (for the synthetic writers).
        separator: what joins the case id and a file's suffix.
        modalities: file suffixes of T1, T1-contrast, T2 and FLAIR, in that (channel) order.
        enhancing: label value of the enhancing tumour.
    """

    name: str
    case_pattern: str
    case_format: str
    separator: str
    modalities: tuple[str, str, str, str]
    enhancing: int

    def matches(self, folder_name: str) -> bool:
        """Whether `folder_name` is a case folder of this layout."""
        return re.fullmatch(self.case_pattern, folder_name) is not None

    def case_id(self, index: int) -> str:
        """The case id of the `index`-th case, as the challenge numbers them."""
        return self.case_format.format(index=index)

    def file(self, case_dir: Path, suffix: str) -> Path:
        """The path of one of a case's files (`suffix`: a modality or `seg`)."""
        return case_dir / f"{case_dir.name}{self.separator}{suffix}.nii.gz"

    def image_files(self, case_dir: Path) -> list[Path]:
        """The four modality files of a case, in channel order (whether or not they exist)."""
        return [self.file(case_dir, suffix) for suffix in self.modalities]

    def label_file(self, case_dir: Path) -> Path:
        """The label map of a case."""
        return self.file(case_dir, "seg")

    def label_values(self) -> set[int]:
        """Background, necrotic core, edema and enhancing tumour, in this edition's values."""
        return {0, NECROTIC, EDEMA, self.enhancing}

    def example(self) -> str:
        """An example case folder and its file names, for messages."""
        case = self.case_id(0)
        return f"{case}/{case}{self.separator}{{{','.join([*self.modalities, 'seg'])}}}.nii.gz"


BRATS2021 = BraTSLayout(
    name="BraTS 2021",
    case_pattern=r"BraTS2021_\d+",
    case_format="BraTS2021_{index:05d}",
    separator="_",
    modalities=("t1", "t1ce", "t2", "flair"),
    enhancing=4,
)
BRATS2023 = BraTSLayout(
    name="BraTS 2023+",
    case_pattern=r"BraTS-[A-Z]+-\d+-\d+",
    case_format="BraTS-GLI-{index:05d}-000",
    separator="-",
    modalities=("t1n", "t1c", "t2w", "t2f"),
    enhancing=3,
)
LAYOUTS = (BRATS2021, BRATS2023)


def case_folders(root: Path, layout: BraTSLayout) -> list[Path]:
    """The case folders of `layout` directly under `root`, sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and layout.matches(p.name))


def expected_names() -> str:
    """What a BraTS root should hold, for messages."""
    return " or ".join(f"{layout.example()} ({layout.name})" for layout in LAYOUTS)


def detect_layout(root: Path) -> BraTSLayout:
    """The layout of the case folders under `root`; a SegError if there are none, or of both layouts."""
    expected = f"the folder holding the BraTS case folders ({expected_names()})"
    if not root.is_dir():
        raise missing_root(root, expected, "brats")
    found = [layout for layout in LAYOUTS if case_folders(root, layout)]
    if not found:
        if not any(root.iterdir()):
            raise SegError(
                f"BraTS data root {root} is empty; point --data.root at {expected}, or {synth_hint(root, 'brats')}"
            )
        nested = [d for d in sorted(root.iterdir()) if d.is_dir() and any(case_folders(d, l) for l in LAYOUTS)]
        hint = f"; {nested[0]} holds such folders: point --data.root there" if nested else ""
        raise SegError(
            f"no BraTS case folders in {root}: expected case folders like {expected_names()} directly under it{hint}"
        )
    if len(found) > 1:
        counts = ", ".join(f"{len(case_folders(root, layout))} {layout.name}" for layout in found)
        raise SegError(
            f"{root} mixes BraTS layouts ({counts} case folders); their labels differ, "
            f"so keep one edition per root: {expected_names()}"
        )
    return found[0]


def labels_to_regions(label: NdarrayOrTensor, enhancing: int) -> NdarrayOrTensor:
    """A (1, X, Y, Z) label map as (3, X, Y, Z) float regions TC, WT, ET (`enhancing`: 4 or 3)."""
    regions = mt.ConvertToMultiChannelBasedOnBratsClasses(et_label=enhancing)(label)
    # bool channels would not survive padding, and the sigmoid loss wants float targets
    return regions.float() if isinstance(regions, torch.Tensor) else regions.astype("float32")


def regions_to_labels(prediction: torch.Tensor, enhancing: int) -> torch.Tensor:
    """Thresholded (3, X, Y, Z) regions TC, WT, ET as a (1, X, Y, Z) label map (`enhancing`: 4 or 3).

    Nested convention: ET is enhancing wherever predicted, the rest of TC necrotic core,
    the rest of WT edema, so a region predicted outside its parent still counts.
    """
    tc, wt, et = (prediction[i] > 0.5 for i in range(3))
    labels = torch.zeros(prediction.shape[1:], dtype=torch.long, device=prediction.device)
    labels[wt] = EDEMA
    labels[tc] = NECROTIC
    labels[et] = enhancing
    return labels.unsqueeze(0)


class BraTSRegionsd(mt.MapTransform):
    """Dict transform: BraTS label maps (1, X, Y, Z) to the three region channels TC, WT, ET (float 0/1).

    Args:
        keys: keys of the label maps to convert.
        enhancing: label value of the enhancing tumour: 4 (BraTS 2021) or 3 (BraTS 2023+).
        allow_missing_keys: do not raise when a key is absent.
    """

    def __init__(self, keys: KeysCollection, enhancing: int, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.enhancing = enhancing

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """A copy of `data` with every key's label map replaced by its regions."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = labels_to_regions(d[key], self.enhancing)
        return d


class BraTSDataModule(VolumeDataModule):
    """A BraTS training set (2021, or 2023+ naming), trained as the overlapping regions TC, WT, ET.

    Args:
        root: folder holding the case folders (e.g. `BraTS2021_00000/`) directly.
        synthesize_if_missing: write synthetic BraTS 2021 cases into `root` when it does not exist.
        **kwargs: see `VolumeDataModule`.
    """

    dataset_name = "brats"
    multilabel = True

    def __init__(self, root: str, synthesize_if_missing: bool = False, **kwargs):
        super().__init__(root, **kwargs)
        if synthesize_if_missing and not self.root.exists():
            synthesize_into(self.root)
        self.layout = detect_layout(self.root)
        count = len(case_folders(self.root, self.layout))
        rank_zero_info(f"BraTS: {self.layout.name} layout in {self.root} ({count} cases, e.g. {self.layout.example()})")

    @property
    def channel_names(self) -> list[str]:
        """The layout's modality suffixes in channel order: T1, T1-contrast, T2, FLAIR."""
        return list(self.layout.modalities)

    @property
    def class_names(self) -> list[str]:
        """The region channels: tc, wt, et."""
        return list(REGIONS)

    def label_values(self) -> set[int]:
        """{0, 1, 2, 4} (BraTS 2021) or {0, 1, 2, 3} (BraTS 2023+)."""
        return self.layout.label_values()

    def list_cases(self) -> list[dict]:
        """Every case folder with its expected file paths (a missing file is reported by the up-front check)."""
        detect_layout(self.root)  # a root removed or emptied since construction: a SegError, not a traceback
        return [
            {
                "case": case_dir.name,
                "image": [str(path) for path in self.layout.image_files(case_dir)],
                "label": str(self.layout.label_file(case_dir)),
            }
            for case_dir in case_folders(self.root, self.layout)
        ]

    def intensity_transform(self) -> mt.Transform:
        """Z-score per channel over the brain (nonzero voxels; BraTS images are skull-stripped)."""
        return mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)

    def label_transform(self) -> mt.Transform:
        """The label map to the TC, WT, ET region channels."""
        return BraTSRegionsd(keys="label", enhancing=self.layout.enhancing)

    def prediction_to_labels(self, prediction: torch.Tensor) -> torch.Tensor:
        """Thresholded regions (3, X, Y, Z) as a (1, X, Y, Z) label map in this layout's values."""
        return regions_to_labels(prediction, self.layout.enhancing)


def synthesize_into(root: Path) -> None:
    """Write the synthetic BraTS 2021 cases into `root`, which appears only once they are complete."""
    from .synthetic.brats import write_brats2021

    partial = root.with_name(f".{root.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    write_brats2021(partial)
    partial.rename(root)
