"""The whole product in a real browser: ``streamlit run`` on a free local port, driven by Debian's Chromium.

Upload a NIfTI through the file input, run the analysis, wait for the distribution chart, download the PNG
export and check it is a valid image; then open the Cohort view and run the sample cohort on 3 volumes. Screenshots
are kept in ``test-artifacts/`` as test artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from explorer.config import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def app_url(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run 'make test' as root or 'apt-get install chromium'")
    port = _free_port()
    env = {**os.environ, "EXPLORER_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "explorer/app/main.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _upload_volume(tmp_path: Path, sample_volume_path: Path) -> Path:
    """A real upload: the sample's central 24 axial slices, as a user would crop a scan."""
    img = nib.load(sample_volume_path)
    crop = img.slicer[:, :, 28:52]
    path = tmp_path / "my_scan.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(crop.dataobj).astype(np.float32), crop.affine), path)
    return path


def test_upload_analyse_and_export_png_in_chromium(app_url, tmp_path, sample_volume_path):
    from playwright.sync_api import expect, sync_playwright

    scan = _upload_volume(tmp_path, sample_volume_path)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        page.goto(app_url)
        sidebar = page.locator('[data-testid="stSidebar"]')
        # First visit: the sample volume and the shipped zoo are analysed without any click.
        expect(page.get_by_text("Show checkpoints")).to_be_visible(timeout=240_000)
        page.screenshot(path=str(ARTIFACTS / "app_sample.png"), full_page=True)

        sidebar.get_by_text("Upload a scan").click()
        scan_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Scan (")
        expect(scan_uploader).to_be_visible(timeout=30_000)
        uploader = scan_uploader.locator('input[type="file"]')
        uploader.set_input_files(str(scan))
        expect(sidebar.get_by_text("my_scan.nii.gz: (77, 94, 24) voxels")).to_be_visible(timeout=60_000)
        sidebar.get_by_role("button", name="Analyse").click()
        # The caption names the analysed volume: it appears only once the new analysis is done.
        expect(page.get_by_text("Analysed: my_scan.nii.gz")).to_be_visible(timeout=240_000)
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "app_upload.png"), full_page=True)

        with page.expect_download(timeout=120_000) as info:
            page.get_by_role("button", name="PNG").first.click()
        png = Path(info.value.path()).read_bytes()
        (ARTIFACTS / "distribution.png").write_bytes(png)

        page.get_by_text("Export", exact=True).click()
        with page.expect_download(timeout=240_000) as info:
            page.get_by_role("button", name="Download report (.zip)").click()
        report = Path(info.value.path()).read_bytes()
        (ARTIFACTS / "report.zip").write_bytes(report)

        # The Cohort view: the sample cohort's first 3 volumes with two checkpoints of the zoo.
        sidebar.get_by_text("Cohort", exact=True).click()
        expect(page.get_by_text("Manifest under")).to_be_visible(timeout=60_000)
        count = page.get_by_label("Volumes (the manifest's first N)")
        count.fill("3")
        count.press("Enter")
        for name in ("unet-mobilenet_v2-imagenet-zflip", "unet-mobilenet_v2-random"):
            page.get_by_role("button", name=f"Remove {name}").click()
        page.get_by_role("button", name="Run cohort").click()
        expect(page.get_by_text("3 volume(s) × 2 checkpoint(s)")).to_be_visible(timeout=300_000)
        expect(page.get_by_text("Between groups (Holm-corrected over all tests)")).to_be_visible()
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 3
        page.screenshot(path=str(ARTIFACTS / "app_cohort.png"), full_page=True)
        browser.close()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(ARTIFACTS / "distribution.png") as im:
        im.verify()
        assert im.size[0] >= 600 and im.size[1] >= 300
    with zipfile.ZipFile(ARTIFACTS / "report.zip") as bundle:
        names = set(bundle.namelist())
        assert {"report/shares.csv", "report/summary.json", "report/parameters.json"} <= names
        assert "report/figures/share_distribution_violin.png" in names
        summary = json.loads(bundle.read("report/summary.json"))
        assert summary["inputs"]["volume"]["source"] == "my_scan.nii.gz"
