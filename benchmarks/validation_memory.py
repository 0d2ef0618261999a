"""Peak memory of scoring one whole validation volume with many classes: seg's overlap counts vs MONAI's
one-hot DiceMetric, and seg's label-map DiceCE vs MONAI's one-hot DiceCE. CPU, one fresh process per variant.

Run: python benchmarks/validation_memory.py [CLASSES] [SIZE]   (default 40 classes, a 160^3 volume)

Each variant starts from the same logits (CLASSES x SIZE^3 float32, as sliding-window inference returns
them) and a label map; the figure is the process's peak RSS above what it held before the step.
"""

from __future__ import annotations

import resource
import subprocess
import sys


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(variant: str, classes: int, size: int) -> None:
    import torch

    torch.manual_seed(0)
    logits = torch.randn(1, classes, size, size, size)
    label = torch.randint(0, classes, (1, 1, size, size, size))
    before = peak_mib()
    if variant == "counts":  # what validation scores with
        from segmentation.model.metrics import dice_from_counts, overlap_counts

        dice_from_counts(overlap_counts(logits.argmax(1)[0], label[0, 0], classes, multilabel=False))
    elif variant == "monai-dicemetric":
        from monai.metrics import DiceMetric

        predicted = torch.zeros_like(logits).scatter_(1, logits.argmax(1, keepdim=True), 1.0)
        target = torch.zeros_like(logits).scatter_(1, label, 1.0)
        DiceMetric(include_background=False, reduction="none", ignore_empty=True)(predicted, target)
    elif variant == "monai-dicece-loss":
        from monai.losses import DiceCELoss

        DiceCELoss(to_onehot_y=True, softmax=True)(logits, label)
    elif variant == "seg-label-map-dicece-loss":
        from segmentation.model.losses import label_map_dice_ce

        label_map_dice_ce(logits, label)
    print(f"{peak_mib() - before:.0f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--variant":
        run_variant(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    classes = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 160
    logits_mib = classes * size**3 * 4 / 2**20
    print(f"{classes} classes, {size}^3 voxels: the logits alone are {logits_mib:.0f} MiB\n")
    print("| scoring one validation volume | peak RSS above the logits (MiB) |\n| --- | --- |")
    for variant in ("counts", "monai-dicemetric", "seg-label-map-dicece-loss", "monai-dicece-loss"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, str(classes), str(size)],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(f"| {variant} | {out} |", flush=True)


if __name__ == "__main__":
    main()
