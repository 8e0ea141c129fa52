"""The whole product in a real browser: ``streamlit run`` on a free local port, driven by Debian's Chromium.

Upload a NIfTI and a checkpoint of one's own through the file inputs, run the analysis and click a view while
it runs, hide and show a checkpoint (no two checkpoint chips alike), open the 3D viewer with its overlays (its
canvas must draw, and stay one canvas, with its settings kept, through three control changes and a visit to another
view), move the slice viewer's window, download the report (its summary PDF checked on word boxes, its slice figure
equal to the one on screen), then run the sample cohort (its central 8 axial slices, under the server's data
root) on 3 volumes in the Cohort view; run a first-conv surgery from the Debias view and find the child beside its
parent. Screenshots are kept in ``test-artifacts/``; the README's ``docs/screenshot.png``,
``docs/distributions.png`` and ``docs/debias.png`` are taken here, and written to ``docs/`` with
``EXPLORER_README_SCREENSHOTS=1`` (the committed ones show an earlier, larger upload: 77 × 94 × 24 voxels).

One server and one Chromium serve the module's tests (each test in its own browser context, so its own Streamlit
session): starting them costs more CPU than most of what a test then does. The 3D viewer's canvas check once had a
test of its own on a page of its own (``tests/pages/viewer3d_page.py``); it is part of the upload test now, which
made the same three control changes and visit to another view anyway.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pytest

from explorer.config import REPO_ROOT, SAMPLE_DIR
from explorer.models.checkpoints import list_zoo
from explorer.reporting.figures.style import display_names
from explorer.reporting.figures.tables import format_table, stats_table
from tests.apptools import plotly_json
from tests.pdfcheck import pdf_problems

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
# Software WebGL (SwiftShader) instead of --disable-gpu: the 3D viewer needs WebGL2 on a machine with no GPU. The
# page itself is composited, rasterised and its 2D canvases drawn in software: through SwiftShader, Chromium's GPU
# process took 74 s of CPU for the module, against 17 s (docs/performance.md).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-gpu-compositing",
    "--disable-accelerated-2d-canvas",
    "--disable-gpu-rasterization",
    "--force-prefers-reduced-motion",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: The window of both tests (and of the README's screenshots).
VIEWPORT = {"width": 1500, "height": 1100}
#: What the page's first plotly chart draws: each trace's name, type, colour range and opacity, and the titles
#: (null while the chart is being redrawn: its element is replaced).
SCREEN_FIGURE_JS = """() => {
  const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!gd || !gd.data) return null;
  return {traces: gd.data.map(t => [t.name ?? null, t.type ?? null, t.zmin ?? null, t.zmax ?? null, t.opacity ?? null]),
          titles: (gd.layout.annotations || []).map(a => a.text)};
}"""


def _figure_facts(data: list, layout: dict) -> dict:
    """:data:`SCREEN_FIGURE_JS`'s facts of a figure read from its plotly JSON."""
    keys = ("name", "type", "zmin", "zmax", "opacity")
    return {
        "traces": [[t.get(k) for k in keys] for t in data],
        "titles": [a.get("text") for a in layout.get("annotations", [])],
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and every live process under it (the server, Chromium), read
    from ``/proc``; 0 where there is none."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    mine, total = {os.getpid()}, 0.0
    for _ in range(8):  # a few generations: pytest → playwright's driver → Chromium → its helpers
        mine |= {pid for pid, (ppid, _) in stats.items() if ppid in mine}
    for pid in mine:
        total += stats.get(pid, (0, 0.0))[1]
    return total


class _Phases:
    """Prints each phase's wall and CPU seconds (this process and those under it; shown with ``-s``, and in a
    failing test's report): where a browser test's time goes."""

    def __init__(self, test: str) -> None:
        self.test, self.last, self.cpu = test, time.monotonic(), _cpu_seconds()

    def __call__(self, name: str) -> None:
        now, cpu = time.monotonic(), _cpu_seconds()
        print(f"{self.test}: {name} {now - self.last:.1f} s wall, {cpu - self.cpu:.1f} s CPU", flush=True)
        self.last, self.cpu = now, cpu


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory, warm_cache) -> Iterator[str]:
    """The app, served on a copy of the session's warm cache (the Debias view's children stay here): the first
    visit shows results at once (the analysis itself is tested elsewhere); what the page does next is computed as
    a user's would be. One server for the module:
    each test's browser context is a session of its own (uploads, choices and jobs are kept per session). Its
    data root (``EXPLORER_DATA_ROOT``, where the Cohort view finds manifests) holds :func:`_cohort_crop`."""
    root = _cohort_crop(tmp_path_factory.mktemp("data"))
    env = {**warm_cache.copy(tmp_path_factory.mktemp("warm")).env(), "EXPLORER_DATA_ROOT": str(root)}
    yield from _serve("explorer/app/main.py", tmp_path_factory.mktemp("server"), env)


