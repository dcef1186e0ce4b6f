"""The app under test talks to the test session's real Weaviate server and its demo knowledge tenant, through the
same environment variables a deployment sets (MEDRAG_WEAVIATE_URL, ..._API_KEY, ..._GRPC_PORT, ..._TENANT)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ui
from tests.conftest import PLUMBING_READER

APP = Path(ui.__file__).parent / "app.py"


@pytest.fixture(scope="session")
def app_env(store, knowledge, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the app: the session's server and knowledge tenant, a private home, the plumbing reader."""
    server = store.server
    assert server is not None, "the test store is the embedded server"
    return {"MEDRAG_HOME": str(tmp_path_factory.mktemp("app-home")), "MEDRAG_WEAVIATE_URL": server.url,
            "MEDRAG_WEAVIATE_API_KEY": server.api_key, "MEDRAG_WEAVIATE_GRPC_PORT": str(server.grpc_port),
            "MEDRAG_WEAVIATE_TENANT": knowledge, "MEDRAG_DATA_DIR": str(data_dir.resolve()),
            "MEDRAG_GENERATOR_MODEL": PLUMBING_READER}


@pytest.fixture
def app_environment(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``app_env`` set in this process (AppTest runs the app in-process)."""
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MEDRAG_CONFIG", raising=False)
    return app_env


@pytest.fixture(scope="session")
def dicom_study(data_dir: Path) -> tuple[str, bytes]:
    """A real DX radiograph (NIH, via IDC) whose header names its patient: de-identification has work to do."""
    path = next((data_dir / "dicom" / "nih-dx").glob("*.dcm"))
    return path.name, path.read_bytes()
