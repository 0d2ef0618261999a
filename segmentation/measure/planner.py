"""`seg plan`'s planner: a dataset fingerprint and a memory target in, a training configuration out, each choice
with its reason.

The rules are nnU-Net v2's default planner (`plan_rules`, `model.topology`); the memory a candidate takes is
measured on a GPU or estimated on the meta device (`plan_memory`), not scaled from a constant fitted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..core.errors import SegError
from ..model.topology import MIN_EDGE, Topology, unet_topology
from . import plan_rules as rules
from .plan_memory import Candidate, StepFigures, StepMemory

MAX_FEATURES = 320  # nnU-Net's cap on a 3D stage's features
PLANNED_ARCHITECTURES = ("dynunet", "unet")


@dataclass
class Row:
    """One line of the plan's table."""

    what: str
    value: str
    why: str


@dataclass
class NetworkSpec:
    """What the planner builds candidates of: the architecture, its channels, and whether it has deep-supervision
    heads (as the recipe fragment sets `model.deep_supervision`)."""

    architecture: str
    in_channels: int
    out_channels: int
    deep_supervision: bool = False

    def network_kwargs(self, topology: Topology) -> dict:
        """`--model.network_kwargs` of the planned network: DynUNet's kernels and strides per stage, or the MONAI
        UNet's channels and strides per level (its kernel is one size for every level), features x2 per stage."""
        if self.architecture == "dynunet":
            return {"kernel_size": topology.kernels, "strides": topology.strides,
                    "upsample_kernel_size": topology.strides[1:],
                    "filters": [min(32 * 2**i, MAX_FEATURES) for i in range(topology.stages)]}
        return {"channels": [min(16 * 2**i, MAX_FEATURES) for i in range(topology.stages)],
                "strides": topology.strides[1:]}

    def kernels(self, topology: Topology) -> tuple[str, str]:
        """The kernels row of the table: per stage (DynUNet), or the MONAI UNet's one size."""
        if self.architecture == "dynunet":
            return per_stage(topology.kernels), "3 on an axis once its spacing is within 2x of the finest"
        return "3", "the MONAI unet has one kernel size for every level (dynunet plans them per stage)"

    def candidate(self, topology: Topology) -> Candidate:
        """The network of `topology` on its patch, as the memory model builds it."""
        kwargs = self.network_kwargs(topology)
        if self.deep_supervision:
            kwargs["deep_supervision"] = True
        return Candidate(self.architecture, self.in_channels, self.out_channels, tuple(topology.patch_size), kwargs)


@dataclass
class StagePlan:
    """One resolution's configuration."""

    spacing: list[float]
    median_shape: list[float]
    topology: Topology
    batch_size: int
    figures: StepFigures
    network_kwargs: dict
    rows: list[Row] = field(default_factory=list)

    @property
    def patch_size(self) -> list[int]:
        """The planned patch (voxels per axis)."""
        return self.topology.patch_size

    def as_json(self) -> dict:
        """The machine-readable fields (RAS order)."""
        return {"spacing": self.spacing, "median_shape": self.median_shape, "patch_size": self.patch_size,
                "batch_size": self.batch_size, "n_stages": self.topology.stages,
                "kernel_sizes": self.topology.kernels, "strides": self.topology.strides,
                "step_bytes": self.figures.bytes_for(self.batch_size),
                "samples_per_second": self.figures.samples_per_second}


@dataclass
class Plan:
    """The whole plan: the full-resolution stage, a lower-resolution one where the patch covers too little, the
    normalisation, and the table of choices."""

    fullres: StagePlan
    lowres: Optional[StagePlan]
    normalization: dict
    samples_per_volume: int
    memory: str
    memory_target_bytes: float
    rows: list[Row]

    def as_json(self) -> dict:
        """The machine-readable plan (`planned.plan.json`)."""
        return {**self.fullres.as_json(), "normalization": self.normalization,
                "samples_per_volume": self.samples_per_volume, "memory": self.memory,
                "memory_target_bytes": self.memory_target_bytes,
                "lowres": self.lowres.as_json() if self.lowres else None,
                "table": [vars(row) for row in self.rows]}


