"""Benchmark of the app's interaction speed (method: docs/performance.md).
A script, not a test: it prints one table.

Drives the real app (``explorer/app/main.py``) with Streamlit's ``AppTest`` in this process:
- first visit (the sample volume and the whole shipped zoo analysed with nothing clicked, cache empty): the time
  to the first chart (the first checkpoint's results, shown while the others run) and to the whole analysis;
- first visit again in a new session, answered from the cache (the disk cache of the first run);
- moving the slice slider: the slice-viewer fragment's own server time (it records it) and the wall time of
  the rerun as AppTest sees it (AppTest reruns the whole script; a browser reruns only the fragment);
- toggling which checkpoints are shown: the wall time of the rerun (nothing is recomputed).
Medians over ``--repeats`` interactions.

Usage: ``.venv/bin/python bench/bench_app.py [--repeats 7]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["EXPLORER_CACHE_DIR"] = tempfile.mkdtemp(prefix="explorer-bench-app-")

from streamlit.testing.v1 import AppTest  # noqa: E402

import explorer  # noqa: E402,F401  (before torchvision/timm/smp)
from explorer.config import REPO_ROOT  # noqa: E402

APP = str(REPO_ROOT / "explorer" / "app" / "main.py")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    at = AppTest.from_file(APP, default_timeout=900)
    start = time.perf_counter()
    at.run()
    while not at.get("plotly_chart") and "job" in at.session_state:  # the page polls its job every second
        time.sleep(0.1)
        at.run()
    first_chart = (time.perf_counter() - start) * 1000
    while "job" in at.session_state:
        time.sleep(0.1)
        at.run()
    first = (time.perf_counter() - start) * 1000
    assert not at.exception, at.exception
    again = AppTest.from_file(APP, default_timeout=900)
    cached = timed(again.run)

    shown = f"shown_models-{at.session_state['analysis_id']}"  # one picker per analysis
    models = at.multiselect(key=shown).value
    toggle_ms = []  # on the default view, the distributions
    for i in range(args.repeats):
        subset = models if i % 2 else models[:2]
        toggle_ms.append(timed(lambda subset=subset: at.multiselect(key=shown).set_value(subset).run()))
    at.radio(key="view").set_value("Slice viewer").run()
    n = int(at.slider(key="viewer_slice").max) + 1
    fragment_ms, slider_ms, viewer_toggle_ms = [], [], []
    for i in range(args.repeats):
        slider_ms.append(timed(lambda i=i: at.slider(key="viewer_slice").set_value((7 * i + 3) % n).run()))
        fragment_ms.append(at.session_state["viewer_ms"])
        subset = models if i % 2 else models[:2]
        viewer_toggle_ms.append(timed(lambda subset=subset: at.multiselect(key=shown).set_value(subset).run()))
        assert not at.exception, at.exception

    rows = [
        ("first visit, empty cache: the first chart", first_chart),
        ("first visit, empty cache: every checkpoint analysed", first),
        ("first visit, new session, results from the cache", cached),
        ("slice slider: viewer fragment server time (median)", statistics.median(fragment_ms)),
        ("slice slider: whole-script rerun in AppTest (median)", statistics.median(slider_ms)),
        ("toggle shown checkpoints, distributions view: rerun (median)", statistics.median(toggle_ms)),
        ("toggle shown checkpoints, slice viewer: rerun (median)", statistics.median(viewer_toggle_ms)),
    ]
    print(f"{'interaction':62s} {'ms':>9s}")
    for label, ms in rows:
        print(f"{label:62s} {ms:9.0f}")
    print(f"({len(models)} checkpoints, {n} slices, {args.repeats} interactions each)")


if __name__ == "__main__":
    main()
