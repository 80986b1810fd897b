"""The web page in a real browser (Debian's headless Chromium driven by Selenium) on the pushed model.

The local server serves the model that the session's pipeline run pushed
(``first_run`` in conftest.py); the page runs in this process on a free port
and talks to the server over gRPC.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from components.serving import server
from components.web import app, local_serving
from components.web import serving as web_serving
from pipeline import cli, configs

pytestmark = pytest.mark.e2e

# Longest wait for the page to load or to answer, in seconds (a first Predict traces the model).
PAGE_TIMEOUT_SECONDS = 120.0

# How long the recording test records, in seconds.
RECORDING_SECONDS = 2.5


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed: `make browser` (part of `make test`) installs it")
    return found


def _chromedriver() -> str:
    found = shutil.which("chromedriver")
    if found is None:
        pytest.fail(
            "Debian's chromium-driver is not installed: `make browser` (part of `make test`) installs it"
        )
    return found


@pytest.fixture(scope="module")
def pushed_version(first_run: Path) -> int:
    base_path = first_run / "serving" / configs.SERVING_MODEL_NAME
    [version] = [int(path.name) for path in base_path.iterdir() if path.name.isdigit()]
    return version


@pytest.fixture(scope="module")
def pushed_model_server(first_run: Path, pushed_version: int) -> Iterator[server.RunningServer]:
    base_path = first_run / "serving" / configs.SERVING_MODEL_NAME
    running = server.start_server(base_path, configs.SERVING_MODEL_NAME, host="127.0.0.1", port=0)
    try:
        assert running.manager.wait_for_version(pushed_version, timeout_seconds=60) is not None
        yield running
    finally:
        running.stop(grace_seconds=2.0)


@pytest.fixture(scope="module")
def page(pushed_model_server: server.RunningServer, corpus: Path) -> Iterator[app.RunningPage]:
    settings = app.PageSettings(server=pushed_model_server.address, examples_dir=str(corpus))
    running = app.launch_page(settings, host="127.0.0.1", port=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    # A fake microphone (a tone), granted without a prompt, for the recording test.
    options.add_argument("--use-fake-device-for-media-stream")
    options.add_argument("--use-fake-ui-for-media-stream")
    options.add_argument("--window-size=1400,2200")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(_chromedriver()), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(browser: webdriver.Chrome) -> WebDriverWait:
    return WebDriverWait(browser, PAGE_TIMEOUT_SECONDS, poll_frequency=0.2)


def _open(browser: webdriver.Chrome, page: app.RunningPage) -> None:
    browser.get(page.url)
    _wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} input"))


def _result(browser: webdriver.Chrome) -> WebElement:
    return browser.find_element(By.ID, app.RESULT_ID)


def _predict(browser: webdriver.Chrome, audio_path: Path | None) -> WebElement:
    """Uploads a file (or keeps the input as it is), presses Predict and waits for the new result panel."""
    before = _result(browser).get_attribute("data-request")
    if audio_path is not None:
        browser.find_element(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} input[type=file]").send_keys(
            str(audio_path)
        )
        # The upload has landed on the server when the audio input shows its player.
        _wait(browser).until(
            lambda driver: driver.find_elements(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} audio")
        )
    browser.find_element(By.ID, app.PREDICT_BUTTON_ID).click()
    _wait(browser).until(lambda driver: _result(driver).get_attribute("data-request") != before)
    return _result(browser)


def _clear_audio(browser: webdriver.Chrome) -> None:
    buttons = browser.find_elements(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} button[aria-label='Clear']")
    if buttons:
        buttons[0].click()
        _wait(browser).until(
            lambda driver: not driver.find_elements(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} audio")
        )


def _shown_probabilities(browser: webdriver.Chrome) -> dict[str, float]:
    rows = browser.find_elements(By.CSS_SELECTOR, f"#{app.PROBABILITY_TABLE_ID} tbody tr")
    return {row.get_attribute("data-class"): float(row.get_attribute("data-probability")) for row in rows}


def _requested_urls(browser: webdriver.Chrome) -> set[str]:
    """Every URL the browser requested since the last call, from Chrome's performance log."""
    urls = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.add(message["params"]["url"])
    return urls


