"""Simulate a small cohort of T1 "subjects" from nilearn's bundled MNI152 2009 template (no download).

Run: ``python sample_data/cohort/make_cohort.py`` (seeded and deterministic: the same numpy/scipy/nibabel give
byte-identical files). Every subject is ONE template seen through a different random transform, so they
differ in pose, size, local shape, shading and noise, not in anatomy. They exist to exercise cohort code
paths and statistics (volume- and subject-level units), not to stand in for real subjects.

Per subject ``i`` (``rng = numpy.random.default_rng(BASE_SEED + i)``), a subject-space world point ``y`` (mm)
is mapped to the template point ``x = R·S·(y - c) + c + t + d(y)`` and the 1 mm template is sampled there:

- ``R``: rotation about x, y, z by angles drawn uniformly in ±``MAX_ROTATION_DEG`` (8°);
- ``S``: per-axis scaling uniform in 1 ± ``MAX_SCALING`` (6 %); ``c`` the template's head centre;
- ``t``: translation uniform in ±``MAX_TRANSLATION_MM`` (6 mm) per axis;
- ``d``: a smooth deformation: per component, white noise on the 2 mm grid, Gaussian-smoothed
  (σ = ``DEFORM_SIGMA_MM``) and scaled to a maximum of ``DEFORM_MAX_MM`` (3 mm);
- intensities: trilinear samples × a multiplicative bias field ``exp(b)``, ``b`` smoothed noise scaled to
  ±``BIAS_LOG_AMPLITUDE`` (about ±15 %), × a global gain uniform in [800, 1200], then Rician noise of
  σ = ``NOISE_FRACTION`` × gain (magnitude of the signal plus complex Gaussian noise);
- the grey-matter mask is sampled with the same map (trilinear, then ≥ 0.5), so it follows the anatomy.

The output grid is the template's 2 mm grid (RAS, 99 × 117 × 95), cropped to the head as in
``sample_data/make_sample.py`` (voxels of the noise-free signal above 5 % of its maximum plus a 2-voxel
margin), so subjects differ
in shape too. Intensities are stored as int16 (no scale factor), masks as uint8. ``manifest.csv`` lists
``subject, volume, mask, split`` (paths relative to this folder) with a fixed subject-level split.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import datasets
from scipy import ndimage

HERE = Path(__file__).resolve().parent
BASE_SEED = 20240613
N_SUBJECTS = 10
TEST_SUBJECTS = frozenset({3, 6, 8, 10})  # fixed subject-level split: 6 train, 4 test
MAX_ROTATION_DEG = 8.0
MAX_SCALING = 0.06
MAX_TRANSLATION_MM = 6.0
DEFORM_SIGMA_MM = 16.0
DEFORM_MAX_MM = 3.0
BIAS_SIGMA_MM = 40.0
BIAS_LOG_AMPLITUDE = 0.15
NOISE_FRACTION = 0.02
MARGIN = 2
MASK_FRACTION_RANGE = (0.05, 0.40)  # grey matter over the cropped box: sanity bounds asserted per subject


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float, peak: float) -> np.ndarray:
    """White noise smoothed by a Gaussian and scaled so that its largest magnitude is ``peak``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="reflect")
    return field * (peak / np.abs(field).max())


