"""The joint image-text space: loading paths, the named patient split, metrics, and training on real pairs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from knowledge_sources import DEMO_DIR
from medrag.datasets.covid import covid_pairs
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.encode.joint import (
    DEFAULT_CHECKPOINT,
    CorruptCheckpoint,
    JointEncoder,
    _resolve_text_tower,
    base_model_config,
)
from medrag.imaging.radiograph import load_image_file
from medrag.metrics import retrieval_metrics
from training.joint import TrainOptions, train_joint


@pytest.fixture(scope="module")
def demo_cases():
    pairs = covid_pairs(DEMO_DIR / "covid" / "metadata.csv")
    return [load_image_file(pair.image_path) for pair in pairs], [pair.text for pair in pairs]


def test_committed_checkpoint_embeds_images_and_texts_into_one_normalised_space(joint_encoder, demo_cases):
    images, texts = demo_cases
    image_vectors, text_vectors = joint_encoder.encode_images(images), joint_encoder.encode_texts(texts)
    assert image_vectors.shape == text_vectors.shape == (len(images), 256)
    assert np.allclose(np.linalg.norm(image_vectors, axis=1), 1, atol=1e-5)
    assert str(DEFAULT_CHECKPOINT) in joint_encoder.source
    assert not np.allclose(image_vectors[0], image_vectors[1]), "different radiographs, different vectors"


def test_an_open_clip_checkpoint_folder_loads_through_open_clip(joint_encoder, demo_cases, tmp_path):
    """The path a user with BiomedCLIP takes: open_clip's own config + weights, read by open_clip."""
    from safetensors.torch import save_file

    config = _resolve_text_tower(base_model_config())
    (tmp_path / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": config, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3, "size": 224}}))
    save_file({name: tensor.contiguous() for name, tensor in joint_encoder.model.state_dict().items()},
              tmp_path / "open_clip_model.safetensors")
    text_tower = Path(config["text_cfg"]["hf_tokenizer_name"])  # a hub snapshot carries its tokenizer files
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(text_tower / name, tmp_path / name)
    reloaded = JointEncoder.load(tmp_path)
    assert reloaded.source == f"local-dir:{tmp_path.resolve()}"
    images, texts = demo_cases
    assert np.allclose(reloaded.encode_images(images[:2]), joint_encoder.encode_images(images[:2]), atol=1e-5)
    assert np.allclose(reloaded.encode_texts(texts[:2]), joint_encoder.encode_texts(texts[:2]), atol=1e-5)


def test_models_are_never_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        JointEncoder.load("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    with pytest.raises(FileNotFoundError, match=r"no open_clip_config\.json"):
        JointEncoder.load(tmp_path)


def test_split_keeps_every_patient_and_image_on_one_side(data_dir):
    pairs = covid_pairs(data_dir / "cxr" / "covid" / "metadata.csv")
    parts = DEFAULT_SPLIT.divide(pairs)
    assert sum(len(part) for part in parts) == len(pairs) and all(parts)
    groups = [{pair.group for pair in part} for part in parts]
    files = [{pair.image_path for pair in part} for part in parts]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not groups[a] & groups[b] and not files[a] & files[b]
    assert DEFAULT_SPLIT.divide(pairs) == parts


def test_retrieval_metrics_count_identical_texts_as_relevant():
    eye = np.eye(4, dtype=np.float32)
    perfect = retrieval_metrics(eye, eye, ["a", "b", "c", "d"], ks=(1,))
    assert perfect["image_to_text"] == {"recall@1": 1.0, "mrr": 1.0}
    swapped = retrieval_metrics(eye, eye[[1, 0, 2, 3]], ["a", "a", "c", "d"], ks=(1,))
    assert swapped["image_to_text"]["recall@1"] == 1.0, "the twin text is an equally right answer"
    wrong = retrieval_metrics(eye, eye[[1, 0, 3, 2]], ["a", "b", "c", "d"], ks=(1,))
    assert wrong["image_to_text"]["recall@1"] == 0.0


def test_training_beats_both_baselines_on_held_out_patients_and_is_reproducible(config, data_dir, tmp_path):
    options = TrainOptions()
    card = train_joint(config, data_dir, tmp_path / "a", options)
    assert card["split"]["name"] == DEFAULT_SPLIT.name
    assert card["split"]["parts"]["test"]["items"] == card["data"]["test"] == card["test_metrics"]["trained"]["pairs"]
    metrics = card["test_metrics"]
    for direction in ("image_to_text", "text_to_image"):
        trained = metrics["trained"][direction]["recall@5"]
        assert trained > metrics["random"][direction]["recall@5"] + 0.05
        assert trained > metrics["untrained_towers_random_projections"][direction]["recall@5"] + 0.05
    assert (tmp_path / "a" / "loss_curve.png").stat().st_size > 1000
    from safetensors.torch import load_file

    again = train_joint(config, data_dir, tmp_path / "b", dataclasses.replace(options))
    assert again["test_metrics"] == metrics
    first, second = load_file(tmp_path / "a" / "projections.safetensors"), load_file(tmp_path / "b" /
                                                                                      "projections.safetensors")
    assert all(torch.equal(first[name], second[name]) for name in first)


@pytest.mark.parametrize(("name", "damage"), [
    ("projections.safetensors", lambda data: data[: len(data) // 2]),
    ("medrag_joint.json", lambda data: b"{" + data[: len(data) // 3]),
])
def test_a_damaged_joint_checkpoint_names_the_file_and_the_fix(tmp_path, name, damage):
    folder = tmp_path / "joint"
    shutil.copytree(DEFAULT_CHECKPOINT, folder)
    (folder / name).write_bytes(damage((folder / name).read_bytes()))
    with pytest.raises(CorruptCheckpoint) as error:
        JointEncoder.load(folder)
    message = str(error.value)
    assert f"joint checkpoint file {folder / name} is damaged" in message
    assert "medrag train joint" in message and "MEDRAG_JOINT_MODEL" in message
