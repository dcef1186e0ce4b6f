"""Fusion tests run on one torch thread (see the ``one_thread`` fixture)."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_thread):
    yield
