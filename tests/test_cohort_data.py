"""The simulated cohort in sample_data/cohort/ loads through the same readers as any user's scan."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from explorer.config import SAMPLE_DIR
from explorer.io.volume import load_mask, load_volume

COHORT = SAMPLE_DIR / "cohort"
ROWS = list(csv.DictReader((COHORT / "manifest.csv").read_text().splitlines()))


def test_manifest_lists_distinct_subjects_and_both_splits() -> None:
    assert len(ROWS) >= 8
    assert set(ROWS[0]) >= {"subject", "volume", "mask", "split"}
    assert len({r["subject"] for r in ROWS}) == len(ROWS)
    assert {r["split"] for r in ROWS} == {"train", "test"}


@pytest.mark.parametrize("row", ROWS, ids=[r["subject"] for r in ROWS])
def test_every_row_loads_with_a_matching_non_empty_mask(row: dict) -> None:
    volume = load_volume(COHORT / row["volume"])
    mask = load_mask(COHORT / row["mask"], volume)
    assert mask.data.shape == volume.shape
    assert 0.05 < mask.data.mean() < 0.4
    # grey matter is brighter than the background it sits in: the mask follows the warped anatomy
    assert volume.data[mask.data].mean() > 3 * volume.data[~mask.data].mean()
    assert np.allclose(volume.spacing, 2.0)


def test_subjects_differ() -> None:
    volumes = [load_volume(COHORT / r["volume"]) for r in ROWS]
    assert len({v.sha256 for v in volumes}) == len(ROWS)
    assert len({v.shape for v in volumes}) > 1
