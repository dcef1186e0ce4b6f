"""The de-identification key file: made once where it is the default, never silently replaced where configured."""

from __future__ import annotations

import stat

import pytest

from medrag.config import load_config
from medrag.deid.secrets import MIN_KEY_BYTES, DeidKeyError, deid_key


@pytest.fixture
def config(tmp_path):
    return load_config().replace(home=tmp_path / "home")


def test_the_default_key_is_made_once_with_mode_0600(config):
    key = deid_key(config)
    path = config.home / "deid.key"
    assert len(key) >= MIN_KEY_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert deid_key(config) == key


def test_a_configured_key_file_that_is_missing_is_an_error_not_a_new_key(config, tmp_path):
    missing = tmp_path / "vault" / "deid.key"
    with pytest.raises(DeidKeyError) as error:
        deid_key(config.replace(deid_key_file=missing))
    message = str(error.value)
    assert f"{missing} (MEDRAG_DEID_KEY_FILE) does not exist" in message and "backup" in message
    assert not missing.exists()


def test_an_unreadable_key_file_names_the_path_and_the_fix(config, tmp_path):
    unreadable = tmp_path / "deid.key"
    unreadable.mkdir()  # unreadable as a file even for root, who reads any file whatever its mode
    with pytest.raises(DeidKeyError) as error:
        deid_key(config.replace(deid_key_file=unreadable))
    assert f"cannot read or create the de-identification key file {unreadable}" in str(error.value)
    assert "MEDRAG_DEID_KEY_FILE" in str(error.value)


def test_an_empty_or_cut_off_key_is_refused(config, tmp_path):
    short = tmp_path / "deid.key"
    short.write_text("abc\n")
    with pytest.raises(DeidKeyError, match=f"{short} holds 3 bytes"):
        deid_key(config.replace(deid_key_file=short))
