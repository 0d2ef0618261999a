"""The `seg` logger: INFO to the current stdout, warnings to stderr, rank 0 only unless a record says otherwise."""

from __future__ import annotations

import pytest
from lightning_utilities.core.rank_zero import rank_zero_only

from segmentation.core.log import ALL_RANKS, configure_console, global_rank, log

pytestmark = pytest.mark.unit


@pytest.fixture()
def console(monkeypatch):
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
    configure_console()
    yield


def test_info_goes_to_stdout_and_warnings_to_stderr_as_plain_lines(console, capsys):
    log.info("trained 3 epochs")
    log.warning("a cache was rebuilt")
    captured = capsys.readouterr()
    assert captured.out == "trained 3 epochs\n" and captured.err == "a cache was rebuilt\n"


def test_only_rank_zero_speaks_unless_a_record_is_for_all_ranks(console, capsys):
    rank_zero_only.rank = 1  # as Lightning's DDP strategy sets it on rank 1 (restored by the fixture)
    log.info("said once by rank 0")
    log.info("rank 1 disagrees", extra=ALL_RANKS)
    assert capsys.readouterr().out == "rank 1 disagrees\n"


def test_the_launchers_rank_counts_before_lightning_knows_it(monkeypatch):
    monkeypatch.delattr(rank_zero_only, "rank", raising=False)
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert global_rank() == 3


def test_configuring_twice_prints_each_line_once(console, capsys):
    configure_console()
    log.info("once")
    assert capsys.readouterr().out == "once\n"
