"""The torchvision shim: smp, timm and torchvision import on the pinned CPU torch; the shim is idempotent."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from explorer import _compat

#: One fresh interpreter answers both fresh-interpreter tests, in this order: ``import explorer`` alone, then
#: timm (which imports torchvision), then the rest of the stack. Each import of torch costs seconds of CPU.
FRESH = (
    "import sys, explorer; print('torch' in sys.modules);"
    "import timm; from explorer import _compat; print(_compat._LIBRARY is not None or _compat._has_nms());"
    "import torch, torchvision, segmentation_models_pytorch as smp;"
    "print(torch.__version__, torchvision.__version__, hasattr(torch.ops.torchvision, 'nms'))"
)


@pytest.fixture(scope="module")
def fresh() -> list[str]:
    """What :data:`FRESH` printed, word by word."""
    return subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, check=True).stdout.split()


def test_smp_imports_in_a_fresh_interpreter_with_pinned_torch(fresh: list[str]):
    version, vision, nms = fresh[2:]
    assert version.startswith("2.13.0") and vision.startswith("0.28.0") and nms == "True"


def test_shim_is_idempotent():
    before = torch.ops.torchvision.nms
    _compat.ensure_torchvision_ops()
    _compat.ensure_torchvision_ops()
    assert torch.ops.torchvision.nms is not None and before is not None


def test_import_explorer_does_not_load_torch_and_the_shim_waits_for_torchvision(fresh: list[str]):
    """``import explorer`` installs a hook, not torch (a replayed CLI run never loads torch); importing timm, which
    imports torchvision, triggers the shim first."""
    assert fresh[:2] == ["False", "True"]