def per_stage(values: Sequence[Sequence[int]]) -> str:
    """Per-stage triples, runs of equal ones counted: `[3,3,1] + 5x[3,3,3]`."""
    runs: list[tuple[list[int], int]] = []
    for value in values:
        if runs and runs[-1][0] == list(value):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((list(value), 1))
    return " + ".join(("" if n == 1 else f"{n}x") + "[" + ",".join(map(str, v)) + "]" for v, n in runs)


def normalization_text(settings: dict) -> str:
    """The normalisation settings in a few words."""
    if settings["scheme"] == "ct":
        low, high = settings["clip"]
        return f"ct: clip [{low:g}, {high:g}], mean {settings['mean']:g}, sd {settings['std']:g}"
    return f"zscore, {'nonzero voxels' if settings['nonzero'] else 'all voxels'}"


def gib(value: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{value / 2**30:.2f} GiB"


def shrink_to_fit(spacing: Sequence[float], median_shape: Sequence[float], network: NetworkSpec,
                  memory: StepMemory, budget: float) -> tuple[Topology, StepFigures, int]:
    """The largest patch (nnU-Net's start and shrinking order) whose step at batch 2 fits `budget` bytes; with the
    topology of that patch, its figures and how many shrinking steps it took."""
    topology = unet_topology(spacing, rules.initial_patch(spacing, median_shape))
    figures = memory.figures(network.candidate(topology))
    steps = 0
    while figures.bytes_for(rules.MIN_BATCH) > budget:
        patch = list(topology.patch_size)
        axis = rules.axis_to_shrink(patch, median_shape, spacing)
        trial = list(patch)
        trial[axis] -= topology.divisor[axis]
        patch[axis] -= unet_topology(spacing, trial).divisor[axis]
        if patch[axis] < 2 * MIN_EDGE:
            raise SegError(f"--memory-gb: {gib(budget)} does not hold a training step of {network.architecture} at "
                           f"batch {rules.MIN_BATCH} on any patch (the smallest tried, {topology.patch_size}, needs "
                           f"{gib(figures.bytes_for(rules.MIN_BATCH))}); give a larger --memory-gb")
        topology = unet_topology(spacing, patch)
        figures = memory.figures(network.candidate(topology))
        steps += 1
    return topology, figures, steps


def plan_stage(name: str, spacing: Sequence[float], median_shape: Sequence[float], n_voxels_dataset: float,
               network: NetworkSpec, memory: StepMemory, budget: float) -> StagePlan:
    """One resolution: the patch and network that fit `budget`, and the batch (nnU-Net's rules)."""
    topology, figures, steps = shrink_to_fit(spacing, median_shape, network, memory, budget)
    fitting = math.floor((budget - figures.fixed) / figures.per_sample)
    batch, batch_why = rules.batch_size(fitting, rules.batch_cap(n_voxels_dataset, topology.patch_size))
    start = rules.initial_patch(spacing, median_shape)
    patch_why = (f"256^3 voxels isotropic in mm, capped at the median: {start}; multiple of {topology.divisor}"
                 + (f"; shrunk {steps} step(s) to fit the memory target" if steps else ""))
    prefix = "" if name == "fullres" else "lowres "
    rows = [
        Row(f"{prefix}patch", str(topology.patch_size), patch_why),
        Row(f"{prefix}network", f"{network.architecture}, {topology.stages} stages",
            "pool an axis while >= 8 voxels and < 2x the finest spacing"),
        Row(f"{prefix}kernels", *network.kernels(topology)),
        Row(f"{prefix}strides", per_stage(topology.strides), f"each axis pooled {topology.pools} times"),
        Row(f"{prefix}batch", str(batch), batch_why),
        Row(f"{prefix}memory", f"{gib(figures.bytes_for(batch))} at batch {batch}"
            + ("" if memory.measured else " (estimate)"),
            f"{gib(figures.per_sample)} per sample + {gib(figures.fixed)}"
            + (f"; {figures.samples_per_second:.1f} samples/s" if figures.samples_per_second else "")),
    ]
    return StagePlan(list(spacing), list(median_shape), topology, batch, figures, network.network_kwargs(topology),
                     rows)


def plan_lowres(full: StagePlan, n_cases: int, network: NetworkSpec, memory: StepMemory,
                budget: float) -> tuple[Optional[StagePlan], str]:
    """nnU-Net's lower-resolution stage: coarsen the spacing 3% at a time until the patch covers a quarter of the
    median image; dropped when the image would not shrink at least 2x. (None, why) when there is none."""
    median = np.asarray(full.median_shape, dtype=float)
    median_voxels, patch_voxels = float(np.prod(median)), float(np.prod(full.patch_size))
    if patch_voxels / median_voxels >= rules.LOWRES_THRESHOLD:
        return None, f"the patch covers {patch_voxels / median_voxels:.0%} of the median image (>= 25%)"
    spacing, lowres, lowres_voxels = list(full.spacing), None, median_voxels
    while patch_voxels / lowres_voxels < rules.LOWRES_THRESHOLD:
        spacing = rules.next_lowres_spacing(spacing)
        scaled = np.asarray(full.spacing) / np.asarray(spacing) * median
        lowres_voxels = float(np.prod(scaled))
        lowres = plan_stage("lowres", spacing, [float(round(v)) for v in scaled], lowres_voxels * n_cases, network,
                            memory, budget)
        patch_voxels = float(np.prod(lowres.patch_size))
    if median_voxels / lowres_voxels < 2:
        return None, "a lower resolution would shrink the image less than 2x (dropped, as nnU-Net)"
    return lowres, (f"the full-resolution patch covers {float(np.prod(full.patch_size)) / median_voxels:.0%} of the "
                    f"median image (< 25%): planned, not trained (the cascade is not part of seg yet)")


def refuse_unplanned(architecture: str) -> None:
    """SegError for an architecture the planner does not configure."""
    if architecture not in PLANNED_ARCHITECTURES:
        raise SegError(f"--model.architecture {architecture}: seg plan configures "
                       f"{' and '.join(PLANNED_ARCHITECTURES)} (nnU-Net's U-Net); add --model.architecture dynunet")


def samples_per_volume(batch: int, configured: int) -> tuple[int, str]:
    """The configured patches per loaded volume where they divide the batch, else 1."""
    if configured >= 1 and batch % configured == 0:
        return configured, f"the config's; {batch // configured} volume(s) per batch"
    return 1, f"the config's {configured} does not divide the batch: every patch from its own volume"


def plan_dataset(fingerprint, network: NetworkSpec, memory: StepMemory, budget: float,
                 configured_samples_per_volume: int = 1) -> Plan:
    """The plan of a `data.fingerprint.DatasetFingerprint` for `network` under `budget` bytes of step memory."""
    refuse_unplanned(network.architecture)
    spacings, cropped = fingerprint.spacings(), fingerprint.cropped_shapes()
    if len(spacings) == 0:
        raise SegError("seg plan: no case passed the dataset check; seg check-data lists the problems")
    spacing, spacing_why = rules.target_spacing(spacings, cropped)
    median = rules.resampled_median_shape(spacings, cropped, spacing)
    full = plan_stage("fullres", spacing, median, float(np.prod(median)) * len(spacings), network, memory, budget)
    lowres, lowres_why = plan_lowres(full, len(spacings), network, memory, budget)
    modalities = {m.upper() if m.upper() == "CT" else "other" for m in fingerprint.modality}
    normalization, norm_why = rules.normalization(
        "CT" if modalities == {"CT"} else "other", fingerprint.intensity[0],
        fingerprint.median_relative_size_after_cropping, len(fingerprint.channel_names))
    spv, spv_why = samples_per_volume(full.batch_size, configured_samples_per_volume)
    rows = [
        Row("spacing", f"{[round(s, 4) for s in spacing]} mm", spacing_why),
        Row("median shape", f"{[round(v) for v in median]} voxels", f"of {len(spacings)} cases cropped to nonzero, "
            "at that spacing"),
        *full.rows,
        Row("samples per volume", str(spv), spv_why),
        Row("normalisation", normalization_text(normalization), norm_why),
        Row("lower resolution", f"{[round(s, 3) for s in lowres.spacing]} mm, patch {lowres.patch_size}"
            if lowres else "none", lowres_why),
        *(lowres.rows if lowres else []),
    ]
    return Plan(full, lowres, normalization, spv, memory.describe(), budget, rows)


def table(rows: Sequence[Row]) -> str:
    """The plan as a text table: what, value, why."""
    width_what = max(len(row.what) for row in rows)
    width_value = max(len(row.value) for row in rows)
    return "\n".join(f"{row.what:<{width_what}}  {row.value:<{width_value}}  {row.why}" for row in rows)
