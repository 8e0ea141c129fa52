"""Regenerate the sample volume and its tissue mask from nilearn's bundled MNI152 2009 template.

Run: ``.venv/bin/python sample_data/make_sample.py`` (or ``make sample``). Needs only nilearn's own files
(no download): the ICBM 2009a symmetric T1 template and the grey-matter mask nilearn derives from it, both
at 2 mm. The volume is cropped to the head (voxels above 5% of the maximum, plus a 2-voxel margin) and
stored as int16 with a scale factor; the mask is the grey-matter mask on the same grid.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import datasets

HERE = Path(__file__).resolve().parent
VOLUME = HERE / "mni152_t1_2mm.nii.gz"
MASK = HERE / "mni152_gm_mask_2mm.nii.gz"
MARGIN = 2


def main() -> None:
    t1 = datasets.load_mni152_template(resolution=2)
    gm = datasets.load_mni152_gm_mask(resolution=2)
    data = np.asanyarray(t1.dataobj).astype(np.float32)
    head = np.argwhere(data > 0.05 * data.max())
    lo = np.maximum(head.min(0) - MARGIN, 0)
    hi = np.minimum(head.max(0) + MARGIN + 1, data.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=False))
    affine = t1.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(t1.affine, lo)

    vol = nib.Nifti1Image(data[box], affine)
    vol.header.set_data_dtype(np.int16)  # nibabel picks scl_slope so 0..1 maps onto the int16 range
    vol.header["descrip"] = b"MNI152 2009a sym T1, 2mm, cropped (explorer sample)"
    mask = nib.Nifti1Image((np.asanyarray(gm.dataobj)[box] > 0).astype(np.uint8), affine)
    mask.header["descrip"] = b"MNI152 2009a sym grey-matter mask, 2mm (explorer sample)"
    for img, path in ((vol, VOLUME), (mask, MASK)):
        img.header.set_xyzt_units("mm")
        img.set_qform(affine, code=4)  # 4 = MNI152 space
        img.set_sform(affine, code=4)
        nib.save(img, path)
    info = {
        p.name: {"shape": list(nib.load(p).shape), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in (VOLUME, MASK)
    }
    info["crop_box_in_template"] = [[int(a), int(b)] for a, b in zip(lo, hi, strict=False)]
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
