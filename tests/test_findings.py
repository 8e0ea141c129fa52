"""docs/findings.md's tables are recomputed from the committed per-volume × per-model tables (models/findings.py)."""

from __future__ import annotations

import importlib.util

import pytest

from explorer.config import SAMPLE_DIR

ROOT = SAMPLE_DIR.parent
_spec = importlib.util.spec_from_file_location("findings", ROOT / "models" / "findings.py")
findings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(findings)


@pytest.mark.parametrize("stem", [s for s in findings.TABLES if (findings.FINDINGS / f"{s}.csv").exists()])
def test_every_committed_table_recomputes_to_its_committed_summary(stem):
    rows, summary = findings.recompute(stem)  # raises when an interval or a Holm p differs from the summary
    assert summary["endpoint"] == "channel_asymmetry" and rows["error"].isna().all()
    lines = findings.study_tables(stem, rows, summary)
    assert sum(line.startswith("| `") for line in lines) >= 2 * len(summary["groups"]) + len(summary["comparisons"])


def test_the_recomputed_zoo_v2_interval_is_the_published_one():
    _, summary = findings.recompute("cohort_occlusion")
    random = summary["groups"]["random"]["channel_asymmetry"]  # docs/findings.md: −0.180 [−0.273, −0.087]
    assert (round(random["mean"], 3), [round(v, 3) for v in random["ci95"]]) == (-0.180, [-0.273, -0.087])
    assert summary["family"]["size"] == 25
