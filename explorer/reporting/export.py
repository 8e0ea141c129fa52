"""Figures and tables to files: HTML always; PNG, SVG and PDF through kaleido + a Chromium browser when
this machine has them; CSV tables; and the report bundle (a zip) built from the engine's output directory.

Static export is probed once per process (:func:`static_export_status`): the browser is looked up first
(cheap), then one tiny figure is rendered by a one-shot browser under a time limit, so a broken browser
reports "unavailable" quickly instead of hanging. After that one persistent kaleido browser, driven from a
thread of its own, serves every later export, one at a time, in a tab that is not reloaded between renders.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import json
import os
import platform
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from .. import __version__
from ..cache import integrity
from ..cache.disk import keep_budget, touch_file
from ..errors import unknown_name
from ..io.files import sha256_bytes, write_atomic
from .figures import comparison_table, stats_table
from .figures.style import CHAR_EM, LINE_EM, fit_titles

__all__ = [
    "FORMATS",
    "STATIC_FORMATS",
    "PLOTLY_JS",
    "PROBE_TIMEOUT_S",
    "DEFAULT_SIZE",
    "PACKAGES",
    "HOW_TO_ENABLE",
    "CSS_PX_PER_MM",
    "Preset",
    "PRESETS",
    "StaticExportUnavailable",
    "static_export_status",
    "static_export_known",
    "apply_preset",
    "figure_bytes",
    "write_figures",
    "FORMULA_STARTS",
    "table_csv",
    "neutralise_formulas",
    "write_tables",
    "versions",
    "report_zip",
]


FORMATS: tuple[str, ...] = ("png", "svg", "pdf", "html")
STATIC_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
PLOTLY_JS = "plotly.min.js"  # the script HTML pages written by write_figures load from their own folder
PROBE_TIMEOUT_S = 30.0
DEFAULT_SIZE = (900, 550)  # layout pixels when a figure sets no width/height
PACKAGES = (
    "torch",
    "torchvision",
    "segmentation-models-pytorch",
    "captum",
    "timm",
    "numpy",
    "scipy",
    "pandas",
    "nibabel",
    "plotly",
    "kaleido",
    "streamlit",
)
HOW_TO_ENABLE = (
    "install Debian's chromium ('apt-get install chromium', or 'make install' as root) or point "
    "BROWSER_PATH at a Chrome/Chromium binary; HTML and CSV exports work without it"
)

CSS_PX_PER_MM = 96 / 25.4  # kaleido sizes figures in CSS pixels (1/96 inch); PDF and SVG keep that size


@dataclass(frozen=True)
class Preset:
    """How a figure is sized for a medium.

    Attributes:
        name: the preset's name (``--figure-preset``).
        width_mm: final printed width (``None``: the figure's own size, for screens).
        font_pt: body text size at the final size (axis titles, legend); tick labels get one point less.
        dpi: resolution of PNG output at the final size.
    """

    name: str
    width_mm: float | None
    font_pt: float = 9.0
    dpi: int = 300


#: Journal column widths (88 mm single, 180 mm double column are common to Nature, Elsevier, IEEE, Springer).
PRESETS: dict[str, Preset] = {
    p.name: p for p in (Preset("screen", None), Preset("paper-single", 88.0), Preset("paper-double", 180.0))
}

_T = TypeVar("_T")
_lock = threading.Lock()  # one export at a time: the persistent browser renders one figure at a time
_status: tuple[bool, str] | None = None


class _Renderer:
    """One kaleido browser kept open in a daemon thread's event loop, serving blocking render calls.

    kaleido's own sync server (``kaleido.start_sync_server``) reloads its tab after every figure: the page
    parses and runs plotly.js again, about 0.3 s of CPU, most of a figure's cost (a render itself takes
    0.02-0.2 s). Plotly.toImage draws each figure into a fresh node of its own and purges it, so the page
    keeps nothing from one figure that changes the next; here the tab is reloaded only after a failed render
    (a timed-out or broken figure may leave the page in any state). The browser closes at interpreter exit.
    """

    def __init__(self, **options: object) -> None:
        import kaleido

        class KeptTabKaleido(kaleido.Kaleido):
            async def _return_kaleido_tab(self, tab: object) -> None:  # kaleido's reloads the tab first
                ready = getattr(self, "tabs_ready", None)
                if ready is None:  # a kaleido without this queue: its own return, reload and all
                    return await super()._return_kaleido_tab(tab)
                await ready.put(tab)

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="explorer-kaleido", daemon=True).start()
        self._browser = KeptTabKaleido(n=1, **options)
        self._call(self._browser.open())
        atexit.register(self.close)

    def _call(self, coroutine: Coroutine[object, object, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def render(self, figure: dict, opts: dict) -> bytes:
        """``kaleido.calc_fig`` of ``figure`` in the kept tab; the tab is reloaded if the render failed."""
        try:
            return self._call(self._browser.calc_fig(figure, opts=opts))
        except BaseException:
            try:
                self._call(self._reload())
            except Exception:  # noqa: BLE001  (a browser that is gone cannot reload: the render's error says why)
                pass
            raise

    async def _reload(self) -> None:
        tab = await self._browser.tabs_ready.get()
        try:
            await tab.reload()
        finally:
            await self._browser.tabs_ready.put(tab)

    def close(self) -> None:
        """Close the browser and stop the thread's loop (idempotent)."""
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._browser.close(), self._loop).result(PROBE_TIMEOUT_S)
            except Exception:  # noqa: BLE001  (closing at exit: a browser already gone is fine)
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)


