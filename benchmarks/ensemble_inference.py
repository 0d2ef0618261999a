"""Time per case and peak memory of `seg predict` with one model, a 5-model ensemble, and mirror TTA, on the demo.

Run: python benchmarks/ensemble_inference.py [MODELS] [CASES]   (default 5 models, 12 cases of 48^3)

It writes the demo data (`seg synth demo`), trains one epoch of the demo config (2 batches: the weights do not
change the cost), makes MODELS checkpoints of it (each with its own noise on the weights), then runs
`seg predict` over every case in a fresh process per variant: 1 model, MODELS models, 1 model + TTA (8 flips),
MODELS models + TTA. Per case it times the model's part (`predict_step`: sliding windows of every model and
flip, the mean of the probabilities) and the writer's (inversion to the input's grid, discretisation, NIfTI):
the minimum and the median over the cases after the first (warm-up; on a shared CPU the minimum is the least
disturbed figure; on a CPU torch runs one thread); peak memory is the process's peak RSS, and on a GPU the
peak of allocated device memory.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(function, record: list[float], cuda: bool):
    """`function`, its wall time (device work finished) appended to `record` at every call."""
    import torch

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        record.append(time.perf_counter() - start)
        return result
    return wrapper


def run_variant(work: Path, models: int, tta: bool) -> None:
    """`seg predict` in this process with timers on the model's and the writer's part; prints JSON figures."""
    import torch

    from segmentation.app.main import main
    from segmentation.model.module import SegmentationModule
    from segmentation.training.prediction import PredictionWriter

    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(1)  # (a shared CPU: one thread is far less disturbed by other processes' load)
    model_times: list[float] = []
    writer_times: list[float] = []
    SegmentationModule.predict_step = timed(SegmentationModule.predict_step, model_times, cuda)
    PredictionWriter.write_on_batch_end = timed(PredictionWriter.write_on_batch_end, writer_times, cuda)
    checkpoints = [str(work / f"model{k}.ckpt") for k in range(models)]
    args = ["predict", "--ckpt_path", checkpoints[0], "--prediction_dir", str(work / "out"),
            "--trainer.enable_progress_bar=false"]
    args += ["--ensemble", *checkpoints[1:]] if models > 1 else []
    args += ["--tta", "flips"] if tta else []
    assert main(args) == 0
    print(json.dumps({
        "model_s": [min(model_times[1:] or model_times), statistics.median(model_times[1:] or model_times)],
        "writer_s": [min(writer_times[1:] or writer_times), statistics.median(writer_times[1:] or writer_times)],
        "cases": len(model_times),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }))


def gpu_here() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def prepare(work: Path, models: int, cases: int) -> None:
    """The demo data, one briefly trained model, and `models` checkpoints of it with different weights."""
    import torch

    from segmentation.data.synthetic import write

    root = write("demo", work / "demo", cases=cases, shape=(48, 48, 48), seed=0)
    subprocess.run([sys.executable, "-m", "segmentation", "fit", "--config", str(REPO / "configs/demo.yaml"),
                    f"--data.init_args.root={root}", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                    "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false"],
                   cwd=work, check=True, capture_output=True)
    trained = next(work.glob("lightning_logs/*/version_0/checkpoints/last.ckpt"))
    content = torch.load(trained, map_location="cpu", weights_only=False)
    for k in range(models):
        generator = torch.Generator().manual_seed(k)
        state = {key: value + 0.01 * torch.randn(value.shape, generator=generator) if value.is_floating_point()
                 else value for key, value in content["state_dict"].items()}
        torch.save({**content, "state_dict": state}, work / f"model{k}.ckpt")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--variant":
        run_variant(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "tta")
        return
    models = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    work = Path(tempfile.mkdtemp(prefix="seg-ensemble-bench-"))
    prepare(work, models, cases)
    device = "GPU" if gpu_here() else "CPU, 1 thread"
    print(f"demo data, {cases} cases of 48^3, demo config's UNet (16..128 channels), 32^3 windows, {device}; "
          f"min / median over the cases after the first\n")
    print("| variant | model part s/case | inversion + write s/case | peak RSS MiB | peak GPU MiB |")
    print("| --- | --- | --- | --- | --- |")
    for count, tta in ((1, False), (models, False), (1, True), (models, True)):
        out = subprocess.run([sys.executable, __file__, "--variant", str(work), str(count), "tta" if tta else "none"],
                             capture_output=True, text=True, cwd=work)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        name = f"{count} model{'s' if count > 1 else ''}" + (" + TTA (8 flips)" if tta else "")
        gpu = f"{figures['peak_cuda_mib']:.0f}" if figures["peak_cuda_mib"] is not None else "-"
        model, writer = ("{:.3f} / {:.3f}".format(*figures[key]) for key in ("model_s", "writer_s"))
        print(f"| {name} | {model} | {writer} | {figures['peak_rss_mib']:.0f} | {gpu} |")


if __name__ == "__main__":
    main()
