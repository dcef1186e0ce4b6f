"""A damaged fusion checkpoint is one clear error naming the file and the fix, not a safetensors or json traceback."""

from __future__ import annotations

import shutil

import pytest

from medrag.fuse.checkpoint import CHECKPOINT_CONFIG, CHECKPOINT_WEIGHTS, DEFAULT_CHECKPOINT, CorruptCheckpoint
from medrag.fuse.reranker import FusionReranker


@pytest.mark.parametrize(("name", "damage"), [
    (CHECKPOINT_WEIGHTS, lambda data: data[: len(data) // 2]),
    (CHECKPOINT_WEIGHTS, lambda data: b"\xff" * 16 + data[16:]),
    (CHECKPOINT_CONFIG, lambda data: data[: len(data) // 3]),
])
def test_a_damaged_fusion_checkpoint_names_the_file_and_the_fix(tmp_path, name, damage):
    folder = tmp_path / "fusion"
    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    (folder / name).write_bytes(damage((folder / name).read_bytes()))
    with pytest.raises(CorruptCheckpoint) as error:
        FusionReranker.load(folder)
    message = str(error.value)
    assert f"fusion checkpoint file {folder / name} is damaged" in message
    assert "medrag train fusion" in message and "MEDRAG_FUSION_MODEL" in message


def test_the_committed_checkpoint_still_loads():
    assert FusionReranker.load().model is not None
