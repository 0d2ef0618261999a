"""A SegError is found behind the exceptions that wrap it (jsonargparse wraps errors raised in constructors)."""

from __future__ import annotations

import pytest

from segmentation.core.errors import SegError, user_error

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_user_error_unwraps_causes_and_contexts():
    original = SegError("data root x does not exist (--data.root)")
    try:
        try:
            raise original
        except SegError as err:
            raise ValueError("Problem with given class_path") from err
    except ValueError as wrapped:
        assert user_error(wrapped) is original
    assert user_error(RuntimeError("a bug")) is None and user_error(None) is None
