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
import logging
import os
import zipfile
from pathlib import Path

import pytest
import torch
from corpus.round3_models import TIMM
from safetensors.torch import save as st_save

from explorer.attribution.methods import explain_batch
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


def test_timm_s_logger_prints_nothing_beside_the_cli_s_one_line() -> None:
    """timm logs some failures before raising (e.g. "No checkpoint found at ..."); without a handler of its own,
    Python's last-resort handler printed that as a second stderr line beside the CLI's one error. The CLI's own
    process on such a checkpoint (exit 2, one line) is the corpus's ``ckpt_timm_checkpoint_path_absent``, run by
    the memory probe in ``tests/test_corpus.py``; here, the logger, as in a fresh interpreter (no root handler)."""
    printed = io.StringIO()
    root, last_resort = logging.getLogger(), logging.lastResort
    saved = root.handlers[:]
    root.handlers.clear()  # pytest's capture handlers: a fresh interpreter has none
    logging.lastResort = logging.StreamHandler(printed)
    try:
        logging.getLogger("timm.models._helpers").error("No checkpoint found at x")
        assert printed.getvalue() == ""
        logging.getLogger("elsewhere.models._helpers").error("No checkpoint found at y")  # the check can fail
        assert printed.getvalue() == "No checkpoint found at y\n"
    finally:
        root.handlers[:] = saved
        logging.lastResort = last_resort


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
