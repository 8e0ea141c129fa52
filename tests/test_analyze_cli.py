"""`explorer analyze` and `analyze()`: the files README.md lists under "Outputs", their schema, caching, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from explorer.analysis import analyze, is_cached
from explorer.cache.store import ResultCache
from explorer.cli import main
from explorer.models.build import build_model
from explorer.models.checkpoints import CheckpointMeta, load_checkpoint, save_checkpoint
from explorer.reporting.outputs import write_outputs
from explorer.spec import RunSpec
from explorer.study import Study

DECODER = [32, 16, 16, 8, 8]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, sample_volume_path: Path, sample_mask_path: Path) -> dict:
    """A 10-slice crop of the sample volume and its mask, and two small random-init checkpoints."""
    root = tmp_path_factory.mktemp("inputs")
    crop = (slice(14, 62), slice(20, 76), slice(35, 45))
    for name, path in (("volume", sample_volume_path), ("mask", sample_mask_path)):
        nib.save(nib.load(path).slicer[crop], root / f"{name}.nii.gz")
    for seed, strategy in ((0, "random"), (1, "imagenet-uniform")):
        torch.manual_seed(seed)
        meta = CheckpointMeta(
            arch="Unet",
            encoder="mobilenet_v2",
            classes=1,
            offsets=(-1, 0, 1),
            strategy=strategy,
            arch_kwargs={"decoder_channels": DECODER},
        )
        save_checkpoint(build_model(decoder_channels=DECODER), meta, root / f"{strategy}.safetensors")
    return {
        "volume": root / "volume.nii.gz",
        "mask": root / "mask.nii.gz",
        "checkpoints": [root / "random.safetensors", root / "imagenet-uniform.safetensors"],
    }


def cli(inputs: dict, out: Path, *extra: str) -> list[str]:
    argv = ["analyze", str(inputs["volume"]), "--out", str(out), "--mask", str(inputs["mask"])]
    for c in inputs["checkpoints"]:
        argv += ["--checkpoint", str(c)]
    return argv + list(extra)


@pytest.mark.slow
def test_cli_writes_the_contract_files_and_a_second_run_hits_the_cache(
    inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main(cli(inputs, out, "--save-maps")) == 0
    assert "0 of 2 model results from the cache" in capsys.readouterr().out

    shares = pd.read_csv(out / "shares.csv")
    assert list(shares.columns[:4]) == ["model", "slice", "offset", "share"]
    assert set(shares["model"]) == {"random", "imagenet-uniform"} and set(shares["offset"]) == {-1, 0, 1}
    np.testing.assert_allclose(shares.groupby(["model", "slice"])["share"].sum(), 1.0, atol=1e-9)
    wide = shares.pivot_table(index=["model", "slice"], columns="offset", values="share")
    per_slice = shares.groupby(["model", "slice"])[["channel_asymmetry", "anatomy_asymmetry"]].first()
    split = per_slice.sum(axis=1, min_count=2)
    ai = (wide[-1] - wide[1]) / (wide[-1] + wide[1])
    assert split.notna().mean() > 0.9  # the reversed windows were attributed on (almost) every slice
    np.testing.assert_allclose(split.dropna(), ai[split.notna()], atol=1e-9)  # AI = channel + anatomy, per slice

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"models", "inputs", "comparisons"}
    for entry in summary["models"].values():
        assert (
            set(entry)
            >= {"strategy", "mean_share", "asymmetry_index", "dice", "first_conv_share", "zflip_dice", "test"}
            and "wilcoxon_p" not in entry
        )
        assert 0 < entry["asymmetry_index"]["p_min"] <= entry["asymmetry_index"]["p"] <= 1
        assert entry["test"]["block_length"] == entry["bootstrap"]["block_length"]
        assert set(entry["mean_share"]) == set(entry["first_conv_share"]) == {"-1", "0", "1"}
        for key in ("asymmetry_index", "channel_asymmetry", "anatomy_asymmetry"):
            lo, hi = entry[key]["ci95"]
            assert lo <= entry[key]["mean"] <= hi
        assert 0.0 <= entry["dice"] <= 1.0 and 0.0 <= entry["zflip_dice"] <= 1.0
    assert summary["models"]["imagenet-uniform"]["strategy"] == "imagenet-uniform"
    assert summary["inputs"]["method"] == "occlusion" and summary["inputs"]["target"] == "predicted"
    assert summary["inputs"]["volume"]["sha256"] and summary["inputs"]["mask"]["sha256"]
    assert summary["comparisons"][0]["models"] == ["random", "imagenet-uniform"]
    assert summary["comparisons"][0]["p_holm"] == summary["comparisons"][0]["p"]  # one pair: a family of one

    stats = pd.read_csv(out / "statistics.csv")
    assert len(stats) == 2 and len(pd.read_csv(out / "comparisons.csv")) == 1
    comparison, pair = pd.read_csv(out / "comparisons.csv").iloc[0], summary["comparisons"][0]
    assert comparison["statistic"] == pytest.approx(pair["statistic"], rel=1e-5) and pair["n"] == comparison["n"]
    assert 0 < pair["n"] <= min(summary["models"][m]["n_slices"] for m in pair["models"])
    assert comparison["effect_size"] == pytest.approx(pair["effect_size"], rel=1e-5)
    assert {"p", "p min", "AI mass-weighted", "channel asymmetry mass-weighted"} <= set(stats.columns)

    html = sorted(p.name for p in (out / "figures").glob("*.html"))
    assert {
        "share_distribution_box.html",
        "share_distribution_violin.html",
        "share_along_axis.html",
        "edge_sensitivity.html",
        "first_conv_share.html",
    } <= set(html)

    source = nib.load(inputs["volume"])
    for name in ("random", "imagenet-uniform"):
        img = nib.load(out / "maps" / f"{name}_attribution.nii.gz")
        assert img.shape == (*source.shape, 3)
        np.testing.assert_allclose(img.affine, source.affine)
        mass = np.abs(img.get_fdata()).sum(axis=(0, 1))  # (Z, C) for axial slicing
        rows = shares[shares["model"] == name].pivot(index="slice", columns="offset", values="mass")
        np.testing.assert_allclose(mass[rows.index.to_numpy()], rows.to_numpy(), rtol=2e-2)

    again = tmp_path / "again"
    assert main(cli(inputs, again, "--save-maps")) == 0
    assert "2 of 2 model results from the cache" in capsys.readouterr().out


def test_analysis_says_which_results_the_cache_served(inputs: dict, tmp_path: Path) -> None:
    """The one cache-hit signal: ``Analysis.from_cache`` (the CLI, the cohort and the app read it)."""
    cache = ResultCache(tmp_path / "cache")
    a, b = (load_checkpoint(c) for c in inputs["checkpoints"])
    first = analyze(inputs["volume"], [a], RunSpec(zflip=False), cache=cache)
    both = analyze(inputs["volume"], [a, b], RunSpec(zflip=False), cache=cache)
    assert first.from_cache == [] and not first.models[a.name].from_cache
    assert both.from_cache == [a.name] and both.models[a.name].from_cache and not both.models[b.name].from_cache
    assert analyze(inputs["volume"], [a], RunSpec(zflip=False), cache=False).from_cache == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.nii.gz", "--checkpoint", "x.safetensors"], "missing.nii.gz: no such file"),
        (["VOLUME", "--checkpoint", "nope.safetensors"], "nope.safetensors: no such file"),
        (["VOLUME", "--checkpoint", "CKPT", "--method", "lrp"], "unknown attribution method 'lrp'"),
        (["VOLUME", "--checkpoint", "CKPT", "--target", "mask"], "target 'mask' needs a ground-truth mask"),
        (["VOLUME", "--checkpoint", "CKPT", "--axis", "oblique"], "unknown slicing axis 'oblique'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    argv = [
        "analyze",
        *[
            str(inputs["volume"]) if a == "VOLUME" else str(inputs["checkpoints"][0]) if a == "CKPT" else a
            for a in args
        ],
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()


def test_models_are_cached_separately_and_maps_follow_keep_maps(inputs: dict, tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    a, b = (load_checkpoint(c) for c in inputs["checkpoints"])
    first = analyze(inputs["volume"], [a], RunSpec(zflip=False), cache=cache)
    assert cache.stats.misses == 2  # looked for an entry without and one with maps
    both = analyze(inputs["volume"], [a, b], RunSpec(zflip=False), cache=cache)
    assert cache.stats.memory_hits == 1, "the first model is not recomputed when a second is added"
    np.testing.assert_array_equal(both.models[a.name].masses, first.models[a.name].masses)
    assert both.models[a.name].maps is None
    with_maps = analyze(inputs["volume"], [a], RunSpec(keep_maps=True, zflip=False), cache=cache)
    assert with_maps.models[a.name].maps.shape == (10, 3, 48, 56)
    np.testing.assert_allclose(with_maps.models[a.name].masses, first.models[a.name].masses)
    written = write_outputs(both, tmp_path / "o", figures=False)  # no maps kept: none written
    assert not (tmp_path / "o" / "maps").exists() and not any(k.startswith("map:") for k in written)


def test_progress_reaches_one_and_shares_table_matches_masses(inputs: dict) -> None:
    seen: list[float] = []
    result = analyze(
        inputs["volume"],
        inputs["checkpoints"][:1],
        RunSpec(method="occlusion", target="abs"),
        cache=False,
        progress=lambda f, m: seen.append(f),
    )
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[0] < 1
    model = next(iter(result.models.values()))
    flipped = model.summary["zflip_asymmetry_index"]["mean"]
    assert flipped is not None and flipped != pytest.approx(model.summary["asymmetry_index"]["mean"], abs=1e-3)
    assert len(result.shares) == 3 * int(np.isfinite(model.masses).all(axis=1).sum())
    assert result.summary["inputs"]["params"] == {"baseline": 0.0, "replace": "mean", "blur_sigma": 2.0}


def test_a_model_that_predicts_nothing_gets_one_clear_line(
    inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Target 'predicted' with no predicted foreground anywhere: exit 2, a line naming the volume and the fix."""
    checkpoint = load_checkpoint(inputs["checkpoints"][0])
    model = checkpoint.build_model()
    with torch.no_grad():
        model.segmentation_head[0].bias.fill_(-1e4)  # every logit far below 0
    silent = save_checkpoint(model, checkpoint.meta, tmp_path / "silent.safetensors")
    out = tmp_path / "out"
    argv = ["analyze", str(inputs["volume"]), "--checkpoint", str(silent), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "volume.nii.gz" in err[0] and "--target all" in err[0] and "silent" in err[0]
    assert not out.exists()


def test_save_maps_with_cam_writes_gradcam_volumes_on_the_input_grid(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # The decoder's last block: the bottleneck (the default layer) of these one-epoch toy models can be all ReLU'd.
    # HTML figures only: the maps are the subject here (the contract test above renders the static formats).
    assert main(cli(inputs, out, "--save-maps", "--cam-layer", "decoder.blocks.4", "--formats", "none")) == 0
    source = nib.load(inputs["volume"])
    for name in ("random", "imagenet-uniform"):
        img = nib.load(out / "maps" / f"{name}_gradcam.nii.gz")
        assert img.shape == (*source.shape, 2)
        np.testing.assert_allclose(img.affine, source.affine)
        data = np.asanyarray(img.dataobj)
        assert np.isfinite(data).all() and data.min() >= 0 and data.max() > 0  # Grad-CAM is ReLU'd


def test_cli_target_all_shares_do_not_depend_on_how_the_slice_is_padded(
    sample_volume_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`explorer analyze --target all` on the sample with the shipped imagenet checkpoint, its 77×94 axial slices
    padded to a multiple of 32 (a 96×96 canvas, the default) or of 64 (128×128): the per-slice shares agree up to
    the network's own border effects (measured 0.005). This bounds the shares' dependence on the canvas; it does not
    by itself catch a target that sums padded logits (their gradients reach the slice weakly: such a target moved
    the shares by about as much), which `test_no_target_includes_padded_pixels` checks on the selection itself.
    Saliency, because gradient shares are canvas-robust: occlusion measures the network's function, and a 128×128
    canvas (more padding than the 96×96 the network was trained on) changes the function itself
    (docs/definitions.md, "Padding"; bench/canvas_sensitivity.py)."""
    from dataclasses import replace

    import explorer.analysis as analysis_module
    from explorer.attribution.windows import padding_for
    from explorer.models.checkpoints import list_zoo

    assert padding_for(77, 94, 32) != padding_for(77, 94, 64)
    imagenet = next(p for p in list_zoo() if p.name == "unet-mobilenet_v2-imagenet-s0.safetensors")
    attribute_stack = analysis_module.attribute_stack
    tables = []
    for multiple in (32, 64):
        monkeypatch.setattr(
            analysis_module,
            "attribute_stack",
            lambda m, d, s, run, *a, _m=multiple: attribute_stack(m, d, s, replace(run, multiple=_m), *a),
        )
        monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path / f"cache{multiple}"))  # no answer from the other run
        out = tmp_path / f"out{multiple}"
        assert (
            main(
                [
                    "analyze",
                    str(sample_volume_path),
                    "--checkpoint",
                    str(imagenet),
                    "--target",
                    "all",
                    "--method",
                    "saliency",
                    "--no-zflip",
                    "--formats",
                    "none",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        summary = json.loads((out / "summary.json").read_text())
        assert summary["inputs"]["target"] == "all" and summary["inputs"]["volume"]["shape"][:2] == [77, 94]
        tables.append(pd.read_csv(out / "shares.csv").sort_values(["slice", "offset"])["share"].to_numpy())
    assert len(tables[0]) == len(tables[1]) > 200
    np.testing.assert_allclose(tables[0], tables[1], atol=0.01)


def test_is_cached_says_what_analyze_would_read_back(inputs: dict, tmp_path: Path) -> None:
    """The app's quick look at the cache (nothing read) agrees with analyze for the spec as the sidebar builds it
    (axis unset, precision ``auto``): no before, yes after for exactly the analysed checkpoints, also in a new
    process and for a run that keeps no maps; no for other parameters."""
    study = Study.load(inputs["volume"], inputs["mask"])
    ckpts = [load_checkpoint(p) for p in inputs["checkpoints"]]
    spec = RunSpec(method="saliency", zflip=False, keep_maps=True)
    cache = ResultCache(tmp_path / "cache")
    assert not is_cached(study, ckpts[:1], spec, cache=cache)
    analyze(study, ckpts[:1], spec, cache=cache)
    fresh = ResultCache(tmp_path / "cache")  # a new process: only the disk
    assert is_cached(study, ckpts[:1], spec, cache=fresh)
    assert is_cached(study, ckpts[:1], replace(spec, keep_maps=False), cache=fresh)  # maps serve a run without
    assert not is_cached(study, ckpts, spec, cache=fresh)
    assert not is_cached(study, ckpts[:1], replace(spec, target="all"), cache=fresh)
    assert analyze(study, ckpts[:1], spec, cache=fresh).from_cache == [ckpts[0].name]
