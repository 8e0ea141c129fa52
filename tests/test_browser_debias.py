"""The Debias view in a real browser (Debian's Chromium): on a crop of the sample, run a first-conv surgery of the
ImageNet checkpoint from the Debias view, then find the child next to its parent in the Distributions view. The
README's ``docs/debias.png`` is taken here (the Debias view with the report)."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, app_url  # noqa: F401  (app_url is a fixture)

from explorer.config import REPO_ROOT
from explorer.models.checkpoints import list_zoo
from explorer.reporting.figures.style import display_names

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]  # one server
PARENT = "unet-mobilenet_v2-imagenet-s0"
CHILD = PARENT + "-surgery-symmetric"


def _crop(tmp_path: Path, volume: Path, mask: Path) -> tuple[Path, Path]:
    """The sample's centre, 64 × 64 × 16 voxels, and its mask: a scan small enough for a loaded CPU."""
    out = []
    for source, name in ((volume, "my_scan.nii.gz"), (mask, "my_mask.nii.gz")):
        img = nib.load(source).slicer[6:70, 15:79, 32:48]
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine), tmp_path / name)
        out.append(tmp_path / name)
    return out[0], out[1]


def test_surgery_from_the_debias_view_appears_beside_its_parent(
    app_url,  # noqa: F811  (the fixture imported from test_browser)
    tmp_path,
    sample_volume_path,
    sample_mask_path,
):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    scan, mask = _crop(tmp_path, sample_volume_path, sample_mask_path)
    n = 1  # the parent, analysed alone
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(app_url)
        sidebar = page.locator('[data-testid="stSidebar"]')
        # The first visit shows the sample with the whole zoo (from the session's warm cache); a small scan and one
        # checkpoint are enough here: keep the ImageNet one (its chip says strategy and seed), upload a crop and its
        # mask, and analyse them.
        expect(sidebar.get_by_role("button", name="Analyse")).to_be_enabled(timeout=600_000)
        labels = display_names([p.stem for p in list_zoo()])
        for path in list_zoo():
            if path.stem != PARENT:
                sidebar.get_by_role("button", name=f"Remove {labels[path.stem]}").click()
        sidebar.get_by_text("Upload a scan").click()
        scan_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Scan (")
        expect(scan_uploader).to_be_visible(timeout=60_000)
        scan_uploader.locator('input[type="file"]').set_input_files(str(scan))
        caption = re.compile(r"my_scan.nii.gz: \(\d+, \d+, \d+\) voxels")
        expect(sidebar.get_by_text(caption)).to_be_visible(timeout=120_000)
        mask_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Mask (optional")
        mask_uploader.locator('input[type="file"]').set_input_files(str(mask))
        expect(sidebar.get_by_text("my_mask.nii.gz")).to_be_visible(timeout=120_000)
        sidebar.get_by_role("button", name="Analyse").click()
        expect(page.get_by_text(re.compile(r"· 1 checkpoint\(s\)"))).to_be_visible(timeout=600_000)
        expect(sidebar.get_by_role("button", name="Analyse")).to_be_enabled(timeout=600_000)

        page.get_by_text("Debias", exact=True).click()
        expect(page.get_by_text("Checkpoint to debias")).to_be_visible(timeout=60_000)
        page.get_by_role("button", name="Debias", exact=True).click()
        # The surgery, its evaluation and the analysis of the child; then the whole page analyses the child too.
        expect(page.get_by_text(re.compile(r"Made 1 child\(ren\) of " + PARENT))).to_be_visible(timeout=600_000)
        expect(page.get_by_text(re.compile(rf"· {n + 1} checkpoint\(s\)"))).to_be_visible(timeout=600_000)
        expect(page.get_by_text(f"{PARENT} and its children")).to_be_visible(timeout=60_000)
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(1, timeout=60_000)
        page.get_by_text(re.compile(r"Made 1 child\(ren\)")).scroll_into_view_if_needed()
        page.mouse.wheel(0, 250)  # the note, the table and the figure in one screen
        page.wait_for_timeout(1500)  # the figure's first paint
        (REPO_ROOT / "docs" / "debias.png").write_bytes(page.screenshot(full_page=False))

        page.get_by_text("Distributions", exact=True).click()
        picker = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Show checkpoints")
        tags = picker.locator("[data-tag]")
        expect(tags).to_have_count(n + 1, timeout=60_000)
        expect(tags.nth(0)).to_contain_text(labels[PARENT])
        expect(tags.nth(1)).to_contain_text("surgery-symmetric")  # right after its parent
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        expect(chart).to_contain_text("imagenet, seed 0 → surgery-symmetric", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "app_debias_distributions.png"), full_page=False)
        browser.close()
