"""End to end in a real browser: Debian's headless Chromium (driven by Playwright's Python package) against the
app served by ``streamlit run`` on the test session's Weaviate and demo knowledge.

Screenshots go to ``build/test-artifacts/ui`` (``MEDRAG_TEST_ARTIFACTS`` to change): the Ask page before and after
the answer, and after a citation was followed.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrag.cli import streamlit_command
from medrag.config import load_config

CHROMIUM = Path("/usr/bin/chromium")
# The machine's network is closed: without these Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOTE = "Fever and dry cough for five days, bilateral peripheral ground-glass opacities."


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("MEDRAG_TEST_ARTIFACTS", "build/test-artifacts")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def app_url(app_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as ``medrag ui`` serves it, on a free port, with the test server and knowledge."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, **app_env}
    environment.pop("MEDRAG_CONFIG", None)
    log = tmp_path_factory.mktemp("app-log") / "streamlit.log"
    with log.open("w") as output:
        process = subprocess.Popen(streamlit_command(load_config(env=environment), port), env=environment,
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed: run `make browser` (part of `make setup`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)


def test_a_clinician_uploads_a_dicom_and_gets_a_cited_answer_with_a_heatmap(app_url, browser, data_dir,
                                                                             artifacts) -> None:
    study = data_dir / "dicom" / "nema-rg1" / "RG1_UNCI.dcm"  # MONOCHROME1 CR with a header window
    page = browser.new_page(viewport={"width": 1500, "height": 2400})
    page.set_default_timeout(240_000)
    page.goto(app_url)
    page.locator('input[type="file"]').first.set_input_files(str(study))
    page.get_by_label("Clinical note").fill(NOTE)
    page.keyboard.press("Tab")  # commits the note
    page.get_by_role("heading", name="De-identified request").wait_for()
    radiograph = page.locator('[data-testid="stImage"] img').first
    radiograph.wait_for()
    page.wait_for_timeout(1000)
    before = _pixels(radiograph.screenshot())

    width = page.get_by_role("slider", name="Window width")
    width.focus()
    page.keyboard.press("Home")  # the narrowest window: far more contrast
    page.get_by_text("/ W 1 ", exact=False).or_(page.get_by_text("/ W 1;", exact=False)).first.wait_for()
    page.wait_for_timeout(1000)
    after = _pixels(page.locator('[data-testid="stImage"] img').first.screenshot())
    assert before.shape == after.shape and np.abs(before - after).mean() > 10  # the displayed pixels changed
    page.screenshot(path=str(artifacts / "ask-request.png"))
    page.get_by_role("combobox", name="Window preset").click()  # back to a reading window through a preset
    page.get_by_role("option", name="Auto", exact=False).click()
    page.get_by_text("/ W 1 ", exact=False).first.wait_for(state="hidden")

    page.get_by_role("button", name="Ask", exact=True).click()
    page.get_by_role("heading", name="Evidence", exact=True).wait_for()
    page.get_by_text("attention while reading", exact=False).first.wait_for()
    assert page.locator('[data-testid="stImage"] img').count() >= 2  # the radiograph with the heatmap, the colour bar
    page.screenshot(path=str(artifacts / "ask-answer.png"))

    # Streamlit re-creates elements while a run is still going (the audit entry, the feedback form): a card clicked
    # then can be replaced, and the new one is not the :target. A clinician reads the finished page; so does this.
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()
    citations = page.locator('a[href^="#evidence-"]')
    assert citations.count() >= 1
    first = citations.first
    assert first.inner_text().strip().startswith("[1")
    target = first.get_attribute("href").removeprefix("#")
    first.click()
    page.wait_for_function(f"location.hash === '#{target}'")
    card = page.locator(f'[class*="st-key-card-{target.removeprefix("evidence-")}"]')
    # The :target style lands a frame or two after the hash changes (later on a busy machine): wait for it, then
    # check. A card that is never highlighted times out here and fails.
    page.wait_for_function("selector => { const card = document.querySelector(selector); "
                           "return card !== null && getComputedStyle(card).outlineStyle === 'solid'; }",
                           arg=f'[class*="st-key-card-{target.removeprefix("evidence-")}"]', timeout=10_000)
    assert card.evaluate("element => getComputedStyle(element).outlineStyle") == "solid"  # the card is highlighted
    others = page.locator('[class*="st-key-card-"]')
    outlined = [others.nth(i).evaluate("element => getComputedStyle(element).outlineStyle")
                for i in range(others.count())]
    assert outlined.count("solid") == 1
    assert "cited as [1" in card.inner_text()
    card.screenshot(path=str(artifacts / "ask-cited-card.png"))
    page.close()
