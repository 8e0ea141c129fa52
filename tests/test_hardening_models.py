"""Issue 20, items 4 and 11: what a checkpoint's metadata may hand to a model constructor, and the activation probe.

Item 4: a path named inside a checkpoint (``checkpoint_path`` for a timm encoder) is never opened, through a
``.safetensors`` file, an smp zip, an smp folder, a Hugging Face snapshot or the metadata typed in the app, and the
refusal reads the same whether that path exists or not. Item 11: the probe that sizes a run builds and runs the
architecture on the meta device, and a model whose logits differ from its input in size is refused with one
message, never run. The hostile files themselves are in ``tests/corpus/round3_models.py`` (API, CLI and app); the
FPN whose probe once asked for 17 GB is measured in ``tests/test_corpus.py``, with the corpus's peak memory.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from corpus.round3_models import TIMM
from safetensors.torch import save as st_save

from explorer.attribution.methods import explain_batch
from explorer.config import REPO_ROOT, SAMPLE_DIR
from explorer.errors import InputError
from explorer.models.build import ARCHS, PROBE, RESERVED_ARGS, arch_arguments, build_model, meta_probe
from explorer.models.checkpoints import load_checkpoint
from explorer.spec import RunSpec

SMALL = [16, 16, 8, 8, 8]
META = {
    "arch": "Unet",
    "encoder": TIMM,
    "classes": 1,
    "offsets": [-1, 0, 1],
    "strategy": "random",
    "arch_kwargs": {"decoder_channels": SMALL},
}


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(decoder_channels=SMALL).eval()


@pytest.fixture()
def victims(tmp_path: Path) -> dict[str, Path]:
    """A loadable state dict that timm's ``checkpoint_path`` would open, and a path beside it that is absent."""
    present = tmp_path / "victim" / "weights.pth"
    present.parent.mkdir()
    torch.save({"conv1.weight": torch.zeros(1)}, present)
    return {"present": present, "absent": tmp_path / "victim" / "absent.pth"}