def _a_clip_that_is_not_an_example(corpus: Path, page: app.RunningPage) -> Path:
    examples = {path.name for path in page.page.example_paths}
    return next(path for path in sorted(corpus.glob("*.wav")) if path.name not in examples)


def test_the_page_shows_the_accent_accent_pipeline_predict_gives(
    browser: webdriver.Chrome,
    page: app.RunningPage,
    pushed_model_server: server.RunningServer,
    pushed_version: int,
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _open(browser, page)
    _wait(browser).until(
        lambda driver: (
            f"version {pushed_version} (AVAILABLE)" in driver.find_element(By.ID, app.MODEL_INFO_ID).text
        )
    )
    clip = _a_clip_that_is_not_an_example(corpus, page)

    result = _predict(browser, clip)

    assert result.get_attribute("data-state") == "ok", result.text
    shown_accent = browser.find_element(By.ID, app.PREDICTED_ACCENT_ID).text
    shown_probabilities = _shown_probabilities(browser)
    capsys.readouterr()
    assert cli.main(["predict", str(clip), "--server", pushed_model_server.address, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert shown_accent == expected["accent"]
    assert set(shown_probabilities) == set(configs.PipelineSettings().class_names)
    for class_name, probability in expected["class_probabilities"].items():
        assert shown_probabilities[class_name] == pytest.approx(probability, abs=1e-5)
    assert f"version {expected['model_version']}" in result.text
    bars = browser.find_element(By.ID, app.CLASS_PROBABILITIES_ID).text
    assert expected["accent"] in bars and "%" in bars
    for figure_id in (app.PATCH_TIMELINE_ID, app.LOG_MEL_ID):
        image = browser.find_element(By.CSS_SELECTOR, f"#{figure_id} img")
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 100

    screenshot = tmp_path / "web_page_result.png"
    assert browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as picture:
        pixels = np.asarray(picture.convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.01, "no text or figure drawn"

    # Nothing was fetched from anywhere but the page's own server (data: and blob: URLs are in the page).
    page_origin = page.url.rstrip("/")
    requested = _requested_urls(browser)
    outside = {
        url
        for url in requested
        if not url.startswith((page_origin, page_origin.replace("http", "ws", 1), "data:", "blob:"))
    }
    assert requested and outside == set()
    # The upload was deleted once read; only the example clips' copies stay in the upload folder.
    assert not [path for path in Path(page.upload_dir).rglob(clip.name)]


def test_an_example_clip_is_one_click_away(browser: webdriver.Chrome, page: app.RunningPage) -> None:
    _open(browser, page)
    example_name = page.page.example_paths[0].name
    example = browser.find_element(
        By.XPATH, f"//*[@id='{app.EXAMPLES_ID}']//button[contains(., '{example_name}')]"
    )
    example.click()
    _wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} audio"))
    result = _predict(browser, None)
    assert result.get_attribute("data-state") == "ok", result.text
    assert example_name in result.text
    # An example's copy is kept, so it can be clicked again.
    assert _predict(browser, None).get_attribute("data-state") == "ok"


def test_a_text_file_named_wav_gets_a_message_and_the_page_stays_usable(
    browser: webdriver.Chrome, page: app.RunningPage, corpus: Path, tmp_path: Path
) -> None:
    _open(browser, page)
    fake = tmp_path / "notes.wav"
    fake.write_text("These are meeting notes, not a recording.\n")

    result = _predict(browser, fake)

    assert result.get_attribute("data-state") == "error"
    assert result.get_attribute("data-kind") == web_serving.NOT_AUDIO
    message = browser.find_element(By.ID, app.MESSAGE_ID).text
    assert message.startswith("Not audio: notes.wav") and "WAV, FLAC, Ogg Vorbis or MP3" in message
    _clear_audio(browser)
    assert _predict(browser, _a_clip_that_is_not_an_example(corpus, page)).get_attribute("data-state") == "ok"


def _audio_button(browser: webdriver.Chrome, text: str) -> WebElement | None:
    """The audio input's visible button labelled ``text``, or None."""
    buttons = browser.find_elements(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} button")
    return next((button for button in buttons if button.text.strip() == text and button.is_displayed()), None)


def test_a_microphone_recording_is_scored_when_it_stops(
    browser: webdriver.Chrome, page: app.RunningPage
) -> None:
    _open(browser, page)
    before = _result(browser).get_attribute("data-request")
    browser.find_element(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} button[aria-label='Record audio']").click()
    _wait(browser).until(lambda driver: _audio_button(driver, "Record"))
    _audio_button(browser, "Record").click()
    _wait(browser).until(lambda driver: _audio_button(driver, "Stop"))
    time.sleep(RECORDING_SECONDS)  # What is recorded: the fake microphone's tone for this long.
    _audio_button(browser, "Stop").click()

    _wait(browser).until(lambda driver: _result(driver).get_attribute("data-request") != before)

    result = _result(browser)
    assert result.get_attribute("data-state") == "ok", result.text
    assert browser.find_element(By.ID, app.PREDICTED_ACCENT_ID).text in configs.PipelineSettings().class_names


def test_a_file_over_the_size_limit_is_refused_by_the_page(
    browser: webdriver.Chrome, page: app.RunningPage, tmp_path: Path
) -> None:
    _open(browser, page)
    too_large = tmp_path / "long_recording.wav"
    with open(too_large, "wb") as sparse:
        sparse.truncate(page.page.settings.max_file_bytes + 1)

    browser.find_element(By.CSS_SELECTOR, f"#{app.AUDIO_INPUT_ID} input[type=file]").send_keys(str(too_large))

    _wait(browser).until(
        lambda driver: "exceed the maximum allowed size" in driver.find_element(By.TAG_NAME, "body").text
    )
    assert not list(Path(page.upload_dir).rglob(too_large.name))


def test_one_command_serves_the_pushed_model_and_starts_the_page(
    browser: webdriver.Chrome, first_run: Path, pushed_version: int, tmp_path: Path
) -> None:
    """``web --model-base-path``, the command the run summary prints: a serving child, the page, one stop."""
    port = local_serving.free_loopback_port()
    base_path = first_run / "serving" / configs.SERVING_MODEL_NAME
    log_path = tmp_path / "web.log"
    with open(log_path, "w") as log:
        command = [
            sys.executable,
            "-m",
            "pipeline.cli",
            "web",
            "--model-base-path",
            str(base_path),
            "--port",
            str(port),
        ]
        web = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, web)
        browser.get(f"http://127.0.0.1:{port}/")
        _wait(browser).until(
            lambda driver: (
                f"version {pushed_version} (AVAILABLE)" in driver.find_element(By.ID, app.MODEL_INFO_ID).text
            )
        )
    finally:
        web.terminate()
        exit_code = web.wait(timeout=60)
    log_text = log_path.read_text()
    [child_pid] = re.findall(r"The serving process (\d+) accepts calls", log_text)
    assert exit_code == 0, log_text
    with pytest.raises(ProcessLookupError):
        os.kill(int(child_pid), 0)


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    """Waits until the page's process listens on ``port``; fails if the process exits first."""
    deadline = time.monotonic() + PAGE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the web command exited with {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"the page did not listen on port {port} within {PAGE_TIMEOUT_SECONDS:g} s")


def test_a_stopped_server_gets_the_server_unavailable_message(
    browser: webdriver.Chrome,
    page: app.RunningPage,
    pushed_model_server: server.RunningServer,
    corpus: Path,
    tmp_path: Path,
) -> None:
    _open(browser, page)
    pushed_model_server.stop(grace_seconds=1.0)

    result = _predict(browser, _a_clip_that_is_not_an_example(corpus, page))

    assert result.get_attribute("data-state") == "error"
    assert result.get_attribute("data-kind") == web_serving.SERVER_UNAVAILABLE
    message = browser.find_element(By.ID, app.MESSAGE_ID).text
    assert message.startswith("Server unavailable:") and pushed_model_server.address in message
    assert "Served model: unknown" in browser.find_element(By.ID, app.MODEL_INFO_ID).text
    # The page stays usable: the next request is answered, with its own message.
    _clear_audio(browser)
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio")
    assert _predict(browser, fake).get_attribute("data-kind") == web_serving.NOT_AUDIO