_server: _Renderer | None = None  # the persistent browser, started after a one-shot export worked


class StaticExportUnavailable(RuntimeError):
    """PNG/SVG/PDF export is not possible here; the message says how to enable it."""


def static_export_status(*, refresh: bool = False) -> tuple[bool, str]:
    """Whether PNG/SVG/PDF export works on this machine (probed once, then cached).

    Args:
        refresh: probe again (e.g. after installing a browser).

    Returns:
        ``(True, "static export available (browser: PATH)")`` or ``(False, "<why>; <how to enable it>")``.
    """
    global _status
    with _lock:
        if _status is None or refresh:
            _status = _probe()
        return _status


def static_export_known() -> tuple[bool, str] | None:
    """What :func:`static_export_status` found, without waiting: None while nothing has been probed yet or the
    probe (a browser start, seconds) is running, so a page can draw without blocking on it."""
    return _status


def _probe() -> tuple[bool, str]:
    try:
        import kaleido
        from choreographer.browsers.chromium import Chromium
        from kaleido import PageGenerator
    except ImportError:
        return False, "kaleido is not installed: pip install 'kaleido>=1' (and a Chromium browser); " + HOW_TO_ENABLE
    browser = Chromium.find_browser(skip_local=False)
    if not browser or not os.access(browser, os.X_OK):
        return False, f"no Chrome/Chromium browser found for kaleido: {HOW_TO_ENABLE}"
    outcome: list[object] = []

    def render() -> None:
        global _server
        try:
            probe = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
            if _server is None:  # a one-shot browser fails fast; a broken persistent one would hang
                asyncio.run(
                    kaleido.calc_fig(
                        probe.to_plotly_json(),
                        opts=dict(format="png", width=50, height=50),
                        kopts=dict(page_generator=PageGenerator(mathjax=False)),
                    )
                )
                _server = _Renderer(page_generator=PageGenerator(mathjax=False))
            outcome.append(_render(probe, "png", 1))
        except Exception as exc:  # noqa: BLE001  (any failure means "unavailable", with its reason)
            outcome.append(exc)

    worker = threading.Thread(target=render, daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT_S)
    if not outcome:
        return False, f"a test export with {browser} did not finish in {PROBE_TIMEOUT_S:.0f} s; {HOW_TO_ENABLE}"
    if isinstance(outcome[0], Exception):
        reason = str(outcome[0].args[0] if outcome[0].args else outcome[0])
        return False, f"a test export with {browser} failed ({reason}); {HOW_TO_ENABLE}"
    return True, f"static export available (browser: {browser})"