def _cohort_crop(root: Path, subjects: int = 4, slices: int = 8) -> Path:
    """The sample cohort's first ``subjects`` volumes and masks, each cut to its central ``slices`` axial slices,
    with their manifest (the same columns), in ``root/cohort``: the Cohort view's run is the sample cohort's, on
    a tenth of the voxels (the whole volumes made it most of this module's CPU time).

    Returns:
        ``root``.
    """
    source, target = SAMPLE_DIR / "cohort", root / "cohort"
    target.mkdir(parents=True)
    with open(source / "manifest.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames or [], list(reader)[:subjects]
    for row in rows:
        for column in ("volume", "mask"):
            img = nib.load(source / row[column])
            start = img.shape[2] // 2 - slices // 2
            crop = img.slicer[:, :, start : start + slices]
            nib.save(nib.Nifti1Image(np.asanyarray(crop.dataobj), crop.affine), target / row[column])
    with open(target / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, launched once for the module's tests (each opens a context of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


def _serve(script: str, tmp_path: Path, cache_env: dict[str, str]) -> Iterator[str]:
    """``streamlit run script`` on a free port with the cache ``cache_env`` names; yields its URL once it
    answers."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run 'make test' as root or 'apt-get install chromium'")
    port = _free_port()
    env = {**os.environ, **cache_env, "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            script,
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
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


def _centre(sources: dict[Path, Path], z: tuple[int, int], dtype: type | None = None) -> None:
    """Each source (the sample, its mask) cut to its centre, 64 × 64 voxels in-plane and axial slices
    ``z[0]:z[1]``, as a user would crop a scan, and saved to its target (as ``dtype``, if given)."""
    for source, target in sources.items():
        img = nib.load(source).slicer[6:70, 15:79, z[0] : z[1]]
        data = np.asanyarray(img.dataobj)
        nib.save(nib.Nifti1Image(data.astype(dtype) if dtype else data, img.affine), target)


def _upload_volume(tmp_path: Path, sample_volume_path: Path) -> Path:
    """A real upload: the sample's centre, 64 × 64 × 8 voxels in float32 (few enough for a loaded CPU to analyse
    with the six checkpoints, enough for the figures and the report)."""
    path = tmp_path / "my_scan.nii.gz"
    _centre({sample_volume_path: path}, (36, 44), np.float32)
    return path


def _own_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of one's own: a zoo checkpoint with one bias nudged (other weights, same metadata)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = list_zoo()[0]
    with safe_open(str(source), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    bias = next(k for k in tensors if k.endswith("bias"))
    tensors[bias] = tensors[bias] + 1e-3
    path = tmp_path / "my_model.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _settle(page: Page) -> None:
    """Wait for the script run a widget change starts to end (Streamlit marks its app element with the state),
    rather than a fixed time."""
    from playwright.sync_api import expect

    app = page.locator('[data-testid="stApp"]')
    try:  # the run starts when the change reaches the server; a quick one may be over before this looks
        expect(app).not_to_have_attribute("data-test-script-state", "notRunning", timeout=1500)
    except AssertionError:
        pass
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=120_000)


def _choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label``, and let the page rerun."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    _settle(page)


def _readme_shot(page: Page, name: str) -> None:
    """One of the README's screenshots: into ``test-artifacts/``, and into ``docs/`` (the README's copy) only when
    ``EXPLORER_README_SCREENSHOTS=1`` asks for it, so that a test run leaves the tree as it was."""
    png = page.screenshot(full_page=False)
    (ARTIFACTS / name).write_bytes(png)
    if os.environ.get("EXPLORER_README_SCREENSHOTS") == "1":
        (REPO_ROOT / "docs" / name).write_bytes(png)


def _lit_pixels(png: bytes) -> int:
    """Pixels of a screenshot that are neither near-black nor near-white (drawn content)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    grey = rgb.mean(axis=2)
    return int(((grey > 20) & (grey < 235)).sum())


