"""Command-line rewriting for resumes: a checkpoint's stored config goes first, so the user's arguments win."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Optional

import yaml
from typing_extensions import override

from ..core.errors import SegError
from ..training.checkpointing import load_checkpoint
from ..training.records import stored_config
from ..training.resume import resolve_checkpoint

RESUMABLE = ("fit", "validate", "test", "predict")


def ckpt_argument(argv: list[str]) -> tuple[Optional[int], Optional[str]]:
    """Position and value of `--ckpt_path` in `argv` (either `--ckpt_path X` or `--ckpt_path=X`)."""
    for index, arg in enumerate(argv):
        if arg == "--ckpt_path" and index + 1 < len(argv):
            return index, argv[index + 1]
        if arg.startswith("--ckpt_path="):
            return index, arg.split("=", 1)[1]
    return None, None


def with_stored_config(argv: list[str]) -> list[str]:
    """`argv` with the checkpoint's stored config inserted right after the subcommand.

    Only when `--ckpt_path` names a file or a run directory (not `last`, which
    needs the run's config to find the run). Later `--config` files and
    arguments override the stored values, as LightningCLI composes left to right.
    """
    if not argv or argv[0] not in RESUMABLE:
        return argv
    _, value = ckpt_argument(argv)
    if value is None or value == "last":
        return argv
    path = resolve_checkpoint(value, run_root=None)
    stored = stored_config(load_checkpoint(path)) if path else None
    if not stored:
        return argv
    return [argv[0], "--config", stored, *argv[1:]]


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML would keep the last silently)."""

    @override
    def construct_mapping(self, node, deep=False):
        """The mapping of `node`; a YAMLError at the second occurrence of a key."""
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                lines = f"lines {seen[key] + 1} and {key_node.start_mark.line + 1}"
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice ({lines})",
                                                        key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def config_arguments(argv: list[str]) -> Iterator[str]:
    """The values of every `--config X` / `--config=X` in `argv`."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            yield argv[index + 1]
        elif arg.startswith("--config="):
            yield arg.split("=", 1)[1]


def check_config_files(argv: list[str]) -> None:
    """SegError naming a `--config` file that does not exist or is not valid YAML (with the line and column).

    A value with a newline or in braces is a YAML string (as seg passes a checkpoint's stored config).
    """
    for value in config_arguments(argv):
        if "\n" in value or value.lstrip().startswith("{"):
            continue
        path = Path(value).expanduser()
        if path.is_dir():
            raise SegError(f"config file {value} is a folder (--config): give a YAML file")
        if not path.is_file():
            raise SegError(f"config file {value} does not exist (--config)")
        try:
            loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
        except UnicodeDecodeError as err:
            raise SegError(f"config file {value} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise SegError(f"config file {value} is not valid YAML{where}: {problem}; fix the file") from None
        if not isinstance(loaded, dict):
            raise SegError(f"config file {value} holds {'nothing' if loaded is None else 'a ' + type(loaded).__name__}"
                           f"; a config is a mapping of sections (trainer:, model:, data:)")


LIMITS = tuple(f"limit_{stage}_batches" for stage in ("train", "val", "test", "predict"))


def integer_limits(argv: list[str]) -> dict[str, int]:
    """The `trainer.limit_*_batches` given as whole numbers (a count of batches) in `argv` or its config files.

    Lightning reads 1 as one batch and 1.0 as all of them; jsonargparse turns both into 1.0 (float comes first in
    the option's `Union[int, float]`), so the counts are taken from where they were written, the last one winning.
    """
    found: dict[str, int] = {}
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            found.update(integer_limits_in_config(argv[index + 1]))
        for key in LIMITS:
            value = arg.split("=", 1)[1] if arg.startswith(f"--trainer.{key}=") else (
                argv[index + 1] if arg == f"--trainer.{key}" and index + 1 < len(argv) else None)
            if value is not None:
                found.pop(key, None)
                if value.strip().isdigit():
                    found[key] = int(value)
    return found


def integer_limits_in_config(value: str) -> dict[str, int]:
    """`integer_limits` of one `--config` value (a file, or YAML text as seg passes a stored config)."""
    try:
        text = value if "\n" in value else Path(value).expanduser().read_text(encoding="utf-8")
        trainer = (yaml.safe_load(text) or {}).get("trainer") or {}
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return {}
    return {key: trainer[key] for key in LIMITS if type(trainer.get(key)) is int}


def with_integer_limits(config_yaml: str, limits: dict[str, int]) -> str:
    """`config_yaml` (a composed config, as stored in checkpoints) with the `integer_limits` written back as counts,
    so that a checkpoint-only resume reads one batch where the run was given one."""
    for key, count in limits.items():
        config_yaml = re.sub(rf"^(  {key}: ).*$", rf"\g<1>{count}", config_yaml, count=1, flags=re.MULTILINE)
    return config_yaml