def _render(fig: go.Figure, fmt: str, scale: float) -> bytes:
    if _server is None:  # figure_bytes asks static_export_status first, which starts it
        raise StaticExportUnavailable("static export was not probed: call static_export_status() first")
    width = fig.layout.width or DEFAULT_SIZE[0]
    height = fig.layout.height or DEFAULT_SIZE[1]
    return _server.render(fig.to_plotly_json(), dict(format=fmt, width=width, height=height, scale=scale))


def apply_preset(fig: go.Figure, preset: str) -> tuple[go.Figure, float]:
    """A copy of ``fig`` laid out for ``preset``, and the PNG scale that gives the preset's dpi.

    A paper preset sets the layout width to the column width in CSS pixels (PDF/SVG are drawn at that size,
    so a 9 pt font in the layout is 9 pt on paper), the fonts to ``font_pt``, rewraps the title, and scales
    the height with the width (plus room for text, which does not shrink).

    Raises:
        InputError: an unknown preset.
    """
    if preset not in PRESETS:
        raise unknown_name("figure preset", preset, PRESETS)
    spec = PRESETS[preset]
    fig = go.Figure(fig)
    if spec.width_mm is None:
        return fig, 2.0
    width = round(spec.width_mm * CSS_PX_PER_MM)
    old_width, old_height = fig.layout.width or DEFAULT_SIZE[0], fig.layout.height or DEFAULT_SIZE[1]
    body, small = spec.font_pt * 96 / 72, (spec.font_pt - 1) * 96 / 72
    for trace in fig.data:  # a legend entry with statistics wider than the column: the statistics on a 2nd line
        if trace.name and " · " in trace.name and 50 + CHAR_EM * small * len(trace.name) > width - 10:
            trace.name = trace.name.replace(" · ", "<br>", 1)
    longest_y_title = max((len(a.title.text or "") for a in fig.select_yaxes()), default=0)
    plot_px = max((old_height - 170) * max(width / old_width, 0.65), 200, CHAR_EM * body * longest_y_title + 30)
    fig.update_layout(
        width=width,
        height=round(plot_px + 110 + _legend_px(fig, width, small)),
        font=dict(size=body),
        legend=dict(font=dict(size=small)),
        margin=dict(l=50, r=15),
    )
    fig.update_xaxes(tickfont=dict(size=small), title_font=dict(size=body))
    fig.update_yaxes(tickfont=dict(size=small), title_font=dict(size=body))
    fig.update_annotations(font_size=small)
    fit_titles(fig, width)
    return fig, spec.dpi / 96


def _legend_px(fig: go.Figure, width: float, font_px: float) -> float:
    """Height the horizontal legend needs at ``width``: entries packed into rows as plotly packs them (estimated
    from the label lengths, conservatively; a ``<br>`` starts a second line of an entry)."""
    rows: list[int] = []  # lines of each legend row
    used = width
    for trace in fig.data:
        if trace.showlegend is False or not trace.name or (trace.showlegend is None and len(fig.data) == 1):
            continue
        lines = trace.name.split("<br>")
        entry = 50 + CHAR_EM * font_px * max(map(len, lines))
        if used + entry > width - 10:
            rows.append(len(lines))
            used = entry
        else:
            rows[-1], used = max(rows[-1], len(lines)), used + entry
    return sum(LINE_EM * font_px * n + 12 for n in rows)


