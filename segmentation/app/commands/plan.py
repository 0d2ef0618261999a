"""`seg plan --config BASE [--data.* --model.*] [--memory-gb G] [--out planned.yaml]`: configure a run from the
data and the machine, as nnU-Net's planner does, with the memory of each candidate measured (GPU) or estimated."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import yaml

from ...core.errors import SegError

USAGE = """usage: seg plan --config CONFIG [--config ...] [--data.root DIR ...] [--memory-gb G] [--out FILE] [--json]

Fingerprints every training case (the up-front check's single pass: a checked dataset is read from its cache),
then plans nnU-Net's way: the target spacing, the patch, the network's stages, kernels and strides (dynunet, or the
MONAI unet's channels and strides), the batch, the normalisation and, where the patch covers less than a quarter
of the median image, a lower-resolution stage (planned, not trained). The memory of each candidate is measured by
real training steps on a GPU, or estimated on PyTorch's meta device without one (said so in the table).

  --memory-gb G   memory a training step may take (default: the GPU's free memory; without one 8, nnU-Net's target)
  --out FILE      the planned config (default planned.yaml); FILE's .plan.json and .fingerprint.json beside it
  --json          print the plan as JSON instead of the table

`seg fit --config planned.yaml` trains the plan. A file at --out that seg plan did not write is never replaced."""
CPU_MEMORY_GB = 8.0  # nnU-Net's default GPU memory target, used when no GPU tells its own


def take_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """`argv` without `name VALUE` (or `name=VALUE`), and the value (None when absent)."""
    rest, value, index = [], None, 0
    while index < len(argv):
        arg = argv[index]
        if arg == name:
            if index + 1 >= len(argv):
                raise SegError(f"{name} needs a value")
            value, index = argv[index + 1], index + 2
            continue
        if arg.startswith(f"{name}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        index += 1
    return rest, value


def memory_target(option: str | None) -> tuple[float, str]:
    """Bytes a step may take and where the figure came from (`--memory-gb`, the GPU's free memory, or 8 GB)."""
    import torch

    if option is not None:
        try:
            gigabytes = float(option)
        except ValueError:
            gigabytes = float("nan")
        if not gigabytes > 0 or gigabytes == float("inf"):
            raise SegError(f"--memory-gb {option}: give a positive number of gigabytes (e.g. --memory-gb 24)")
        return gigabytes * 2**30, "--memory-gb"
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return float(free), f"the free memory of {torch.cuda.get_device_name()}"
    return CPU_MEMORY_GB * 2**30, f"no GPU: {CPU_MEMORY_GB:g} GB, nnU-Net's default target"


def memory_model(precision: object):
    """Real steps on the GPU under the run's autocast (seg's CUDA default: bf16-mixed), else the meta estimate."""
    import torch

    from ...measure.plan_memory import MeasuredStep, MetaEstimate

    if not torch.cuda.is_available():
        return MetaEstimate()
    autocast = {"16-mixed": torch.float16, "32": None, "32-true": None}.get(str(precision), torch.bfloat16)
    return MeasuredStep(torch.device("cuda"), autocast)


def checked_fingerprint(datamodule):
    """The fingerprint of every case of `datamodule`, from the up-front check's pass (its cache where the files are
    unchanged); a SegError listing the problems of a broken dataset. The configured patch is not checked: the plan
    chooses one."""
    from ...core.locking import exclusive
    from ...data.check_once import refuse_problems
    from ...data.fingerprint import dataset_fingerprint
    from ...data.suitability import foreground_problem

    datamodule.prepare_sources()
    cases = datamodule.list_cases()
    with exclusive(datamodule.cache_folder() / "check.lock", "dataset check"):
        report = datamodule.check_report(cases)
    refuse_problems(report, datamodule.root, "nothing was planned")
    if problem := foreground_problem(report, datamodule.root):
        raise SegError(problem)
    modality = ["CT" if name.upper() == "CT" else name for name in datamodule.channel_names]
    return dataset_fingerprint(report, datamodule.channel_names, modality)


def main(argv: list[str]) -> int:
    """Fingerprint the configured dataset, plan, print the table and write the planned config."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    started = time.perf_counter()
    command = "seg plan " + shlex.join(argv)
    argv, memory_option = take_option(argv, "--memory-gb")
    argv, out = take_option(argv, "--out")
    as_json = "--json" in argv
    argv = [arg for arg in argv if arg != "--json"]
    budget, budget_source = memory_target(memory_option)
    out_path = Path(out or "planned.yaml")

    from ...measure.planner import NetworkSpec, plan_dataset, refuse_unplanned, table
    from ..lightning_cli import build_cli
    from ..planned_config import refuse_foreign_file, sidecars, write_plan

    refuse_foreign_file(out_path)  # before the dataset is read: a wrong --out is said at once
    cli = build_cli(argv)
    datamodule, h = cli.datamodule, cli.model.hparams
    refuse_unplanned(h.architecture)  # before the dataset is read
    fingerprint = checked_fingerprint(datamodule)
    network = NetworkSpec(h.architecture, h.in_channels, h.out_channels, bool(h.deep_supervision))
    trainer_config = dict(cli.config_init.get("trainer") or {})
    plan = plan_dataset(fingerprint, network, memory_model(trainer_config.get("precision")), budget,
                        int(datamodule.hparams.samples_per_volume))
    config = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))
    write_plan(out_path, config, plan, fingerprint.as_json(), command, len(fingerprint.cases),
               str(datamodule.root))
    if as_json:
        print(json.dumps(plan.as_json()))
    else:
        print(table(plan.rows))
    plan_file, fingerprint_file = sidecars(out_path)
    print(f"memory target: {budget / 2**30:.1f} GiB ({budget_source}); {plan.memory}")
    print(f"wrote {out_path} ({plan_file}, {fingerprint_file}) in {time.perf_counter() - started:.1f} s; "
          f"train it with: seg fit --config {out_path}")
    return 0
