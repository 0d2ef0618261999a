"""What pyproject.toml promises about versions is what CI installs for its version-floor run (`make test-floors`)."""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.version import Version

from .helpers import REPO

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_the_floor_run_installs_the_lower_bounds_of_pyproject():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.match(r"([a-z]+)>=([\d.]+)", d).groups() for d in dependencies
                  if d.startswith(("monai", "lightning")))
    makefile = (REPO / "Makefile").read_text()
    installed = dict(re.findall(r"(monai|lightning)==([\d.]+)", re.search(r"^FLOORS = (.*)$", makefile, re.M).group(1)))
    assert {name: Version(v) for name, v in installed.items()} == {name: Version(v) for name, v in floors.items()}
    assert "make test-floors" in (REPO / ".ci/run").read_text()


def test_the_version_in_checkpoints_is_the_packages():
    from segmentation import __version__

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == __version__