def figure_bytes(fig: go.Figure, fmt: str, *, scale: float | None = None, preset: str = "screen") -> bytes:
    """One figure as file contents.

    Args:
        fig: the figure.
        fmt: ``png``, ``svg``, ``pdf`` or ``html`` (a self-contained page that works offline).
        scale: pixel scale of raster output; default 2 for ``screen`` (1800 px wide for a 900 px figure),
            the preset's dpi / 96 for a paper preset (88 mm at 300 dpi → 1039 px).
        preset: a name in :data:`PRESETS`: ``screen`` (the figure's own size), ``paper-single`` (88 mm) or
            ``paper-double`` (180 mm), 9 pt text at the final size; PDF embeds its fonts.

    Raises:
        InputError: an unknown format or preset.
        StaticExportUnavailable: a static format on a machine without a working browser (says how to fix).
    """
    fig, preset_scale = apply_preset(fig, preset)
    if fmt == "html":
        return pio.to_html(fig, include_plotlyjs=True, full_html=True).encode("utf-8")
    if fmt not in STATIC_FORMATS:
        raise unknown_name("figure format", fmt, FORMATS)
    if scale is None:  # vector output of a paper preset stays at the column width; PNG gets the preset's dpi
        scale = preset_scale if fmt == "png" or preset == "screen" else 1.0
    key = _render_key(fig, fmt, scale)
    if (cached := _cached_render(key, fmt)) is not None:
        return cached  # the same figure was rendered before: no browser needed
    available, message = static_export_status()
    if not available:
        raise StaticExportUnavailable(message)
    with _lock:
        data = _render(fig, fmt, scale)
    _store_render(key, fmt, data)
    return data


def _render_key(fig: go.Figure, fmt: str, scale: float) -> str:
    """Content hash of a static render's inputs: the figure's JSON, format, scale and the renderers' versions."""
    versions = [metadata.version(p) for p in ("plotly", "kaleido")]
    return sha256_bytes(json.dumps([fig.to_plotly_json(), fmt, scale, versions], sort_keys=True, default=str).encode())


def _render_dir() -> Path:
    from ..config import cache_dir

    return cache_dir() / "renders"


def _cached_render(key: str, fmt: str) -> bytes | None:
    """A stored render of ``key`` whose bytes still match the signature in its name, else None (then dropped).

    Static renders are cached by content (kaleido starts a browser and takes about 0.3 s a figure): a re-run
    with the same results is then no export job. Kept beside the result cache, in ``renders/``.
    """
    for path in _render_dir().glob(f"{key[:2]}/{key}-*.{fmt}"):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if integrity.verify(_render_message(key, data), path.stem.rsplit("-", 1)[1]):
            touch_file(path)
            return data
        path.unlink(missing_ok=True)
    return None


def _store_render(key: str, fmt: str, data: bytes) -> None:
    folder = _render_dir() / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / f"{key}-{integrity.sign(_render_message(key, data))}.{fmt}", data)
        keep_budget()  # a render takes ~0.3 s; the budget walk after it costs little beside that
    except (OSError, ValueError):  # an unusable cache location, key or budget only costs speed
        pass


def _render_message(key: str, data: bytes) -> bytes:
    """What a render's signature covers: its key and its bytes (a render cannot be moved to another key)."""
    return key.encode() + b"\0" + data


def write_figures(
    figs: Mapping[str, go.Figure], directory: str | Path, *, formats: Iterable[str] = FORMATS, preset: str = "screen"
) -> list[Path]:
    """Write every figure as ``NAME.FORMAT`` into ``directory``, each file atomically (temp name, rename).

    HTML is always written; the pages share one ``plotly.min.js`` written beside them (works offline, keeps
    each page small). PNG/SVG/PDF are written only when :func:`static_export_status` says they work (check
    it to tell the user why they are missing).

    Args:
        figs: ``{file-safe name: figure}``, e.g. from :func:`explorer.reporting.figures.analysis_figures`.
        directory: created if missing.
        formats: a subset of :data:`FORMATS`.
        preset: a name in :data:`PRESETS` (static formats; HTML stays interactive at the screen size).

    Returns:
        The paths written.

    Raises:
        InputError: an unknown format or preset.
    """
    if preset not in PRESETS:
        raise unknown_name("figure preset", preset, PRESETS)
    formats = tuple(formats)
    for fmt in formats:
        if fmt not in FORMATS:
            raise unknown_name("figure format", fmt, FORMATS)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if "html" in formats and figs:
        written.append(write_atomic(directory / PLOTLY_JS, get_plotlyjs().encode("utf-8")))
    static = [f for f in formats if f != "html"]
    for name, fig in figs.items():
        if "html" in formats:
            html = pio.to_html(fig, include_plotlyjs="directory", full_html=True).encode("utf-8")
            written.append(write_atomic(directory / f"{name}.html", html))
        for fmt in list(static):
            try:
                data = figure_bytes(fig, fmt, preset=preset)
            except StaticExportUnavailable:  # no browser: HTML only (static_export_status says why)
                static.clear()
                break
            written.append(write_atomic(directory / f"{name}.{fmt}", data))
    return written


