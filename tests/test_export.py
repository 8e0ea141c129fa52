"""Export: file bytes per format, atomic figure folders, CSV tables, the report zip, the no-browser path."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from test_figures import make_shares, make_summary

from explorer import __version__
from explorer.errors import InputError
from explorer.io.files import write_atomic
from explorer.reporting import export
from explorer.reporting.export import (
    FORMATS,
    StaticExportUnavailable,
    figure_bytes,
    report_zip,
    static_export_status,
    table_csv,
    versions,
    write_figures,
    write_tables,
)
from explorer.reporting.figures import analysis_figures, comparison_table, stats_table


def _figure(title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=["−1", "0", "+1"], y=[0.32, 0.45, 0.23]))
    return fig.update_layout(title_text=title, width=400, height=300)


@pytest.fixture()
def no_browser(monkeypatch):
    """Static export as on a machine without Chromium; the real status is probed again afterwards."""
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    yield static_export_status(refresh=True)
    monkeypatch.undo()
    static_export_status(refresh=True)


def test_static_export_works_here():
    available, message = static_export_status()
    assert available, message  # `make test` installs Debian's chromium, which kaleido drives
    assert "chromium" in message.lower() or "chrome" in message.lower()


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<svg"), ("pdf", b"%PDF-")])
def test_static_formats_have_their_magic(fmt, magic):
    data = figure_bytes(_figure("shares"), fmt, scale=2)
    assert data.startswith(magic)
    if fmt == "png":  # IHDR width and height: the layout size times the scale
        assert struct.unpack(">II", data[16:24]) == (800, 600)


def test_html_is_self_contained_and_interactive():
    html = figure_bytes(_figure("a title to find"), "html").decode()
    assert "a title to find" in html and "Plotly.newPlot" in html
    assert 'src="https://cdn.plot.ly' not in html and len(html) > 1_000_000  # plotly.js is inlined


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(InputError, match="unknown figure format 'jpeg'; expected one of: html, pdf, png, svg"):
        figure_bytes(_figure("x"), "jpeg")
    with pytest.raises(InputError, match="unknown figure format 'eps'"):
        write_figures({"x": _figure("x")}, "unused", formats=("html", "eps"))


def test_concurrent_exports_get_their_own_figures():
    titles = [f"session {i}" for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        svgs = list(pool.map(lambda t: figure_bytes(_figure(t), "svg").decode(), titles))
    assert all(t in svg and sum(o in svg for o in titles) == 1 for t, svg in zip(titles, svgs, strict=False))


def test_write_figures_writes_every_format_atomically(tmp_path):
    figs = analysis_figures(make_shares(), make_summary())
    paths = write_figures(figs, tmp_path / "figures")
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert names == sorted(["plotly.min.js"] + [f"{n}.{f}" for n in figs for f in FORMATS])
    assert sorted(p.name for p in paths) == names  # everything written is reported, no temp files left
    page = (tmp_path / "figures" / "share_along_axis.html").read_text()
    assert 'src="plotly.min.js"' in page and "Attribution share along the slicing axis" in page
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in paths)


def test_without_a_browser_html_still_works_and_the_message_says_how_to_enable(no_browser, tmp_path):
    available, message = no_browser
    assert not available
    assert "apt-get install chromium" in message and "BROWSER_PATH" in message
    paths = write_figures({"fig": _figure("x")}, tmp_path)
    assert sorted(p.name for p in paths) == ["fig.html", "plotly.min.js"]
    with pytest.raises(StaticExportUnavailable, match="apt-get install chromium"):
        figure_bytes(_figure("x"), "png")


def test_a_browser_that_fails_to_start_reports_unavailable(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/bin/false")  # executable, exits at once: found, but cannot render
    monkeypatch.setattr(export, "_server", None)  # as in a fresh process
    available, message = static_export_status(refresh=True)
    monkeypatch.undo()
    assert static_export_status(refresh=True)[0]
    assert not available and "/bin/false failed" in message and "apt-get install chromium" in message


def test_without_kaleido_the_message_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kaleido", None)  # makes `import kaleido` raise ImportError
    available, message = static_export_status(refresh=True)
    monkeypatch.undo()
    assert static_export_status(refresh=True)[0]
    assert not available and "pip install 'kaleido>=1'" in message


def test_write_atomic_leaves_nothing_behind_on_failure(tmp_path):
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "out.bin", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    write_atomic(tmp_path / "out.bin", b"first")
    write_atomic(tmp_path / "out.bin", b"second")
    assert (tmp_path / "out.bin").read_bytes() == b"second" and len(list(tmp_path.iterdir())) == 1


def test_table_csv_round_trips():
    table = stats_table(make_summary())
    text = table_csv(table).decode()
    back = pd.read_csv(io.StringIO(text))
    pd.testing.assert_frame_equal(back, table, check_dtype=False, rtol=1e-6)  # 6 significant digits
    assert "2.5e-09" in text and "0.333333," in text and "0.3333333" not in text


def test_write_tables(tmp_path):
    summary = make_summary()
    paths = write_tables(summary, tmp_path / "tables")
    assert [p.name for p in paths] == ["statistics.csv", "comparisons.csv"]
    pd.testing.assert_frame_equal(pd.read_csv(paths[1]), comparison_table(summary), check_dtype=False)


def test_versions_name_the_packages_results_depend_on():
    found = versions()
    assert found["torch"] == torch.__version__ and found["explorer"] == __version__
    assert {"segmentation-models-pytorch", "captum", "plotly", "kaleido", "python"} <= set(found)
    assert all(v and v != "not installed" for k, v in found.items() if k != "streamlit")


def test_report_zip_holds_the_writer_outputs_and_parameters():
    summary, shares = make_summary(), make_shares()

    def write_outputs(out: Path) -> None:  # stands in for the engine's outputs.write_outputs
        shares.to_csv(out / "shares.csv", index=False)
        (out / "summary.json").write_text(json.dumps(summary))
        write_figures(analysis_figures(shares, summary), out / "figures", formats=("html",))
        write_tables(summary, out)

    data = report_zip(write_outputs, parameters={"method": "saliency", "target": "predicted"})
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert {
        "report/shares.csv",
        "report/summary.json",
        "report/parameters.json",
        "report/figures/share_distribution_violin.html",
        "report/figures/plotly.min.js",
        "report/statistics.csv",
        "report/comparisons.csv",
    } <= set(names)
    record = json.loads(archive.read("report/parameters.json"))
    assert record["parameters"] == {"method": "saliency", "target": "predicted"}
    assert record["inputs"] == summary["inputs"]
    assert record["versions"]["torch"] == torch.__version__
    assert record["static_export"]["available"] is True
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(archive.read("report/shares.csv"))), shares)


def test_paper_preset_sizes_vector_output_to_the_column_and_png_to_300_dpi(tmp_path):
    fig = analysis_figures(make_shares(), make_summary())["share_distribution_violin"]
    svg = figure_bytes(fig, "svg", preset="paper-single").decode()
    assert 'viewBox="0 0 333 ' in svg  # 88 mm in CSS pixels: 1 mm on paper is 1 mm in the SVG
    assert "font-size: 12px" in svg and "font-size: 14px" not in svg  # 9 pt body text at the final size
    png = figure_bytes(fig, "png", preset="paper-double")
    assert struct.unpack(">I", png[16:20])[0] == round(round(180 * 96 / 25.4) * 300 / 96)  # 180 mm at 300 dpi
    assert fig.layout.width is None  # the caller's figure is left as it was
    with pytest.raises(InputError, match="unknown figure preset 'poster'.*paper-double, paper-single, screen"):
        figure_bytes(fig, "pdf", preset="poster")


def test_paper_pdf_embeds_its_fonts(tmp_path):
    pdffonts = shutil.which("pdffonts")
    if pdffonts is None:
        pytest.skip("pdffonts (poppler-utils) is not installed")
    path = tmp_path / "fig.pdf"
    path.write_bytes(figure_bytes(_figure("embedded"), "pdf", preset="paper-single"))
    rows = subprocess.run([pdffonts, str(path)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    assert rows and all(row.split()[-5] == "yes" for row in rows)  # the "emb" column of every font


def test_static_renders_are_cached_by_content(tmp_path, monkeypatch):
    """A figure rendered once is served from the render cache: no browser, same bytes; a damaged file is redone."""
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path / "cache"))
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout=dict(title="render cache"))
    calls = []
    monkeypatch.setattr(export, "_render", lambda f, fmt, scale: calls.append(fmt) or b"<svg>" + fmt.encode())
    monkeypatch.setattr(export, "static_export_status", lambda **_: (True, "test renderer"))
    first = figure_bytes(fig, "svg")
    assert figure_bytes(fig, "svg") == first and calls == ["svg"]  # the second call never rendered
    (stored,) = (tmp_path / "cache" / "renders").rglob("*.svg")
    stored.write_bytes(b"tampered")
    assert figure_bytes(fig, "svg") == first and calls == ["svg", "svg"]  # checksum mismatch: rendered again
    fig.update_layout(title="another figure")
    figure_bytes(fig, "svg")
    assert len(calls) == 3
