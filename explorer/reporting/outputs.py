"""Write an :class:`explorer.analysis.Analysis` to a directory (the files README.md lists under "Outputs").

Layout: ``shares.csv`` (model, slice, offset, share, mass), ``summary.json``, ``statistics.csv`` (one row
per model) and ``comparisons.csv`` (one row per model pair) as shown in the app, the diagnostics
(:mod:`explorer.diagnostics`: ``diagnostics.csv`` one row per model × slice with background attention and,
when run, Grad-CAM and sanity columns; ``logit_histograms.csv``; ``sanity.json`` when the sanity check ran),
``figures/`` (HTML, plus
PNG/SVG/PDF where static export works) and, when asked, ``maps/<model>_attribution.nii.gz``: a 4D NIfTI
``(X, Y, Z, C)`` in the input file's voxel order and affine, volume ``c`` = attribution of offset
``offsets[c]``, ``maps/<model>_label.nii.gz`` (the prediction as a uint8 label map on the same grid),
``maps/<model>_probability.nii.gz`` (the sigmoid of the logits), and after Grad-CAM (``--cam``)
``maps/<model>_gradcam.nii.gz`` (volume 0: standard target, 1: ``|logit|``). Map names are the model names
where those are safe file names, else the sanitised name plus a hash of the original (``a b`` → ``a_b-<hash>``),
so two models never share a file.

The destination's rules (checked before any work, written into a new folder and swapped into place, the
user's own files carried over) are :mod:`explorer.outdir`'s, shared with ``cohort`` and a replayed run.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..analysis import Analysis
from ..diagnostics import diagnostics_tables
from ..io.files import write_atomic
from ..outdir import check_out_dir, staging, swap_into
from .export import FORMATS, table_csv, write_figures, write_tables
from .figures import analysis_figures
from .figures.diagnostics import diagnostics_figures

__all__ = ["write_outputs", "map_stems", "write_attribution_map", "write_label_map", "write_probability_map"]


def write_outputs(
    analysis: Analysis,
    out_dir: str | Path,
    *,
    figures: bool = True,
    figure_preset: str = "screen",
    figure_formats: Sequence[str] = FORMATS,
) -> dict[str, Path]:
    """Write the analysis' files into ``out_dir``, replacing a previous output folder there in one rename.

    Args:
        analysis: the result of :func:`explorer.analysis.analyze`.
        out_dir: destination directory (checked with :func:`check_out_dir`); the attribution, label and
            probability NIfTIs of every model go to ``maps/`` when the analysis kept its maps
            (``RunSpec.keep_maps``, ``--save-maps``).
        figures: write ``figures/``.
        figure_preset: a key of :data:`explorer.reporting.export.PRESETS` (``screen``, ``paper-single``,
            ``paper-double``).
        figure_formats: which of :data:`explorer.reporting.export.FORMATS` to write (HTML is always written).

    Returns:
        ``{"shares": path, "summary": path, "diagnostics": path, "logit_histograms": path, ["sanity": path],
        "figures": dir, "map:<model>": path, ...}`` of what was written.

    Raises:
        InputError: a destination refused by :func:`check_out_dir`.
    """
    out = check_out_dir(out_dir)
    with staging(out) as tmp:
        written = {"shares": tmp / "shares.csv", "summary": tmp / "summary.json"}
        write_atomic(written["shares"], table_csv(analysis.shares, float_format=None))
        written["summary"].write_text(json.dumps(_json_safe(analysis.summary), indent=2, allow_nan=False))
        written["statistics"], written["comparisons"] = write_tables(analysis.summary, tmp)
        written.update(_write_diagnostics(analysis, tmp))
        if figures:
            written["figures"] = _write_figures(
                analysis, tmp / "figures", figure_preset, ("html", *(f for f in figure_formats if f != "html"))
            )
        if analysis.spec.keep_maps:
            (tmp / "maps").mkdir()
            stems = map_stems(list(analysis.models))
            for name, result in analysis.models.items():
                written[f"map:{name}"] = write_attribution_map(
                    analysis, name, tmp / "maps" / f"{stems[name]}_attribution.nii.gz"
                )
                written[f"label:{name}"] = write_label_map(analysis, name, tmp / "maps" / f"{stems[name]}_label.nii.gz")
                written[f"probability:{name}"] = write_probability_map(
                    analysis, name, tmp / "maps" / f"{stems[name]}_probability.nii.gz"
                )
                if result.diagnostics.cam_maps is not None:  # Grad-CAM ran (--cam): standard and |logit| target
                    written[f"cam:{name}"] = _write_volume(
                        analysis,
                        result.diagnostics.cam_maps,
                        tmp / "maps" / f"{stems[name]}_gradcam.nii.gz",
                        "Grad-CAM: volume 0 standard target, 1 |logit|",
                    )
        swap_into(tmp, out)
        return {key: out / path.relative_to(tmp) for key, path in written.items()}


def map_stems(names: list[str]) -> dict[str, str]:
    """A distinct, safe file stem per model name: the name itself when it is safe, else the sanitised name
    plus the first 8 hex digits of the name's SHA-256 (``a b`` and ``a_b`` no longer collide)."""
    stems = {}
    for name in names:
        safe = _safe(name)
        stems[name] = safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return stems