def simulate(index: int, t1: nib.Nifti1Image, gm: nib.Nifti1Image, grid_affine: np.ndarray,
             grid_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One subject on the 2 mm grid (uncropped): int16 intensities, uint8 mask, the noise-free signal (for
    cropping) and the drawn parameters."""
    rng = np.random.default_rng(BASE_SEED + index)
    angles = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3)
    scales = 1.0 + rng.uniform(-MAX_SCALING, MAX_SCALING, 3)
    shift = rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, 3)
    gain = float(rng.uniform(800.0, 1200.0))
    spacing = float(abs(grid_affine[0, 0]))

    template = np.asanyarray(t1.dataobj).astype(np.float32)
    head_vox = np.argwhere(template > 0.05 * template.max())
    centre = nib.affines.apply_affine(t1.affine, head_vox.mean(0))

    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in grid_shape), indexing="ij"), -1).reshape(-1, 3)
    world = nib.affines.apply_affine(grid_affine, ijk)
    linear = _rotation(angles) @ np.diag(scales)
    moved = (world - centre) @ linear.T + centre + shift
    deform = np.stack([_smooth_field(rng, grid_shape, DEFORM_SIGMA_MM / spacing, DEFORM_MAX_MM).ravel()
                       for _ in range(3)], -1)
    source_vox = nib.affines.apply_affine(np.linalg.inv(t1.affine), moved + deform).T

    intensity = ndimage.map_coordinates(template, source_vox, order=1, mode="constant", cval=0.0)
    gm_prob = ndimage.map_coordinates(np.asanyarray(gm.dataobj).astype(np.float32), source_vox, order=1,
                                      mode="constant", cval=0.0)
    bias = np.exp(_smooth_field(rng, grid_shape, BIAS_SIGMA_MM / spacing, BIAS_LOG_AMPLITUDE)).ravel()
    signal = intensity / template.max() * bias * gain
    sigma = NOISE_FRACTION * gain
    noisy = np.hypot(signal + rng.normal(0.0, sigma, signal.shape), rng.normal(0.0, sigma, signal.shape))
    volume = np.clip(np.rint(noisy), 0, np.iinfo(np.int16).max).astype(np.int16).reshape(grid_shape)
    mask = (gm_prob >= 0.5).astype(np.uint8).reshape(grid_shape)
    params = {"seed": BASE_SEED + index, "rotation_deg_xyz": angles.round(3).tolist(),
              "scaling_xyz": scales.round(4).tolist(), "translation_mm_xyz": shift.round(3).tolist(),
              "gain": round(gain, 2), "noise_sigma": round(sigma, 2)}
    return volume, mask, signal.reshape(grid_shape), params


def crop_to_head(volume: np.ndarray, mask: np.ndarray, signal: np.ndarray, affine: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop to voxels above 5 % of the maximum plus ``MARGIN`` voxels, as ``make_sample.py`` does; the box is
    taken from the noise-free ``signal`` because Rician background noise crosses 5 % all over the grid."""
    head = np.argwhere(signal > 0.05 * signal.max())
    lo = np.maximum(head.min(0) - MARGIN, 0)
    hi = np.minimum(head.max(0) + MARGIN + 1, volume.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    cropped = affine.copy()
    cropped[:3, 3] = nib.affines.apply_affine(affine, lo)
    return volume[box], mask[box], cropped


def save(array: np.ndarray, affine: np.ndarray, path: Path, descrip: str) -> None:
    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.header["descrip"] = descrip.encode()[:79]
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)  # 1 = scanner: a simulated subject is no longer in MNI space
    img.set_sform(affine, code=1)
    nib.save(img, path)  # nibabel's gzip writer stores no timestamp, so output is byte-reproducible


def main() -> None:
    t1 = datasets.load_mni152_template(resolution=1)
    gm = datasets.load_mni152_gm_mask(resolution=1)
    grid = datasets.load_mni152_template(resolution=2)
    rows, info, volumes = [], {}, []
    for i in range(1, N_SUBJECTS + 1):
        subject = f"sub-{i:02d}"
        volume, mask, signal, params = simulate(i, t1, gm, grid.affine, grid.shape)
        volume, mask, affine = crop_to_head(volume, mask, signal, grid.affine)
        fraction = float(mask.mean())
        if not MASK_FRACTION_RANGE[0] <= fraction <= MASK_FRACTION_RANGE[1]:
            raise RuntimeError(f"{subject}: grey-matter fraction {fraction:.3f} outside {MASK_FRACTION_RANGE}")
        vol_path, mask_path = HERE / f"{subject}_T1w.nii.gz", HERE / f"{subject}_gm_mask.nii.gz"
        save(volume, affine, vol_path, f"SIMULATED from MNI152 2009a sym T1, seed {params['seed']}")
        save(mask, affine, mask_path, f"SIMULATED grey-matter mask, seed {params['seed']}")
        split = "test" if i in TEST_SUBJECTS else "train"
        rows.append({"subject": subject, "volume": vol_path.name, "mask": mask_path.name, "split": split})
        info[subject] = {**params, "split": split, "shape": list(volume.shape), "gm_fraction": round(fraction, 4),
                         "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (vol_path, mask_path)}}
        volumes.append(volume)
    for a in range(len(volumes)):
        for b in range(a + 1, len(volumes)):
            same_shape = volumes[a].shape == volumes[b].shape
            if same_shape and np.abs(volumes[a].astype(float) - volumes[b]).mean() < 0.01 * volumes[a].max():
                raise RuntimeError(f"subjects {a + 1} and {b + 1} are nearly identical")
    with open(HERE / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["subject", "volume", "mask", "split"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
