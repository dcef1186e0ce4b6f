from pathlib import Path

import pytest

from medrag.config import ConfigError, load_config


def test_defaults_without_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.weaviate.url is None
    assert config.weaviate.tenant == "default"
    assert config.data_dir == Path("../shared/data")
    assert config.weaviate_data_dir == config.home / "weaviate"


def test_environment_overrides_toml_which_overrides_defaults(tmp_path):
    toml = tmp_path / "medrag.toml"
    toml.write_text('data_dir = "/from/toml"\n[weaviate]\nurl = "http://toml:8080"\ngrpc_port = 6000\n')
    config = load_config(toml, env={"MEDRAG_WEAVIATE_URL": "https://env:443", "MEDRAG_WEAVIATE_SECURE": "yes"})
    assert config.weaviate.url == "https://env:443"
    assert config.weaviate.grpc_port == 6000
    assert config.weaviate.secure is True
    assert config.data_dir == Path("/from/toml")


def test_medrag_config_variable_names_the_file(tmp_path):
    toml = tmp_path / "site.toml"
    toml.write_text("[weaviate]\ntenant = 'hospital-a'\n")
    assert load_config(env={"MEDRAG_CONFIG": str(toml)}).weaviate.tenant == "hospital-a"


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="MEDRAG_WEAVIATE_GRPC_PORT"):
        load_config(env={"MEDRAG_WEAVIATE_GRPC_PORT": "fifty"})
    with pytest.raises(ConfigError, match="unknown config key 'MEDRAG_COLOUR'"):
        load_config(env={"MEDRAG_COLOUR": "blue"})


def test_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[weaviate\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, env={})


def test_replace_changes_one_section_field():
    config = load_config(env={}).replace(weaviate={"tenant": "x"})
    assert config.weaviate.tenant == "x"
    assert config.weaviate.version == load_config(env={}).weaviate.version


def test_toml_errors_use_toml_key_names(tmp_path):
    toml = tmp_path / "medrag.toml"
    toml.write_text("[weaviate]\nport = 'high'\n")
    with pytest.raises(ConfigError, match=r"weaviate\.port"):
        load_config(toml, env={})


def test_joint_model_defaults_to_the_committed_checkpoint_and_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).joint_model is None
    name = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    assert load_config(env={"MEDRAG_JOINT_MODEL": name}).joint_model == name
    assert load_config(env={"MEDRAG_JOINT_MODEL": ""}).joint_model is None
    (tmp_path / "medrag.toml").write_text(f"joint_model = '{tmp_path / 'ckpt'}'\n")
    assert load_config(env={}).joint_model == str(tmp_path / "ckpt")