@pytest.fixture()
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path given to ``open`` or ``torch.load`` while the test runs (calls pass through unchanged)."""
    seen: list[str] = []
    real_open, real_load = builtins.open, torch.load

    def spy_open(file, *args, **kwargs):
        seen.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
        return real_open(file, *args, **kwargs)

    def spy_load(f, *args, **kwargs):
        seen.append(os.fspath(f) if isinstance(f, (str, os.PathLike)) else repr(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr(torch, "load", spy_load)
    return seen


def _config(net: torch.nn.Module, folder: Path, **changes) -> Path:
    """An smp ``save_pretrained`` folder whose ``config.json`` names a timm encoder and ``changes``."""
    net.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "encoder_name": TIMM, **changes}))
    return folder


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in ("config.json", "model.safetensors"):
            zf.write(folder / name, f"ckpt/{name}")
    return buffer.getvalue()


def _hub(net: torch.nn.Module, cache: Path, repo: str, **changes) -> str:
    """A snapshot in the layout huggingface_hub writes, found offline through ``HF_HUB_CACHE``."""
    commit = "c0ffee" * 6 + "beef"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    _config(net, root / "snapshots" / commit, **changes)
    return f"hf:{repo}"


def _refusal(source: str, which: str, net: torch.nn.Module, tmp_path: Path, **kwargs) -> str:
    """The error loading a checkpoint whose metadata adds ``kwargs``, from ``source``; the checkpoint's own
    location (which differs between ``which`` runs) replaced by a placeholder."""
    shown, location = "", ""
    try:
        if source == "safetensors":
            meta = {**META, "arch_kwargs": {**META["arch_kwargs"], **kwargs}}
            raw = st_save({k: v.half() for k, v in net.state_dict().items()}, metadata={"explorer": json.dumps(meta)})
            load_checkpoint(raw, name="c.safetensors")
        elif source == "zip":
            load_checkpoint(_zip(_config(net, tmp_path / f"zip-{which}", **kwargs)), name="c.zip")
        elif source == "folder":
            location = str(_config(net, tmp_path / which / "ckpt", **kwargs))
            load_checkpoint(location)
        elif source == "hub":
            location = _hub(net, tmp_path / "hub", f"alice/{which}", **kwargs)
            load_checkpoint(location)
        else:  # a plain state dict whose metadata the app's user types, architecture arguments included
            buffer = io.BytesIO()
            torch.save(net.state_dict(), buffer)
            meta = {**META, "encoder": "mobilenet_v2", "arch_kwargs": {**META["arch_kwargs"], **kwargs}}
            load_checkpoint(buffer.getvalue(), name="c.pt", meta=meta)
    except InputError as exc:
        shown = str(exc)
    assert shown, "the checkpoint was loaded"
    return shown.replace(location, "LOCATION") if location else shown


SOURCES = ["safetensors", "zip", "folder", "hub", "typed in the app"]


@pytest.mark.parametrize("source", SOURCES)
def test_a_path_named_in_a_checkpoint_is_never_opened_and_its_existence_never_shows(
    source: str, net, victims, opened, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    present, absent = (
        _refusal(source, which, net, tmp_path, checkpoint_path=str(path)) for which, path in victims.items()
    )
    assert present == absent
    where = "field 'arch_kwargs'" if source in ("safetensors", "typed in the app") else "config.json"
    assert f"{where} sets 'checkpoint_path', which is not an argument explorer passes to smp Unet" in present
    assert "victim" not in present and "\n" not in present
    assert not [p for p in opened if "victim" in p], "a path named inside the checkpoint was opened"


@pytest.mark.parametrize(
    "key",
    [
        "checkpoint_path",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "weights",
        "encoder_weights",
        "features_only",
        "pretrained",
    ],
)
def test_only_the_architecture_s_own_arguments_reach_smp(key: str) -> None:
    with pytest.raises(
        InputError,
        match=rf"arch_kwargs sets '{key}', which is not an argument explorer passes to "
        r"smp Unet; expected only: activation, aux_params, decoder_attention_type",
    ):
        build_model(encoder=TIMM, device="meta", **{key: "/etc/passwd"})


def test_the_allow_list_is_each_class_s_named_arguments() -> None:
    for arch in ARCHS:
        allowed = arch_arguments(arch)
        assert not allowed & RESERVED_ARGS and "kwargs" not in allowed and "self" not in allowed
        assert "encoder_depth" in allowed and "activation" in allowed, arch
    assert {"upsampling", "decoder_pyramid_channels"} <= arch_arguments("FPN")
    assert "decoder_use_batchnorm" in arch_arguments("Unet")  # a deprecated name older configs hold
    assert "upsampling" not in arch_arguments("Unet")


@pytest.mark.slow
def test_the_cli_prints_one_line_for_a_missing_path_and_timm_s_logger_prints_nothing(victims, net, tmp_path) -> None:
    state = {k: v.half() for k, v in net.state_dict().items()}
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(
        st_save(
            state,
            metadata={
                "explorer": json.dumps(
                    {**META, "arch_kwargs": {**META["arch_kwargs"], "checkpoint_path": str(victims["absent"])}}
                )
            },
        )
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # One fresh interpreter (its imports cost more than the rest): the CLI on the checkpoint, then the line that
    # printed a second one before, from timm's logger, which without a handler falls to Python's last resort.
    argv = [
        "analyze",
        str(SAMPLE_DIR / "mni152_t1_2mm.nii.gz"),
        "--checkpoint",
        str(ckpt),
        "--out",
        str(tmp_path / "out"),
    ]
    script = (
        "import logging, sys\n"
        "from explorer.cli import main\n"
        f"code = main({argv!r})\n"
        "logging.getLogger('timm.models._helpers').error('No checkpoint found at x')\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "sets 'checkpoint_path'" in done.stderr and "No checkpoint found" not in done.stderr
    assert done.stdout == "" and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ item 11: the probe


def test_the_meta_probe_counts_what_a_real_forward_keeps() -> None:
    """Known answer: forward hooks on a real CPU forward of the same architecture."""
    torch.manual_seed(0)
    model = build_model(decoder_channels=SMALL).eval()
    total = [0]

    def count(module, inputs, output) -> None:
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total[0] += output.numel()

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, 3, PROBE, PROBE))
    weights = sum(p.numel() for p in model.parameters()) * 4
    assert meta_probe("Unet", "mobilenet_v2", 3, 1, json.dumps({"decoder_channels": SMALL})) == (
        total[0] / PROBE**2,
        weights,
    )


@pytest.mark.parametrize(("upsampling", "side"), [(8, 2 * PROBE), (256, 64 * PROBE), (4096, 1024 * PROBE)])
def test_an_fpn_whose_logits_outgrow_its_input_is_refused_on_the_meta_device(upsampling: int, side: int) -> None:
    kwargs = json.dumps({"decoder_pyramid_channels": 16, "decoder_segmentation_channels": 32, "upsampling": upsampling})
    with pytest.raises(
        InputError,
        match=rf"smp FPN maps a {PROBE} × {PROBE} input to shape \(1, 1, {side}, {side}\)"
        r".*for smp FPN that is upsampling 4",
    ):
        meta_probe("FPN", "mobilenet_v2", 3, 1, kwargs)


class _Doubles(torch.nn.Module):
    """A model whose logits are twice its input's height and width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x[:, :1], scale_factor=2.0)


@pytest.mark.parametrize("method", ["gradient", "occlusion"])
def test_an_attribution_on_logits_of_another_size_is_one_input_error(method: str) -> None:
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(
        InputError,
        match=r"model maps windows of 32 × 32 pixels to logits of 64 × 64; expected "
        r"logits of the input's size",
    ):
        explain_batch(_Doubles(), x, RunSpec(method=method, target="all"), slices=(0, 1), padding=None)
