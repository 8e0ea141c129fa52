"""The torchvision shim: smp, timm and torchvision import on the pinned CPU torch; the shim is idempotent."""

from __future__ import annotations

import subprocess
import sys

import torch

from explorer import _compat


def test_smp_imports_in_a_fresh_interpreter_with_pinned_torch():
    code = (
        "import explorer, torch, torchvision, timm, segmentation_models_pytorch as smp;"
        "print(torch.__version__, torchvision.__version__, hasattr(torch.ops.torchvision, 'nms'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith("2.13.0") and out[1].startswith("0.28.0") and out[2] == "True"


def test_shim_is_idempotent():
    before = torch.ops.torchvision.nms
    _compat.ensure_torchvision_ops()
    _compat.ensure_torchvision_ops()
    assert torch.ops.torchvision.nms is not None and before is not None


def test_import_explorer_does_not_load_torch_and_the_shim_waits_for_torchvision():
    """``import explorer`` installs a hook, not torch (a replayed CLI run never loads torch); importing timm, which
    imports torchvision, triggers the shim first."""
    code = (
        "import sys, explorer; print('torch' in sys.modules);"
        "import timm; from explorer import _compat; print(_compat._LIBRARY is not None or _compat._has_nms())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
