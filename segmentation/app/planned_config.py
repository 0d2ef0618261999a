"""The files `seg plan` writes: the planned config (a whole config that `seg fit --config` trains), the plan and
the fingerprint as JSON beside it. A file at the config's path that `seg plan` did not write is never replaced."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..core.storage import write_text_atomically
from ..measure.planner import Plan, table
from . import own_files

HEADER = "# Planned by `seg plan`"


def sidecars(out: Path) -> tuple[Path, Path]:
    """The plan's and the fingerprint's JSON files beside the config `out`."""
    stem = out.name.removesuffix(".yaml").removesuffix(".yml")
    return out.with_name(f"{stem}.plan.json"), out.with_name(f"{stem}.fingerprint.json")


def refuse_foreign_file(out: Path) -> None:
    """SegError when `out` exists and is not a config `seg plan` wrote (a hand-written config is never lost)."""
    own_files.refuse_foreign_file(out, HEADER, "--out", "seg plan", "planned.yaml")


def planned_config(config: dict, plan: Plan) -> dict:
    """`config` (the composed config, as LightningCLI dumps it) with the plan's choices put in."""
    data = config["data"]["init_args"]
    data.update(spacing=plan.fullres.spacing, patch_size=plan.fullres.patch_size,
                batch_size=plan.fullres.batch_size, samples_per_volume=plan.samples_per_volume,
                normalization=plan.normalization)
    config["model"]["network_kwargs"] = {**(config["model"].get("network_kwargs") or {}), **plan.fullres.network_kwargs}
    return config


class _ConfigDumper(yaml.SafeDumper):
    """Block-style mappings, with lists of numbers (and lists of such lists) on one line, as configs write them."""


def _represent_list(dumper: yaml.SafeDumper, values: list) -> yaml.Node:
    flat = all(not isinstance(v, (dict, list)) or (isinstance(v, list) and not any(isinstance(w, (dict, list))
                                                                                  for w in v)) for v in values)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", values, flow_style=flat)


_ConfigDumper.add_representer(list, _represent_list)


def header(plan: Plan, command: str, cases: int, root: str) -> str:
    """The config's first lines: how it was made, and the plan's table as comments."""
    lines = [f"{HEADER} from {cases} cases of {root}:", f"#   {command}",
             f"# Memory target {plan.memory_target_bytes / 2**30:.1f} GiB, {plan.memory}.", "#"]
    lines += [f"# {line}".rstrip() for line in table(plan.rows).splitlines()]
    return "\n".join(lines) + "\n"


def write_plan(out: Path, config: dict, plan: Plan, fingerprint: dict, command: str, cases: int, root: str) -> None:
    """Write the planned config at `out` and the plan and fingerprint JSON beside it (each atomically)."""
    refuse_foreign_file(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan_file, fingerprint_file = sidecars(out)
    write_text_atomically(fingerprint_file, json.dumps(fingerprint, indent=1))
    write_text_atomically(plan_file, json.dumps(plan.as_json(), indent=1))
    body = yaml.dump(planned_config(config, plan), Dumper=_ConfigDumper, sort_keys=False, default_flow_style=False)
    write_text_atomically(out, header(plan, command, cases, root) + body)
