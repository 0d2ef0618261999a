"""The Medical Segmentation Decathlon layout: `dataset.json`, `imagesTr/`, `labelsTr/`.

`dataset.json` names the channels (`modality`), the labels (`labels`) and the training
cases (`training`: image and label paths relative to the task folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...core.errors import SegError
from .common import missing_root

DATASET_JSON = "dataset.json"
IMAGES_FOLDER, LABELS_FOLDER = "imagesTr", "labelsTr"


def read_dataset_json(root: Path, kind: str = "demo") -> dict:
    """The parsed `dataset.json` of an MSD task folder, with a clear error when it is missing or broken.

    `kind` is the `seg synth` name suggested when the folder does not exist.
    """
    path = root / DATASET_JSON
    if not root.exists():
        raise missing_root(root, f"the MSD task folder (the one with {DATASET_JSON})", kind)
    if not path.is_file():
        raise SegError(f"{path} not found: an MSD task folder has a {DATASET_JSON} beside "
                       f"{IMAGES_FOLDER}/ and {LABELS_FOLDER}/")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SegError(f"{path} is not valid JSON ({err}); restore it from the task's archive") from None
    expected: dict[str, type] = {"modality": dict, "labels": dict, "training": list}
    for key, expected_type in expected.items():
        if not isinstance(meta, dict) or key not in meta:
            raise SegError(f"{path} has no {key!r} entry; is this an MSD {DATASET_JSON}?")
        if not isinstance(meta[key], expected_type):
            raise SegError(f"{path}: {key!r} is a {type(meta[key]).__name__}, an MSD {DATASET_JSON} has a "
                           f"{'list of {image, label} entries' if expected_type is list else 'mapping'} there")
    if not all(isinstance(entry, dict) and {"image", "label"} <= set(entry) for entry in meta["training"]):
        raise SegError(f"{path}: every 'training' entry needs an 'image' and a 'label' path")
    return meta


def channel_names(meta: dict) -> list[str]:
    """The json's modality names in channel order."""
    modality = meta["modality"]
    return [modality[key] for key in sorted(modality, key=int)]


def class_names(meta: dict) -> list[str]:
    """The json's label names, background excluded, in label-value order."""
    labels = meta["labels"]
    return [labels[key].lower() for key in sorted(labels, key=int) if int(key) != 0]


def inside_root(root: Path, relative: str) -> Path:
    """`root / relative`, normalised; a SegError when it points outside `root` (untrusted json).

    Normalised as text, not resolved: a symbolic link the dataset's owner placed inside the root (to
    images on another disk) is theirs to make; the check reports a broken or looping one by name.
    """
    base = Path(os.path.normpath(root.absolute()))
    path = Path(os.path.normpath(base / relative))
    if not path.is_relative_to(base):
        raise SegError(f"{root / DATASET_JSON}: entry {relative!r} points outside the dataset root")
    return path


def training_cases(root: Path, meta: dict) -> list[dict]:
    """The json's training entries as cases (`case`, `image`, `label`) with paths resolved inside `root`."""
    cases = []
    for entry in meta["training"]:
        image, label = inside_root(root, entry["image"]), inside_root(root, entry["label"])
        cases.append({"case": image.name.split(".nii")[0], "image": str(image), "label": str(label)})
    return cases


def training_entry(file_name: str) -> dict:
    """The `training` entry of a case whose image and label are both called `file_name`."""
    return {"image": f"./{IMAGES_FOLDER}/{file_name}", "label": f"./{LABELS_FOLDER}/{file_name}"}
