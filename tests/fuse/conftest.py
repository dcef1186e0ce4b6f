"""Fusion tests run on one torch thread: the tensors are tiny, and one thread is immune to OpenMP
spin-waiting when other processes share the cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
