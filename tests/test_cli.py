"""The console script, run as a user would: a separate process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest


def medrag(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medrag", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_help_lists_the_commands():
    result = medrag("--help")
    assert result.returncode == 0
    for command in ("doctor", "demo", "server", "ui"):
        assert command in result.stdout


def test_the_app_is_served_on_loopback_with_xsrf_protection_and_the_configured_upload_cap():
    from medrag.cli import streamlit_command
    from medrag.config import load_config

    command = streamlit_command(load_config(env={"MEDRAG_UI_MAX_UPLOAD_MB": "12"}), port=8765)
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("ui/app.py")
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8765"
    assert options["--server.enableXsrfProtection"] == "true" and options["--server.maxUploadSize"] == "12"
    assert options["--browser.gatherUsageStats"] == "false" and options["--client.showErrorDetails"] == "type"


def test_doctor_reports_the_server_binary_and_its_version(weaviate_binary):
    result = medrag("doctor", env={"MEDRAG_WEAVIATE_BIN": str(weaviate_binary.path), "MEDRAG_JOINT_MODEL": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{weaviate_binary.path} (version {weaviate_binary.version}, from MEDRAG_WEAVIATE_BIN)" in result.stdout
    assert "all-MiniLM-L6-v2" in result.stdout
    assert "torch                  2.14.1" in result.stdout
    assert re.search(r"^llama-cpp-python +0\.3\.36$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^generator model +Qwen2\.5-Coder-1\.5B-Instruct Q4_K_M GGUF from 22 packages, joined",
                     result.stdout, re.MULTILINE), result.stdout
    # Before `medrag train joint` has run the joint row says so, and that alone does not fail doctor.
    assert re.search(r"^joint model +(not trained yet: run `medrag train joint`|medrag partial checkpoint .* "
                     r"\(committed\)$)", result.stdout, re.MULTILINE), result.stdout


def test_doctor_flags_a_joint_model_missing_from_the_hugging_face_cache():
    result = medrag("doctor", env={"MEDRAG_JOINT_MODEL": "hf-hub:medrag-tests/no-such-model"})
    assert result.returncode == 1
    assert re.search(r"^joint model +MISSING: medrag-tests/no-such-model is not in the local Hugging Face cache",
                     result.stdout, re.MULTILINE), result.stdout


def test_doctor_flags_a_broken_binary_setting(tmp_path):
    result = medrag("doctor", env={"MEDRAG_WEAVIATE_BIN": str(tmp_path / "missing")})
    assert result.returncode == 1
    assert "is not an executable file" in result.stdout


def test_doctor_names_an_external_cluster():
    result = medrag("doctor", env={"MEDRAG_WEAVIATE_URL": "https://weaviate.hospital.example:443"})
    assert "external cluster at https://weaviate.hospital.example:443" in result.stdout


def test_bad_configuration_is_one_line_error():
    result = medrag("doctor", env={"MEDRAG_WEAVIATE_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "medrag: error: config key 'MEDRAG_WEAVIATE_PORT': cannot read 'eighty' as int "
        "(invalid literal for int() with base 10: 'eighty')"
    )


def test_server_reports_the_version_it_was_built_as(store, weaviate_binary):
    assert store.client.get_meta()["version"] == weaviate_binary.version


@pytest.mark.usefixtures("weaviate_binary")
def test_demo_ingests_the_demo_knowledge_base_and_searches_it(tmp_path):
    result = medrag("demo", env={"MEDRAG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Weaviate running at http://127.0.0.1:" in out
    assert "PubmedArticle: read 203, ingested 203 (203 new)" in out
    assert "RadiologyReport: read 200, ingested 199 (199 new)" in out
    assert "ImagingCase: read 3, ingested 3 (3 new)" in out
    literature, _, image_and_note = out.split("Literature question:")[1].partition("Chest radiograph siim-cr")
    assert "Route: literature" in literature
    assert "#1 PubmedArticle 17323047" in literature, "the question's own abstract comes first"
    assert re.search(r"^Answer \((extractive|generative)\): .*\[1\]", literature, re.MULTILINE), literature
    assert re.search(r"^  \[1\] PubMed 17323047: ", literature, re.MULTILINE), "the answer cites that abstract"
    assert re.search(r"^  \[1\] (report|case) \S+: ", image_and_note, re.MULTILINE), "cited report or case"
    assert "Route: clinical" in image_and_note
    assert "the image by the joint vector" in image_and_note
    assert re.search(r"#\d ImagingCase .*COVID-19", image_and_note), "a covid case is among the evidence"
    assert (tmp_path / "weaviate" / "weaviate.log").exists()

    again = medrag("demo", env={"MEDRAG_HOME": str(tmp_path)})
    assert "PubmedArticle: read 203, ingested 0 (0 new), unchanged 203" in again.stdout

    asked = medrag("ask", "--question", "Is treatment of ventilator-associated pneumonia delayed at night?",
                   "--explain", "-k", "3", env={"MEDRAG_HOME": str(tmp_path)})
    assert asked.returncode == 0, asked.stderr[-2000:]
    assert "Route: literature" in asked.stdout and "Searching PubMed articles" in asked.stdout
    assert re.search(r"^#1 PubmedArticle 17323047", asked.stdout, re.MULTILINE), asked.stdout
    assert "timings: prepare" in asked.stdout

    as_json = medrag("ask", "--question", "Is treatment of ventilator-associated pneumonia delayed at night?",
                     "--json", "--mode", "extractive", env={"MEDRAG_HOME": str(tmp_path)})
    answer = json.loads(as_json.stdout)
    assert answer["mode"] == "extractive" and answer["citations"][0]["source_id"] == "17323047"

    streamed = medrag("ask", "--question", "Is treatment of ventilator-associated pneumonia delayed at night?",
                      "--mode", "generative", "--stream", env={"MEDRAG_HOME": str(tmp_path)})
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    written, _, checked = streamed.stdout.partition("(grounding check applied below)")
    assert written.strip() and checked.lstrip().startswith("Answer (generative): ")

    image = tmp_path / "not-an-image.dcm"
    image.write_bytes(b"plain text")
    refused = medrag("ask", "--note", "cough", "--image", str(image), env={"MEDRAG_HOME": str(tmp_path)})
    assert refused.returncode == 2
    assert "not-an-image.dcm: not a DICOM file" in refused.stderr
