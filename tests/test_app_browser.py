"""`a2sb app` in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium
uploads the README's example, restores it, downloads the result and compares it with the CLI's output.

Screenshots are written to $A2SB_ARTIFACTS (default: the test's tmp folder) as app-analysed.png and
app-restored.png; `A2SB_ARTIFACTS=docs/images` remakes the README's pictures.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "example_lowpassed.flac"
GAPS = ROOT / "examples" / "example_gaps.flac"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytest.importorskip("gradio", reason="the app extra is not installed (pip install -e '.[dev]' adds it)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture(scope="module")
def app_url():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "a2sb", "app", "--port", str(port), "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    url, lines, deadline = None, [], time.time() + 180
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "running at" in line:
            url = line.split("running at", 1)[1].split()[0]
            folder = Path(line.split("files are in", 1)[1].split(",")[0].strip())
            break
    if url is None:
        proc.kill()
        pytest.fail("the app did not start:\n" + "".join(lines))
    assert url == f"http://127.0.0.1:{port}/"  # loopback by default
    assert folder.is_dir()
    yield url
    # uploads, results and Gradio's own cache were all in the app's temporary folder ...
    assert (folder / "gradio").is_dir() and any((folder / "work").iterdir())
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert proc.returncode == 0
    assert not folder.exists()  # ... which is gone once the app stops


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1350",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)  # never Selenium Manager's downloads
    driver = webdriver.Chrome(options=options, service=service)
    driver.downloads = downloads
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("A2SB_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def _value(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).get_attribute("value")


def _cli(source: Path, out: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "a2sb", "restore", str(source), "-o", str(out), "--seed", "0",
                           "--device", "cpu"], env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def _download(browser, name: str) -> Path:
    target = browser.downloads / name
    target.unlink(missing_ok=True)
    link = WebDriverWait(browser, 60).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'#download a[download="{name}"]')))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    deadline = time.time() + 60
    while not target.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert target.exists(), list(browser.downloads.iterdir())
    return target


def _same_audio(ours: Path, theirs: Path) -> None:
    a, rate = sf.read(str(ours), dtype="int32")
    b, cli_rate = sf.read(str(theirs), dtype="int32")
    assert rate == cli_rate == 44100
    assert a.shape == b.shape == (441000, 2)
    assert np.array_equal(a, b)
    assert ours.read_bytes() == theirs.read_bytes()


def test_restore_in_browser_equals_cli(app_url, browser, artifacts, tmp_path):
    cli_out, cli_gaps = tmp_path / "cli.flac", tmp_path / "cli_gaps.flac"
    _cli(EXAMPLE, cli_out)
    _cli(GAPS, cli_gaps)

    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
    upload.send_keys(f"{EXAMPLE}\n{GAPS}")  # two files at once; the first is chosen
    wait.until(lambda d: "lowpass at" in _value(d, "#findings textarea"))
    assert browser.find_element(By.CSS_SELECTOR, "#cutoff-on input").is_selected()
    assert not browser.find_element(By.CSS_SELECTOR, "#holes-on input").is_selected()  # not a lossy decode
    hz = float(browser.find_element(By.CSS_SELECTOR, "#cutoff-hz input").get_attribute("value"))
    assert 3000 < hz < 4500, hz  # the example is lowpassed at 4 kHz
    browser.save_screenshot(str(artifacts / "app-analysed.png"))

    browser.find_element(By.CSS_SELECTOR, "#restore").click()
    WebDriverWait(browser, 540).until(lambda d: "done:" in _text(d, "#status") or "error" in _text(d, "#status"))
    assert "done: example_lowpassed.restored.flac" in _text(browser, "#status")

    # both spectrograms are shown (loaded pictures, not empty frames)
    for box in ("#spec-before", "#spec-after"):
        image = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"{box} img")))
        wait.until(lambda d, image=image: d.execute_script("return arguments[0].complete && "
                                                           "arguments[0].naturalWidth > 300", image))
    report = browser.find_element(By.CSS_SELECTOR, "#report textarea").get_attribute("value")
    assert "regenerated the band above 3.9 kHz" in report and "lowpass at 3.9 kHz" in report
    for player in ("#play-input", "#play-restored", "#play-difference"):
        assert browser.find_elements(By.CSS_SELECTOR, f"{player} audio, {player} button"), player
    browser.execute_script("document.querySelector('#report').scrollIntoView()")
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(artifacts / "app-restored.png"))

    # the page needed nothing from outside this computer
    sources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [s for s in sources if urlparse(s).scheme in ("http", "https", "ws", "wss")
               and urlparse(s).hostname not in ("127.0.0.1", "localhost")]
    assert outside == []

    _same_audio(_download(browser, "example_lowpassed.restored.flac"), cli_out)

    # the second upload: its dropouts are found and shown in the gap box, no cutoff
    browser.find_element(By.CSS_SELECTOR, "#file-choice input").click()
    option = wait.until(EC.element_to_be_clickable(
        (By.XPATH, "//*[@id='file-choice']//li[contains(., 'example_gaps.flac')]")))
    option.click()
    wait.until(lambda d: "2 dropouts" in _value(d, "#findings textarea"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#spec-after img"))  # the other file's results go
    assert _value(browser, "#gaps input, #gaps textarea") == "0:02.85-0:03.15, 0:06.85-0:07.15"
    assert not browser.find_element(By.CSS_SELECTOR, "#cutoff-on input").is_selected()
    browser.find_element(By.CSS_SELECTOR, "#restore").click()
    WebDriverWait(browser, 540).until(lambda d: "example_gaps.restored" in _text(d, "#status")
                                      or "error" in _text(d, "#status"))
    assert "done: example_gaps.restored.flac" in _text(browser, "#status")
    assert "filled" in _value(browser, "#report textarea")
    _same_audio(_download(browser, "example_gaps.restored.flac"), cli_gaps)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(artifacts / "app-gaps.png"))


def test_cancel_in_browser(app_url, browser):
    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
    upload.send_keys(str(EXAMPLE))
    wait.until(lambda d: "lowpass at" in _value(d, "#findings textarea"))
    browser.find_element(By.CSS_SELECTOR, "#restore").click()
    # the progress bar shows the windows done, then Cancel stops the job
    WebDriverWait(browser, 120).until(lambda d: "windows" in d.find_element(By.TAG_NAME, "body").text)
    browser.find_element(By.CSS_SELECTOR, "#cancel").click()
    WebDriverWait(browser, 120).until(lambda d: "cancelled" in _text(d, "#status"))
    assert _text(browser, "#status") == "cancelled: nothing was written"
    assert not browser.find_elements(By.CSS_SELECTOR, "#spec-after img")


def test_bad_upload_shows_one_line(app_url, browser, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
    upload.send_keys(str(bad))
    wait.until(lambda d: "error" in _text(d, "#status"))
    message = _text(browser, "#status")
    assert "notes.wav" in message and "cannot read audio file" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1


def test_lossy_upload_turns_the_hole_repair_on(app_url, browser, tmp_path):
    from a2sb.codecs import encode_file

    clean, rate = sf.read(str(ROOT / "examples" / "example.flac"), dtype="float32")
    mp3 = encode_file(clean.T, rate, "mp3", 64, tmp_path / "lossy.mp3").path
    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
    upload.send_keys(str(mp3))
    wait.until(lambda d: "lossy codec (MP3" in _value(d, "#findings textarea"))
    assert browser.find_element(By.CSS_SELECTOR, "#holes-on input").is_selected()
    assert browser.find_element(By.CSS_SELECTOR, "#cutoff-on input").is_selected()
