"""The BraTS brain-tumour challenges' folder layouts (all BraTS naming lives here; torch-free).

* BraTS 2021: `<root>/BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz`,
  labels 0 background, 1 necrotic core, 2 edema, 4 enhancing tumour.
* BraTS 2023+ (GLI, MEN, MET, PED, SSA): `<root>/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz`,
  labels 0, 1 necrotic core, 2 edema, 3 enhancing tumour.

The layout is detected from the names of the case folders under the root. Modalities are
listed in channel order: T1, T1 with contrast, T2, FLAIR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import SegError
from .common import missing_root, synth_hint

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
    """The case folders of `layout` directly under `root`, sorted by name; a SegError naming an entry with a
    case's name that is not a folder (a file, a broken link: never skipped in silence)."""
    named = sorted(p for p in root.iterdir() if layout.matches(p.name))
    if not_folders := [p for p in named if not p.is_dir()]:
        raise SegError(f"{not_folders[0]} is named like a BraTS case but is not a folder ({len(not_folders)} such); "
                       f"restore the case folder or move the file out of {root}")
    return named


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
        nested = [
            d for d in sorted(root.iterdir()) if d.is_dir() and any(case_folders(d, layout) for layout in LAYOUTS)
        ]
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
