"""docs/findings.md's tables are recomputed from the committed per-volume × per-model tables (models/findings.py)."""

from __future__ import annotations

import importlib.util

import pytest

from explorer.config import SAMPLE_DIR

ROOT = SAMPLE_DIR.parent
_spec = importlib.util.spec_from_file_location("findings", ROOT / "models" / "findings.py")
findings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(findings)
COMMITTED = [s for s in findings.TABLES if (findings.FINDINGS / f"{s}.csv").exists()]


@pytest.fixture(scope="module")
def recomputed() -> dict:
    """Every committed table's rows and statistics, recomputed (raises when an interval or a Holm p differs
    from the committed summary)."""
    return {stem: findings.recompute(stem) for stem in COMMITTED}


def test_the_tables_in_findings_md_are_the_recomputed_ones(recomputed):
    blocks = {stem: findings.table_block(stem) for stem in findings.TABLES}
    doc = findings.DOC.read_text()
    assert findings.write_blocks(doc, blocks) == doc, "docs/findings.md is stale: run models/findings.py --write"
    for stem, (rows, summary) in recomputed.items():
        assert summary["endpoint"] == "channel_asymmetry" and rows["error"].isna().all()
        lines = findings.study_tables(stem, rows, summary)
        assert sum(line.startswith("| `") for line in lines) >= 2 * len(summary["groups"]) + len(summary["comparisons"])


def test_the_recomputed_zoo_v2_interval_is_the_published_one(recomputed):
    _, summary = recomputed["cohort_occlusion"]
    random = summary["groups"]["random"]["channel_asymmetry"]  # docs/findings.md: −0.180 [−0.273, −0.087]
    assert (round(random["mean"], 3), [round(v, 3) for v in random["ci95"]]) == (-0.180, [-0.273, -0.087])
    assert summary["family"]["size"] == 25


def test_a_missing_block_is_named():
    with pytest.raises(ValueError, match="no block <!-- findings.py: absent -->"):
        findings.write_blocks("text", {"absent": "table"})
