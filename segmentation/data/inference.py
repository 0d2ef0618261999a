"""What `seg test` and `seg predict` read, and how their predictions go back to each input's geometry.

An `InferencePlan` is made once per stage by the datamodule (`VolumeDataModule.inference_plan`) and read by
both its loader and the callbacks that score or write predictions: MONAI inverts a transform only with the
very instances that applied it, so the loader and the callbacks must share one pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from monai import transforms as mt

from . import pipelines
from .geometry import first_image_path
from .layouts.common import images_of
from .split import test_cases_or_refusal


@dataclass
class InferencePlan:
    """The items of a test or predict stage, the pipeline that preprocesses them, and the split they come from.

    Attributes:
        split: `test` or `val` (what `seg test` scores), or `predict`.
        items: one dict per case: `case`, `image`, `source` (the file whose geometry outputs take) and, for
            test, `label_file` (the label as the user has it, scored in native space).
        pipeline: the preprocessing whose instances invert the predictions.
    """

    split: str
    items: list[dict]
    pipeline: mt.Compose


def scored_items(cases: list[dict]) -> list[dict]:
    """Test items of labelled cases: the image to predict and the label file to score against."""
    return [{"case": c["case"], "image": c["image"], "label_file": c["label"],
             "source": str(first_image_path(c["image"]))} for c in cases]


def predicted_items(cases: list[dict]) -> list[dict]:
    """Predict items of cases (labelled or not): the image and the file whose geometry the output takes."""
    return [{"case": c["case"], "image": c["image"], "source": str(first_image_path(c["image"]))} for c in cases]


def cases_of_images(entries: list[str]) -> list[dict]:
    """Cases named after their image files: `entries` are NIfTI files, folders or glob patterns."""
    images = [image for entry in entries for image in images_of(entry)]
    return [{"case": p.name.split(".nii")[0], "image": str(p)} for p in images]


def make_plan(stage: str, datamodule) -> InferencePlan:
    """The plan of `stage` for a `VolumeDataModule`: `test` scores the test split (or the validation cases with
    `--data.test_on val`), `predict` reads `predict_images` (else every case of the dataset)."""
    h = datamodule.hparams
    pipeline = pipelines.inference_transform(datamodule.intensity(), h.spacing)
    if stage == "test":
        cases = datamodule.val_cases if h.test_on == "val" else test_cases_or_refusal(datamodule.test_cases,
                                                                                      datamodule.root)
        return InferencePlan(h.test_on, scored_items(cases), pipeline)
    cases = cases_of_images(h.predict_images) if h.predict_images else datamodule.list_cases()
    return InferencePlan("predict", predicted_items(cases), pipeline)
