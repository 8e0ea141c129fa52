"""Benchmark of the first chart in a real browser (method: docs/performance.md, "First chart").
A script, not a test: it prints one table.

Starts a server on a free port with an empty cache (``EXPLORER_CACHE_DIR`` in a new temporary folder), either
``explorer app`` (imports at start, sample × zoo warmed in the background) or plain ``streamlit run``, waits
until ``--wait`` seconds after the server's start (its health check answered), then opens the page in Debian's
Chromium (1500 × 1000) and times from ``page.goto`` to the first plotly chart drawn; then again in a new page
(results in the cache).

Usage: ``.venv/bin/python bench/bench_first_chart.py [--server app|streamlit|floor] [--wait 20]`` (``floor``: a
page with one small chart and nothing else, what any first chart costs on this machine).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_chart_s(browser, url: str) -> float:
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    start = time.perf_counter()
    page.goto(url)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(state="visible", timeout=600_000)
    seconds = time.perf_counter() - start
    page.close()
    return seconds


FLOOR_PAGE = """import plotly.graph_objects as go
import streamlit as st

st.title("Do 2D+ networks look at one neighbour more than the other?")
st.plotly_chart(go.Figure(go.Box(y=[1, 2, 3, 4])))
"""


def _floor_page() -> str:
    path = Path(tempfile.mkdtemp(prefix="explorer-bench-floor-")) / "floor.py"
    path.write_text(FLOOR_PAGE)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        choices=["app", "streamlit", "floor"],
        default="app",
        help="floor: a Streamlit page with a title and one small plotly chart, the least a first chart costs here",
    )
    parser.add_argument("--wait", type=float, default=20.0, help="seconds between the server's start and the visit")
    args = parser.parse_args()
    load = os.getloadavg()
    port = _port()
    env = {**os.environ, "EXPLORER_CACHE_DIR": tempfile.mkdtemp(prefix="explorer-bench-chart-"), "HF_HUB_OFFLINE": "1"}
    command = (
        [sys.executable, "-m", "explorer.cli", "app", "--port", str(port)]
        if args.server == "app"
        else [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            _floor_page() if args.server == "floor" else "explorer/app/main.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]
    )
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        healthy = time.perf_counter() - started
        time.sleep(max(0.0, args.wait - healthy))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            empty = _first_chart_s(browser, url)
            warm = _first_chart_s(browser, url)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"server: {args.server}, health check after {healthy:.1f} s, page opened {max(args.wait, healthy):.0f} s "
        f"after the server's start; load average at start {load[0]:.1f}, at the end {os.getloadavg()[0]:.1f} "
        f"({os.cpu_count()} CPUs)"
    )
    print(f"{'first chart after page.goto':44s} {'s':>6s}")
    print(f"{'first visit, empty cache at server start':44s} {empty:6.1f}")
    print(f"{'second visit, new page (results cached)':44s} {warm:6.1f}")


if __name__ == "__main__":
    main()
