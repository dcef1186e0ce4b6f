"""The shared types sit at the bottom: importable without torch or the Weaviate client, and JSON-ready."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medrag.types import Hints, Request, Route, SourceSearch


def test_the_types_and_the_source_registry_load_neither_torch_nor_weaviate():
    probe = "import sys, medrag.types, medrag.sources; print(sorted({'torch', 'weaviate'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_request_from_a_dict_names_unknown_keys():
    assert Request.of({"question": "Is there an effusion?", "hints": Hints(intent="imaging")}) == Request(
        question="Is there an effusion?", hints=Hints(intent="imaging"))
    with pytest.raises(ValueError, match=r"unknown keys \['qestion'\]"):
        Request.of({"qestion": "typo"})


def test_a_route_is_plain_json():
    route = Route("literature", {"literature": 0.9, "imaging": 0.1}, (SourceSearch("PubmedArticle"),), False,
                  {"generator": "extractive"}, "literature: ...", ())
    exported = json.loads(json.dumps(route.to_dict()))
    assert exported["confidence"] == 0.9 and exported["sources"][0]["collection"] == "PubmedArticle"