def _write_figures(analysis: Analysis, directory: Path, preset: str, formats: Sequence[str]) -> Path:
    tables = diagnostics_tables(analysis.models)
    figs = {**analysis_figures(analysis.shares, analysis.summary), **diagnostics_figures(tables, analysis.summary)}
    directory.mkdir()
    write_figures(figs, directory, preset=preset, formats=formats)
    return directory


def _write_diagnostics(analysis: Analysis, directory: Path) -> dict[str, Path]:
    tables = diagnostics_tables(analysis.models)
    written = {"diagnostics": directory / "diagnostics.csv", "logit_histograms": directory / "logit_histograms.csv"}
    write_atomic(written["diagnostics"], table_csv(tables["slices"], float_format=None))
    write_atomic(written["logit_histograms"], table_csv(tables["logit_histograms"], float_format=None))
    if tables["sanity"]:
        written["sanity"] = directory / "sanity.json"
        written["sanity"].write_text(json.dumps(_json_safe(tables["sanity"]), indent=2, allow_nan=False))
    return written


def write_attribution_map(analysis: Analysis, name: str, path: Path) -> Path:
    """Write model ``name``'s per-channel attribution as a 4D NIfTI ``(x, y, z, channel)`` on the input's grid."""
    return _write_volume(
        analysis,
        analysis.models[name].maps,
        path,
        f"{analysis.spec.method}/{analysis.spec.target} offsets {list(analysis.models[name].offsets)}",
    )


def write_label_map(analysis: Analysis, name: str, path: Path) -> Path:
    """Write model ``name``'s prediction as a uint8 NIfTI label map (1 = foreground) on the input file's grid.

    Args:
        analysis: the analysis holding the model's ``prediction`` ``(S, H, W)``.
        name: the model's name.
        path: the ``.nii.gz`` to write.

    Returns:
        ``path``; the map has the input file's voxel order and affine, so it overlays in Slicer, ITK-SNAP, NiiVue.
    """
    canonical = analysis.volume.unstack(np.asarray(analysis.models[name].prediction, dtype=np.uint8), analysis.axis)
    data, affine = analysis.volume.to_source_order(canonical)
    image = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.uint8), affine)
    image.header["descrip"] = f"prediction of {name}: 1 = foreground"[:79]
    image.header.set_intent("label")
    nib.save(image, path)
    return path


def write_probability_map(analysis: Analysis, name: str, path: Path) -> Path:
    """Write model ``name``'s foreground probability (sigmoid of its logits) as a float32 NIfTI on the input
    file's grid; thresholding it at 0.5 gives the label map of :func:`write_label_map`."""
    logits = np.asarray(analysis.models[name].logits, dtype=np.float32)
    probability = 1.0 / (1.0 + np.exp(-logits))
    canonical = analysis.volume.unstack(probability, analysis.axis)
    data, affine = analysis.volume.to_source_order(canonical)
    image = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), affine)
    image.header["descrip"] = f"foreground probability of {name}"[:79]
    nib.save(image, path)
    return path


def _write_volume(analysis: Analysis, stack: np.ndarray, path: Path, description: str) -> Path:
    """A ``(S, K, H, W)`` stack as a 4D NIfTI ``(X, Y, Z, K)`` on the input file's grid and affine."""
    canonical = analysis.volume.unstack(np.moveaxis(np.asarray(stack, dtype=np.float32), 1, -1), analysis.axis)
    data, affine = analysis.volume.to_source_order(canonical)
    image = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), affine)
    image.header["descrip"] = description[:79]
    nib.save(image, path)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "model"


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
