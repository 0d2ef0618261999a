"""Each dataset config's synthetic stand-in line, as its header comment writes it, gives data that the config as
written passes `seg check-data` on and splits into train, val and test; the README and docs say the same lines."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from ..helpers import REPO

CONFIGS = ("brats", "msd_liver", "totalseg")
STAND_IN = re.compile(r"^# Synthetic stand-in: (seg synth .+?)\s*$", re.MULTILINE)


def stand_in_line(config: str) -> str:
    """The `seg synth ...` command of the config's `# Synthetic stand-in:` header line."""
    lines = STAND_IN.findall((REPO / "configs" / f"{config}.yaml").read_text())
    assert len(lines) == 1, f"configs/{config}.yaml: expected one '# Synthetic stand-in: seg synth ...' line"
    return lines[0]


def commands_in(page: Path) -> list[str]:
    """Every `seg synth ...` command quoted in backticks on `page` (line breaks inside a quote read as spaces)."""
    text = " ".join(page.read_text().split())
    return re.findall(r"`(seg synth [^`]+)`", text)


def with_out(line: str, out: Path) -> list[str]:
    """The stand-in's arguments after `seg`, its `--out` folder replaced by `out`."""
    args = shlex.split(line)
    assert args[:2] == ["seg", "synth"] and "--out" in args, line
    args[args.index("--out") + 1] = str(out)
    return args[1:]


@pytest.mark.unit
def test_the_readme_and_the_data_page_quote_the_configs_stand_in_lines():
    readme, page = commands_in(REPO / "README.md"), commands_in(REPO / "docs" / "data-and-caches.md")
    assert [line for line in readme if line.startswith("seg synth msd ")] == [stand_in_line("msd_liver")]
    for config in CONFIGS:
        assert stand_in_line(config) in page, f"docs/data-and-caches.md: quote {stand_in_line(config)!r}"


def split_counts(config: str, root: Path) -> tuple[int, int, int]:
    """(train, val, test) cases of the config's own datamodule on `root` (as `seg fit` splits them)."""
    settings = yaml.safe_load((REPO / "configs" / f"{config}.yaml").read_text())["data"]
    module, name = settings["class_path"].rsplit(".", 1)
    datamodule = getattr(importlib.import_module(module), name)(**{**settings["init_args"], "root": str(root)})
    split = datamodule.split([case["case"] for case in datamodule.list_cases()])
    return len(split.train), len(split.val), len(split.test)


@pytest.mark.parametrize("config", [pytest.param("brats", marks=pytest.mark.slow), "msd_liver",
                                    pytest.param("totalseg", marks=pytest.mark.slow)])
def test_the_stand_in_line_writes_data_the_config_passes_check_data_on(config, tmp_path, seg):
    data = tmp_path / "data"
    written = seg(*with_out(stand_in_line(config), data), cwd=tmp_path)
    assert written.returncode == 0, written.stderr[-2000:]
    checked = seg("check-data", "--config", str(REPO / "configs" / f"{config}.yaml"), f"--data.root={data}",
                  cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout[-1500:] + checked.stderr[-1500:]
    assert "patch: fits" in checked.stdout and "problems: 0" in checked.stdout
    assert all(count > 0 for count in split_counts(config, data)), split_counts(config, data)