#: A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def table_csv(table: pd.DataFrame, *, float_format: str | None = "%.6g") -> bytes:
    """A table as UTF-8 CSV bytes (no index column), floats to 6 significant digits (``2.5e-09``, ``0.333333``)
    unless ``float_format`` is None (full precision). Every CSV the package writes goes through here: text
    cells (model, subject, strategy names…) that a spreadsheet would run as a formula are neutralised."""
    return neutralise_formulas(table).to_csv(index=False, float_format=float_format).encode("utf-8")


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells and column names starting with ``= + - @``, tab or CR get a leading
    single quote, as OWASP recommends (``=HYPERLINK(…)`` → ``'=HYPERLINK(…)``), and a carriage return inside
    text becomes a (quoted) newline; numbers, and text that is a number (``-0.3``), are left as they are."""
    out = table.copy()
    out.columns = [_neutral(c) for c in out.columns]
    for column in out.select_dtypes(include=["object", "string", "category"]).columns:
        out[column] = out[column].astype(object).map(_neutral)
    return out


def _neutral(cell: object) -> object:
    if not isinstance(cell, str):
        return cell
    if cell.startswith(FORMULA_STARTS):
        try:
            float(cell)  # a number written as text: a spreadsheet reads it as that number, not a formula
        except ValueError:
            cell = "'" + cell
    # Python's csv writer quotes a newline but not a bare carriage return, which would then split the row.
    return cell.replace("\r\n", "\n").replace("\r", "\n")


def write_tables(summary: Mapping, directory: str | Path) -> list[Path]:
    """Write ``statistics.csv`` (one row per model) and ``comparisons.csv`` (one row per model pair).

    Raises:
        InputError: a malformed summary.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_atomic(directory / "statistics.csv", table_csv(stats_table(summary))),
        write_atomic(directory / "comparisons.csv", table_csv(comparison_table(summary))),
    ]


def versions() -> dict[str, str]:
    """Versions of Python, explorer and the packages a result depends on (``not installed`` if absent)."""
    found = {"python": sys.version.split()[0], "platform": platform.platform(), "explorer": __version__}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def report_zip(write_outputs: Callable[[Path], object], *, parameters: Mapping[str, object]) -> bytes:
    """The report bundle: everything ``write_outputs`` writes into a fresh directory, plus ``parameters.json``.

    Args:
        write_outputs: fills the directory it is given (the engine's ``outputs.write_outputs`` bound to an
            analysis: figures, ``shares.csv``, ``summary.json``, tables), so one function writes results.
        parameters: the run's parameters (method, target, axis, checkpoints, ...).

    Returns:
        Zip bytes; every entry lies under ``report/``. ``parameters.json`` holds ``parameters``, the input
        hashes (``inputs`` of ``summary.json`` when written), :func:`versions`, whether static figure export
        was available (and why not) and the UTC creation time.
    """
    with tempfile.TemporaryDirectory(prefix="explorer-report-") as tmp:
        root = Path(tmp) / "report"
        root.mkdir()
        write_outputs(root)
        summary_path = root / "summary.json"
        inputs = json.loads(summary_path.read_text()).get("inputs", {}) if summary_path.is_file() else {}
        available, message = static_export_status()
        record = {
            "parameters": dict(parameters),
            "inputs": inputs,
            "versions": versions(),
            "static_export": {"available": available, "message": message},
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_atomic(root / "parameters.json", json.dumps(record, indent=2, default=str).encode("utf-8"))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                archive.write(path, (Path("report") / path.relative_to(root)).as_posix())
        return buffer.getvalue()
