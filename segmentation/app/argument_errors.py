"""jsonargparse's refusals of `seg fit|validate|test|predict` options, said in one line that names the option.

LightningCLI's parser is built with `exit_on_error=False` (app.lightning_cli): instead of printing its usage and a
nested, many-line explanation, it raises `argparse.ArgumentError`, which `app.main` prints through `one_line`.
"""

from __future__ import annotations

import re
from dataclasses import fields

from ..schedules.plans import ScheduleOptions

UNKNOWN = re.compile(r"unrecognized arguments: (?P<given>\S+)|does not accept option '(?P<key>[^']+)'")


def one_line(message: str) -> str:
    """The refusal `message` of jsonargparse as one sentence: the option, the value given, what it takes."""
    unknown = UNKNOWN.search(message)
    if unknown:
        return unknown_option(unknown.group("given") or f"--{unknown.group('key')}")
    keys = re.findall(r'Parser key "([^"]+)"', message)
    if not keys:
        return " ".join(message.split())
    value = re.search(r"(?:Got value|Given value): (.*)", message)
    given = value.group(1).strip() if value else "?"
    nested = re.search(r"NestedArg\(key='([^']+)', val='([^']*)'\)", given)
    if nested:
        given = nested.group(2)
    return f"--{joined(keys)} {given}: {expectation(message, given)}"


def joined(keys: list[str]) -> str:
    """`data` and `cache` (a subclass's own key) -> `data.cache`; `model.lr` alone stays."""
    full = keys[0]
    for key in keys[1:]:
        if not key.startswith(full):
            full = f"{full}.{key}"
    return full


def expectation(message: str, given: str) -> str:
    """What the option takes, from the `Expected a ...` lines of the message."""
    choices = [quoted or number for group in re.findall(r"Literal\[([^\]]*)\]", message)
               for quoted, number in re.findall(r"'([^']*)'|(-?\d+)", group)]
    if choices:
        return "give one of " + ", ".join(dict.fromkeys(choices))
    if given.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return "give a finite number"
    types = re.findall(r"Expected a <class '(\w+)'>", message)
    names = [name for name in dict.fromkeys(types) if name != "NoneType"]
    return f"expected {' or '.join(names) or 'another value'} (seg fit --help describes each option)"


def unknown_option(given: str) -> str:
    """An option no part of seg takes; the schedule's options (moved under `model.schedule`) are pointed to."""
    option = given.split("=", 1)[0]
    name = option.rsplit(".", 1)[-1]
    if option.startswith("--model.") and name in {field.name for field in fields(ScheduleOptions)}:
        return f"{option}: unknown option; the schedule's options moved: give --model.schedule.{name}"
    return f"{given}: unknown option (seg fit --help lists the options)"
