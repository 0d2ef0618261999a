"""The settings a resumed run changed, from two composed configs (YAML)."""

from __future__ import annotations

from typing import Any

import yaml


def comparable(value: Any) -> Any:
    """`value` with tuples as lists, recursively, so configs compare by content."""
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    return value


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def config_differences(stored_yaml: str, effective_yaml: str) -> list[str]:
    """`key: old -> new` for each setting the resumed run changed (the checkpoint path itself excluded)."""
    old, new = flatten(yaml.safe_load(stored_yaml) or {}), flatten(yaml.safe_load(effective_yaml) or {})
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key != "ckpt_path" and comparable(old.get(key)) != comparable(new.get(key))
    ]