def test_upload_analyse_view_3d_and_export_in_chromium(
    app_url: str, chromium: Browser, tmp_path: Path, sample_volume_path: Path
) -> None:
    """A user's whole session: upload, analyse, the views (the 3D viewer stays one canvas through control changes
    and keeps its settings: it used to add a scan panel per change), the report, the cohort."""
    from playwright.sync_api import expect

    scan = _upload_volume(tmp_path, sample_volume_path)
    own = _own_checkpoint(tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    phase = _Phases("upload test")
    with chromium.new_context(viewport=VIEWPORT, accept_downloads=True) as context:
        page = context.new_page()
        page.goto(app_url)
        sidebar = page.locator('[data-testid="stSidebar"]')
        # First visit: the sample volume and the shipped zoo, without any click (from the session's warm cache:
        # what `explorer app` warms at server start); the first visit ends when the Analyse button is enabled.
        expect(page.get_by_text("Show checkpoints")).to_be_visible(timeout=240_000)
        expect(sidebar.get_by_role("button", name="Analyse")).to_be_enabled(timeout=600_000)

        phase("first visit")
        chips = sidebar.locator('[data-testid="stMultiSelect"]').filter(has_text="Checkpoints (models/)")
        chip_labels = chips.locator("[data-tag]").all_inner_texts()
        sidebar.get_by_text("Upload a scan").click()
        scan_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Scan (")
        expect(scan_uploader).to_be_visible(timeout=30_000)
        scan_uploader.locator('input[type="file"]').set_input_files(str(scan))
        expect(sidebar.get_by_text("my_scan.nii.gz: (64, 64, 8) voxels")).to_be_visible(timeout=60_000)
        ckpt_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Add checkpoints")
        ckpt_uploader.locator('input[type="file"]').set_input_files(str(own))
        expect(sidebar.get_by_text("my_model.safetensors")).to_be_visible(timeout=60_000)
        # the server has the upload (the file name above is the browser's): else a click could analyse without it
        expect(sidebar.get_by_text(re.compile(r"my_model added: "))).to_be_visible(timeout=60_000)
        phase("uploads")
        sidebar.get_by_role("button", name="Analyse").click()
        # During the run the previous (sample) results stay: a click on a view must not abandon the run.
        n = len(list_zoo()) + 1  # the shipped zoo and my_model
        expect(page.get_by_text(re.compile(rf"Checkpoint \d of {n}"))).to_be_visible(timeout=60_000)
        page.get_by_text("Along the axis", exact=True).click()
        expect(page.get_by_text("Analysed: my_scan.nii.gz")).to_be_visible(timeout=300_000)
        phase("analysis")
        picker = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Show checkpoints")
        tags = picker.locator("[data-tag]")
        expect(tags).to_have_count(n)
        expect(tags.filter(has_text="my_model")).to_have_count(1)
        shown_labels = tags.all_inner_texts()

        # Hide one checkpoint, then show it again.
        picker.locator('[aria-label="Remove my_model"]').click()
        expect(tags).to_have_count(n - 1, timeout=30_000)
        picker.locator('[aria-label="Open"]').click()
        page.get_by_role("option", name="my_model").click()
        expect(tags).to_have_count(n, timeout=30_000)
        page.keyboard.press("Escape")

        # The README's second screenshot: the Distributions view of the six checkpoints, one hue per strategy.
        page.get_by_text("Distributions", exact=True).click()
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=60_000)
        page.wait_for_timeout(1500)  # the figure's first paint (the chart redraws once: no handle is kept)
        page.mouse.move(800, 600)
        page.mouse.wheel(0, 650)  # the figure, not the page's header, in the screenshot
        page.wait_for_timeout(1000)
        _readme_shot(page, "distributions.png")

        phase("distributions")
        # The 3D viewer with the attribution overlay: its WebGL canvas has drawn pixels.
        page.get_by_text("3D viewer", exact=True).click()
        expect(page.get_by_text(re.compile(r"^Overlays: "))).to_be_visible(timeout=60_000)
        frame = page.frame_locator('iframe[title*="niivue"]')
        canvas = frame.locator("canvas").first
        expect(canvas).to_be_visible(timeout=60_000)
        lit = 0
        for _ in range(120):  # NiiVue decodes the volumes asynchronously
            page.wait_for_timeout(250)
            lit = _lit_pixels(canvas.screenshot())
            if lit > 5000:
                break
        page.screenshot(path=str(ARTIFACTS / "app_3d.png"), full_page=False)
        _readme_shot(page, "screenshot.png")
        # Three control changes update the overlays in place: still one NiiVue canvas, and the settings survive
        # a visit to another view. Made in a narrower window: each change redraws the canvas in software
        # (SwiftShader), at a cost that grows with its pixels.
        page.set_viewport_size({**VIEWPORT, "width": 900})
        _choose(page, "Colour map", "viridis")
        _choose(page, "Layout", "Axial")
        page.locator('[data-testid="stSlider"]').filter(has_text="Attribution opacity").get_by_role("slider").press(
            "ArrowLeft"
        )
        _settle(page)
        page.wait_for_timeout(3000)  # the component's front end takes the new overlays: time for a second panel
        canvases = frame.locator("canvas").count()
        page.get_by_text("Distributions", exact=True).click()
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=60_000)
        page.get_by_text("3D viewer", exact=True).click()
        expect(page.get_by_role("combobox", name="Colour map")).to_have_value("viridis", timeout=60_000)
        expect(page.get_by_role("combobox", name="Layout")).to_have_value("Axial")
        expect(canvas).to_be_visible(timeout=60_000)
        page.wait_for_timeout(2000)  # as above: time for a second panel to appear
        canvases_after_return = frame.locator("canvas").count()
        page.screenshot(path=str(ARTIFACTS / "app_3d_controls.png"))
        page.set_viewport_size(VIEWPORT)
        phase("3D viewer")

        # The slice viewer with a window of the user's: the report's slice figure must be this very figure.
        page.get_by_text("Slice viewer", exact=True).click()
        window = page.locator('[data-testid="stSlider"]').filter(has_text="Window (grey levels)")
        expect(window).to_be_visible(timeout=60_000)
        expect(page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot').first).to_be_attached(timeout=60_000)
        before = page.wait_for_function(SCREEN_FIGURE_JS, timeout=60_000).json_value()
        window.get_by_role("slider").first.press("ArrowRight")
        on_screen = page.wait_for_function(  # the server has redrawn the figure with the new window
            "([js, old]) => { const f = eval(js)(); "
            "return f && JSON.stringify(f.traces[0]) !== JSON.stringify(old) ? f : null; }",
            arg=[SCREEN_FIGURE_JS, before["traces"][0]],
            timeout=120_000,
        ).json_value()

        phase("slice viewer")
        page.get_by_text("Export", exact=True).click()
        with page.expect_download(timeout=300_000) as info:
            page.get_by_role("button", name="Download report (.zip)").click()
        report = Path(info.value.path()).read_bytes()
        (ARTIFACTS / "report.zip").write_bytes(report)

        phase("report")
        # The Cohort view: the (cropped) sample cohort's first 3 volumes with two checkpoints of the zoo.
        sidebar.get_by_text("Cohort", exact=True).click()
        expect(page.get_by_text("Manifest under")).to_be_visible(timeout=60_000)
        count = page.get_by_label("Volumes (the manifest's first N)")
        count.fill("3")
        count.press("Enter")
        for name in (
            "unet-mobilenet_v2-imagenet-symmetric-s0",
            "unet-mobilenet_v2-imagenet-zflip-s0",
            "unet-mobilenet_v2-random-s0",
        ):
            page.get_by_role("button", name=f"Remove {name}").click()
        page.get_by_role("button", name="Run cohort").click()
        expect(page.get_by_text("3 volume(s) × 2 checkpoint(s)")).to_be_visible(timeout=600_000)
        expect(page.get_by_text("Between groups (Holm-corrected over all tests)")).to_be_visible()
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 3
        page.screenshot(path=str(ARTIFACTS / "app_cohort.png"), full_page=True)
        phase("cohort")
    phase("done")
    assert lit > 5000, f"the 3D viewer's canvas drew only {lit} pixels"
    assert canvases == 1, f"the 3D viewer shows {canvases} NiiVue canvases after three control changes"
    assert canvases_after_return == 1, f"the 3D viewer shows {canvases_after_return} canvases after another view"
    # the chips say strategy and seed, no label twice (the sidebar's zoo; the shown checkpoints with my_model)
    assert len(set(chip_labels)) == len(chip_labels) == len(list_zoo()) and "imagenet, seed 0" in chip_labels
    assert len(set(shown_labels)) == len(shown_labels) == len(list_zoo()) + 1, shown_labels
    with zipfile.ZipFile(ARTIFACTS / "report.zip") as bundle:
        names = set(bundle.namelist())
        assert {"report/shares.csv", "report/summary.json", "report/parameters.json", "report/summary.pdf"} <= names
        assert bundle.read("report/summary.pdf").startswith(b"%PDF")
        assert any(n.startswith("report/figures/slice_") for n in names)
        summary = json.loads(bundle.read("report/summary.json"))
        assert summary["inputs"]["volume"]["source"] == "my_scan.nii.gz"
        assert "my_model" in summary["models"]
        pdf = bundle.read("report/summary.pdf")
        [slice_page] = [n for n in names if n.startswith("report/figures/slice_") and n.endswith(".html")]
        in_report = _figure_facts(*plotly_json(bundle.read(slice_page).decode()))
    # the report's slice figure is the screen's: the same traces (the anatomy under the maps), window and titles
    assert in_report == on_screen
    assert sum(name == "anatomy" for name, *_ in on_screen["traces"]) >= 3
    windows = {(lo, hi) for name, _, lo, hi, _ in on_screen["traces"] if name == "anatomy"}
    assert len(windows) == 1 and windows != {(None, None)}, windows
    # every value of the statistics table and every checkpoint's hash printed, nothing clipped or overlapping
    table = format_table(stats_table(summary)).drop(columns=["model", "label"])
    expected = [v for v in table.to_numpy().ravel() if isinstance(v, str)]
    expected += [e["checkpoint_sha256"] for e in summary["models"].values()]
    assert pdf_problems(pdf, expected) == []


# The Debias view: on a crop of the sample, a first-conv surgery of the ImageNet checkpoint run from the view, then
# the child found next to its parent in the Distributions view; the README's ``docs/debias.png`` is taken here.
PARENT = "unet-mobilenet_v2-imagenet-s0"
CHILD = PARENT + "-surgery-symmetric"


def test_surgery_from_the_debias_view_appears_beside_its_parent(
    app_url: str, chromium: Browser, tmp_path: Path, sample_volume_path: Path, sample_mask_path: Path
) -> None:
    """A surgery run from the Debias view: its note, table and figure, and the child listed right after its parent
    in the Distributions view."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    scan, mask = tmp_path / "my_scan.nii.gz", tmp_path / "my_mask.nii.gz"
    # 64 × 64 × 16, small for a loaded CPU; the surgery's held-out dice needs a validation block, its gaps and
    # training slices beside it (8 slices leave none)
    _centre({sample_volume_path: scan, sample_mask_path: mask}, (32, 48))
    n = 1  # the parent, analysed alone
    phase = _Phases("debias test")
    with chromium.new_context(viewport=VIEWPORT) as context:
        page = context.new_page()
        page.goto(app_url)
        sidebar = page.locator('[data-testid="stSidebar"]')
        # The first visit shows the sample with the whole zoo (from the session's warm cache); a small scan and one
        # checkpoint are enough here: keep the ImageNet one (its chip says strategy and seed), upload a crop and its
        # mask, and analyse them.
        expect(sidebar.get_by_role("button", name="Analyse")).to_be_enabled(timeout=600_000)
        labels = display_names([p.stem for p in list_zoo()])
        chips = sidebar.locator('[data-testid="stMultiSelect"]').filter(has_text="Checkpoints (models/)")
        # two script runs, one click each (on a loaded machine a click during a run was lost): clear the list, then
        # choose the parent
        chips.locator('[aria-label="Clear all"]').click()
        _settle(page)
        expect(chips.locator("[data-tag]")).to_have_count(0, timeout=60_000)
        chips.locator('[aria-label="Open"]').click()
        page.get_by_role("option", name=labels[PARENT], exact=True).click()
        page.keyboard.press("Escape")
        _settle(page)
        expect(chips.locator("[data-tag]")).to_have_count(1, timeout=60_000)
        expect(chips.locator("[data-tag]")).to_contain_text(labels[PARENT])
        sidebar.get_by_text("Upload a scan").click()
        scan_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Scan (")
        expect(scan_uploader).to_be_visible(timeout=60_000)
        scan_uploader.locator('input[type="file"]').set_input_files(str(scan))
        caption = re.compile(r"my_scan.nii.gz: \(\d+, \d+, \d+\) voxels")
        expect(sidebar.get_by_text(caption)).to_be_visible(timeout=120_000)
        mask_uploader = sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Mask (optional")
        mask_uploader.locator('input[type="file"]').set_input_files(str(mask))
        # the server has read the mask (the uploader's file name is the browser's): else Analyse ran without it
        read = re.compile(r"my_mask\.nii\.gz: mask with [\d,]+ foreground voxels")
        expect(sidebar.get_by_text(read)).to_be_visible(timeout=120_000)
        sidebar.get_by_role("button", name="Analyse").click()
        expect(page.get_by_text(re.compile(r"· 1 checkpoint\(s\)"))).to_be_visible(timeout=600_000)
        expect(sidebar.get_by_role("button", name="Analyse")).to_be_enabled(timeout=600_000)

        phase("upload and analysis")
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
        _readme_shot(page, "debias.png")

        phase("surgery")
        page.get_by_text("Distributions", exact=True).click()
        picker = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Show checkpoints")
        tags = picker.locator("[data-tag]")
        expect(tags).to_have_count(n + 1, timeout=60_000)
        expect(tags.nth(0)).to_contain_text(labels[PARENT])
        expect(tags.nth(1)).to_contain_text("surgery-symmetric")  # right after its parent
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        expect(chart).to_contain_text("imagenet, seed 0 → surgery-symmetric", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "app_debias_distributions.png"), full_page=False)
    phase("distributions")
