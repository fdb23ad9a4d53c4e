"""Fixtures shared by the parity tests (helpers live in parity_tests/helpers.py)."""

from __future__ import annotations

import pytest

from parity_tests.helpers import precision


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    with precision(request.param):
        yield request.param
