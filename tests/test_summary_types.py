"""The typed summary (:mod:`explorer.stats.summary`): known answers from a tiny masses array, None for a split
that was not computed, and ``ModelResult.stats`` / ``Analysis.model_stats`` agreeing with ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from explorer.analysis import analyze
from explorer.spec import RunSpec
from explorer.stats.scan import model_summary, split_summary
from explorer.stats.summary import Estimate, ModelSummary
from tests.test_analyze_cli import inputs  # noqa: F401  (the 10-slice crop and its small checkpoints: a fixture)

OFFSETS = (-1, 0, 1)
# every used slice has shares (0.6, 0.2, 0.2): AI = (0.6 − 0.2) / (0.6 + 0.2) = 0.5, mass-weighted (3 − 1) / 4
MASSES = np.array([[3.0, 1.0, 1.0]] * 6 + [[np.nan] * 3])


def _entry(reversed_masses: np.ndarray | None) -> dict:
    """A model's block as analyze builds it, less what the checkpoint and the mask add."""
    return {
        "strategy": "random",
        "checkpoint_sha256": "abc",
        "dice": 0.75,
        **model_summary(MASSES, OFFSETS),
        **split_summary(MASSES, reversed_masses, OFFSETS),
    }


def _check_estimate(estimate: Estimate | None, block: dict) -> None:
    assert estimate is not None
    assert estimate.mean == block["mean"] and list(estimate.ci95) == block["ci95"]
    assert (estimate.p, estimate.p_min, estimate.mass_weighted) == (block["p"], block["p_min"], block["mass_weighted"])


def test_model_summary_fields_are_the_blocks_values_with_known_answers() -> None:
    # reversed windows mapped back to offsets: the reversal swaps −1 and +1, so AI(Rx) in channel coordinates is
    # the same 0.5: all of it is channel asymmetry, none anatomy
    entry = _entry(MASSES[:, ::-1].copy())
    s = ModelSummary.from_entry("m", entry)
    assert (s.name, s.strategy, s.checkpoint_sha256, s.dice, s.raw) == ("m", "random", "abc", 0.75, entry)
    assert (s.n_slices, s.n_skipped) == (6, 1) and s.block_length == entry["bootstrap"]["block_length"]
    assert s.asymmetry_index.mean == pytest.approx(0.5) and s.asymmetry_index.mass_weighted == pytest.approx(0.5)
    assert s.asymmetry_index.ci95 == pytest.approx((0.5, 0.5))
    _check_estimate(s.asymmetry_index, entry["asymmetry_index"])
    _check_estimate(s.channel_asymmetry, entry["channel_asymmetry"])
    _check_estimate(s.anatomy_asymmetry, entry["anatomy_asymmetry"])
    assert s.channel_asymmetry.mean == pytest.approx(0.5) and s.anatomy_asymmetry.mean == pytest.approx(0.0)
    assert s.mean_share == pytest.approx({-1: 0.6, 0: 0.2, 1: 0.2})
    assert s.mean_share == {int(k): v for k, v in entry["mean_share"].items()}
    assert s.mean_share_ci95 == {int(k): tuple(v) for k, v in entry["mean_share_ci95"].items()}
    assert s.zflip_dice is None  # not in this block


def test_a_split_not_computed_is_none_and_the_json_form_reads_the_same() -> None:
    entry = _entry(None)
    s = ModelSummary.from_entry("m", entry)
    assert s.channel_asymmetry is None and s.anatomy_asymmetry is None
    assert Estimate.from_block(None) is None
    assert Estimate.from_block({"mean": 0.1, "ci95": [0.0, 0.2]}) == Estimate(0.1, 0.0, 0.2)
    # read back from summary.json (string offset keys, lists) the typed view is the same
    assert ModelSummary.from_entry("m", json.loads(json.dumps(entry))) == s
    with pytest.raises(KeyError):
        ModelSummary.from_entry("m", {k: v for k, v in entry.items() if k != "asymmetry_index"})


def test_model_result_stats_is_its_summary_json_block(inputs: dict, tmp_path: Path) -> None:  # noqa: F811
    analysis = analyze(inputs["volume"], inputs["checkpoints"][:1], RunSpec(), mask=inputs["mask"], cache=False)
    (name, result), (_, typed) = next(iter(analysis.models.items())), next(iter(analysis.model_stats.items()))
    written = json.loads(json.dumps(analysis.summary["models"][name]))  # as summary.json holds it
    assert typed == result.stats == ModelSummary.from_entry(name, written)
    assert typed.raw is analysis.summary["models"][name]
    assert typed.strategy == result.strategy and typed.checkpoint_sha256 == result.checkpoint_sha256
    assert typed.n_slices + typed.n_skipped == len(result.masses) and typed.dice is not None
    assert typed.channel_asymmetry is not None and typed.zflip_dice is not None
