"""Command line: ``explorer train``, ``analyze``, ``cohort``, ``validate``, ``debias``, ``cache`` and ``app``
(README.md, "Command line").

Each subcommand parses its arguments and calls the same package functions the app calls; the choices of
every named option come from the package's registries. Bad input (:class:`InputError`) prints one line on
stderr and exits 2; nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .choices import (  # the registries' names only: building the parser imports no torch, smp or timm
    ARCHS,
    AXES,
    DEBIAS_MODES,
    DEBIAS_VARIANTS,
    DEFAULT_MARGIN,
    DEFAULT_METHOD,
    DEVICE_CHOICES,
    EXECUTORS,
    LOSSES,
    METHODS,
    NORMALISATIONS,
    PRECISIONS,
    PRESETS,
    REGIMES,
    STRATEGIES,
    TARGETS,
    VALIDATION_METHODS,
    VALIDATION_STRATEGIES,
)
from .errors import InputError, unknown_name
from .reporting import replay
from .stats.summary import NO_ESTIMATE, Estimate, ModelSummary

__all__ = ["EXIT_BAD_INPUT", "build_parser", "analyze_namespace", "main"]


EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the CLI's contract for bad input), exit 2, and no
    abbreviated options (``--ou`` for ``--out``): a command means exactly what it spells."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {' '.join(message.split())}\n")


def _one_of(registry: Collection[str], kind: str) -> Callable[[str], str]:
    """An argparse ``type`` accepting the names of ``registry``; another name gets the registry's message."""

    def check(value: str) -> str:
        if value not in registry:
            raise argparse.ArgumentTypeError(str(unknown_name(kind, value, registry)))
        return value

    check.__name__ = kind  # argparse names the type in some messages
    return check


def build_parser() -> argparse.ArgumentParser:
    """The ``explorer`` argument parser with its subcommands."""
    parser = _Parser(
        prog="explorer",
        description="Saliency asymmetry of 2D+ segmentation networks across neighbouring input slices.",
    )
    parser.add_argument("--version", action="version", version=f"explorer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_debias(sub)
    _add_analyze(sub)
    _add_cache(sub)
    _add_cohort(sub)
    _add_validate(sub)
    _add_app(sub)
    return parser


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a 2D+ checkpoint with one initialisation strategy")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--volume", help="training volume (.nii, .nii.gz, .tif); held-out block of its slices")
    data.add_argument(
        "--manifest",
        help="cohort CSV (subject,volume,mask,split): train on the 'train' subjects, "
        "held-out Dice on the 'test' subjects",
    )
    p.add_argument("--mask", help="binary mask on the volume's grid (with --volume)")
    p.add_argument("--split-column", default="split", help="manifest column with train/test (default split)")
    p.add_argument(
        "--strategy",
        required=True,
        type=_one_of(STRATEGIES, "strategy"),
        help="initialisation strategy: " + _names(STRATEGIES),
    )
    p.add_argument("--encoder", default="mobilenet_v2", help="smp encoder name (default mobilenet_v2)")
    p.add_argument(
        "--arch",
        default="Unet",
        type=_one_of(ARCHS, "architecture"),
        help="smp architecture (default Unet): " + _names(ARCHS),
    )
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slice-stride", type=int, default=1, help="train on every k-th training slice (default 1)")
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping (with --manifest): hold out --val-subjects training subjects (drawn with "
        "--seed), stop P epochs after the best validation loss, keep the best epoch; --epochs is then "
        "the maximum (default: off, train all epochs)",
    )
    p.add_argument(
        "--val-subjects",
        type=int,
        default=1,
        help="training subjects held out for early stopping (default 1; with --patience)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="epochs early stopping does not watch (default 0; with --patience): a randomly initialised "
        "network can sit on a loss plateau for its first epochs",
    )
    p.add_argument(
        "--axis",
        default="axial",
        type=_one_of(AXES, "slicing axis"),
        help="slicing axis (default axial): " + _names(AXES),
    )
    p.add_argument("--offsets", default="-1,0,1", help="window offsets, comma-separated (default -1,0,1)")
    p.add_argument(
        "--normalisation",
        default="zscore",
        type=_one_of(NORMALISATIONS, "normalisation"),
        help="intensity normalisation preset (default zscore): " + _names(NORMALISATIONS),
    )
    p.add_argument("--weights", default=None, help="explicit pretrained-weights file (overrides the resolver)")
    p.add_argument("--device", default="auto", type=_one_of(DEVICE_CHOICES, "device"), help=_names(DEVICE_CHOICES))
    p.add_argument(
        "--loss",
        default="bce-dice",
        type=_one_of(LOSSES, "loss"),
        help="training loss (default bce-dice): " + _names(LOSSES),
    )
    p.add_argument(
        "--loss-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loss parameter, e.g. gamma=2 (asymmetric-focal) or margin=1 (asymmetric-margin)",
    )
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    _add_reading(p)
    p.set_defaults(func=_cmd_train)


def _add_debias(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "debias",
        help="debias a checkpoint: first-conv surgery, fine-tuning or retraining, "
        "children compared with the parent (debias.json, figures/)",
    )
    p.add_argument("checkpoint", help="the parent checkpoint (.safetensors, smp folder or .pt state dict)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--volume", help="volume: held-out Dice on the block of slices explorer train holds out")
    data.add_argument(
        "--manifest", help="cohort CSV (subject,volume,mask,split): train on 'train', held-out Dice on 'test' subjects"
    )
    p.add_argument(
        "--mask", help="mask on the volume's grid (needed by finetune and retrain; surgery reports Dice only with one)"
    )
    p.add_argument("--split-column", default="split", help="manifest column with train/test (default split)")
    p.add_argument(
        "--variant",
        action="append",
        required=True,
        type=_one_of(DEBIAS_VARIANTS, "variant"),
        help="repeat for several: " + "; ".join(f"{k}: {v}" for k, v in DEBIAS_VARIANTS.items()),
    )
    p.add_argument(
        "--mode",
        default="symmetric",
        type=_one_of(DEBIAS_MODES, "surgery mode"),
        help="first-conv surgery (default symmetric): " + "; ".join(f"{k}: {v}" for k, v in DEBIAS_MODES.items()),
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="fine-tuning epochs (default 2); retrain: the parent's recorded epochs unless given",
    )
    p.add_argument("--freeze-encoder", action="store_true", help="fine-tune the decoder and head only")
    p.add_argument(
        "--strategy",
        default=None,
        type=_one_of(STRATEGIES, "strategy"),
        help="retrain's strategy (default imagenet-<mode>): " + _names(STRATEGIES),
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the parent's recipe)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the parent's recipe)")
    p.add_argument(
        "--slice-stride", type=int, default=None, help="train on every k-th slice (default: the parent's recipe)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--patience", type=int, default=2, help="early stopping: epochs without a better validation Dice (default 2)"
    )
    p.add_argument(
        "--arch",
        default=None,
        type=_one_of(ARCHS, "architecture"),
        help="for a parent that does not record it (a plain .pt state dict)",
    )
    p.add_argument("--encoder", default=None, help="for a parent that does not record it")
    p.add_argument(
        "--parent-strategy",
        default=None,
        type=_one_of(STRATEGIES, "strategy"),
        help="the parent's strategy, for a parent that does not record it",
    )
    p.add_argument("--device", default="auto", type=_one_of(DEVICE_CHOICES, "device"), help=_names(DEVICE_CHOICES))
    p.add_argument("--out", required=True, help="output folder (children .safetensors, debias.json, figures/)")
    _add_reading(p)
    p.set_defaults(func=_cmd_debias)


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="per-slice channel attribution and asymmetry statistics")
    _analyze_arguments(
        p, dict(method=METHODS, target=TARGETS, axis=AXES, precision=PRECISIONS, device=DEVICE_CHOICES, preset=PRESETS)
    )
    p.set_defaults(func=_cmd_analyze)


class _Unparsed(Exception):
    """The light parse of :func:`analyze_namespace` failed; the full parser then reports why."""


class _LightParser(_Parser):
    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)


def analyze_namespace(argv: Sequence[str]) -> argparse.Namespace | None:
    """The ``analyze`` arguments parsed by the same definitions as :func:`build_parser`'s, but with the
    registries' names unchecked, or None when they do not parse. Used to look up
    a run record (:mod:`explorer.reporting.replay`): a record exists only for a command that once ran, i.e. checked."""
    p = _LightParser(prog="explorer analyze")
    _analyze_arguments(p, None)
    try:
        return p.parse_args(argv)
    except _Unparsed:
        return None


def _method_help(registries: dict[str, Collection]) -> str:
    """``--method``'s help (empty for the light parse, which checks no names)."""
    if "method" not in registries:
        return ""
    return (
        f"attribution method (default {DEFAULT_METHOD}, validated on planted dependencies; saliency is the "
        "paper's measure and reads the first conv's per-channel weighting): "
        + "; ".join(f"{name}: {description}" for name, description in registries["method"].items())
    )


def _analyze_arguments(p: argparse.ArgumentParser, registries: dict[str, Collection] | None) -> None:
    """The arguments of ``explorer analyze``; ``registries`` None: choices unchecked, help without them."""
    reg = registries or {}

    def choice(name: str, kind: str) -> Callable[[str], str]:
        return _one_of(reg[name], kind) if name in reg else str

    def listed(name: str, described: bool = False) -> str:
        if name not in reg:
            return ""
        return "; ".join(f"{k}: {v}" for k, v in reg[name].items()) if described else _names(reg[name])

    p.add_argument("volume", help="volume to analyse (.nii, .nii.gz, .tif)")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint file; repeat for several")
    p.add_argument("--mask", default=None, help="optional ground-truth mask (Dice, target 'mask')")
    p.add_argument("--method", default=None, type=choice("method", "attribution method"), help=_method_help(reg))
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method parameter, e.g. replace=other (occlusion) or steps=50 (integrated_gradients)",
    )
    p.add_argument(
        "--target",
        default="predicted",
        type=choice("target", "attribution target"),
        help="explained scalar per slice (default predicted): " + listed("target", described=True),
    )
    p.add_argument(
        "--axis",
        default=None,
        type=choice("axis", "slicing axis"),
        help="slicing axis (default: the checkpoint's): " + listed("axis"),
    )
    p.add_argument(
        "--no-reverse",
        "--no-zflip",
        dest="no_zflip",
        action="store_true",
        help="skip the reversed windows: no channel/anatomy split and no z-flip Dice (faster)",
    )
    p.add_argument(
        "--zflip-stride",
        type=int,
        default=1,
        metavar="N",
        help="the reversed pass predicts and attributes every N-th slice (default 1 = all)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        type=choice("precision", "precision"),
        help="autocast precision: " + listed("precision") + " (default auto: bfloat16 where the CPU or "
        "GPU runs it natively, else float32)",
    )
    p.add_argument("--out", default="explorer-out", help="output directory")
    p.add_argument("--device", default="auto", type=choice("device", "device"), help=listed("device"))
    p.add_argument(
        "--save-maps",
        action="store_true",
        help="also write per-channel attribution NIfTIs, and each "
        "model's prediction as a label map and a probability map, on the input's grid",
    )
    p.add_argument(
        "--formats",
        default="png,svg,pdf",
        type=_formats,
        metavar="LIST",
        help="static figure formats besides HTML, comma-separated from png, svg, pdf, or 'none' "
        "(default png,svg,pdf where static export works; renders are cached by content)",
    )
    p.add_argument(
        "--figure-preset",
        default="screen",
        type=choice("preset", "figure preset"),
        help="figure size and fonts: " + listed("preset") + " (88 / 180 mm columns, 9 pt text)",
    )
    p.add_argument("--dilation", type=int, default=0, help="grow the foreground by N pixels for background attention")
    p.add_argument("--cam", action="store_true", help="Grad-CAM of every slice (standard and |logit| target)")
    p.add_argument(
        "--cam-layer",
        default=None,
        help="Grad-CAM layer name (implies --cam; default the bottleneck, "
        "the deepest encoder stage; a wrong name lists the choices)",
    )
    p.add_argument("--sanity", action="store_true", help="parameter-randomisation sanity check of the method")
    p.add_argument("--sanity-slices", type=int, default=12, help="slices used by --sanity (default 12)")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout (instead of the summary lines)")
    _add_reading(p)


def _formats(value: str) -> tuple[str, ...]:
    """``--formats``: ``png,svg`` → ``("png", "svg")``; ``none`` → HTML only."""
    chosen = () if value.strip() == "none" else tuple(v.strip() for v in value.split(",") if v.strip())
    for fmt in chosen:
        _one_of(("png", "svg", "pdf"), "static figure format")(fmt)
    return chosen


def _add_cohort(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cohort", help="many volumes × checkpoints: group statistics by strategy (docs/cohort.md)")
    p.add_argument("manifest", help="CSV with volume [, mask, subject] columns, or a folder of volumes")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint file; repeat for several")
    p.add_argument("--out", default="explorer-cohort", help="output directory")
    p.add_argument("--executor", default="local", type=_one_of(EXECUTORS, "executor"), help=_names(EXECUTORS))
    p.add_argument(
        "--ray-address",
        default=None,
        help="an existing Ray cluster (default RAY_ADDRESS, else a local instance started and stopped by the command)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="CPUs of the local Ray instance (default all); torch threads for --executor local",
    )
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        type=_one_of(METHODS, "attribution method"),
        help=f"attribution method (default {DEFAULT_METHOD}): " + _names(METHODS),
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method parameter, e.g. replace=other (occlusion) or steps=16 (integrated_gradients)",
    )
    p.add_argument(
        "--target",
        default="predicted",
        type=_one_of(TARGETS, "attribution target"),
        help="explained scalar per slice (default predicted): " + _names(TARGETS),
    )
    p.add_argument(
        "--axis",
        default=None,
        type=_one_of(AXES, "slicing axis"),
        help="slicing axis (default: the checkpoint's): " + _names(AXES),
    )
    p.add_argument("--device", default="auto", type=_one_of(DEVICE_CHOICES, "device"), help=_names(DEVICE_CHOICES))
    p.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"equivalence margin of the per-model |endpoint| (default {DEFAULT_MARGIN}: |AI| below 0.05 "
        "is negligible, the tool's own rule of thumb; fixed in advance, recorded in cohort_summary.json "
        "with its rationale). A strategy 'removes' the asymmetry only when the mean |value| over its "
        "models is shown to lie below it",
    )
    p.add_argument(
        "--no-reverse",
        dest="no_reverse",
        action="store_true",
        help="skip the reversed windows (faster; the cohort's primary endpoint, channel asymmetry, is "
        "then missing and the statistics use the plain AI, recorded as such)",
    )
    p.add_argument(
        "--per-volume",
        action="store_true",
        help="also write each volume's analyze outputs under OUT/volumes/<subject>/",
    )
    p.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first bad row (exit 2) instead of recording it in cohort.csv's error column",
    )
    p.set_defaults(func=_cmd_cohort)


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="known-answer benchmark: train on planted slice dependencies, score every "
        "method against them (docs/validation.md)",
    )
    p.add_argument("--out", required=True, help="output folder (validation.csv, validation.json, figures/)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny run for tests: 32x32x24 volumes, independent "
        "regime, imagenet and imagenet-uniform, directions -1 1, one seed, saliency and occlusion "
        "(the options below override it)",
    )
    p.add_argument("--regimes", nargs="+", type=_one_of(REGIMES, "regime"), help="default: " + _names(REGIMES))
    p.add_argument(
        "--strategies",
        nargs="+",
        type=_one_of(STRATEGIES, "strategy"),
        help="default: " + _names(VALIDATION_STRATEGIES),
    )
    p.add_argument("--seeds", type=int, help="seeds per strategy x direction x regime (default 3)")
    p.add_argument("--directions", nargs="+", type=int, help="planted offsets d (default: every offset of the window)")
    p.add_argument(
        "--methods",
        nargs="+",
        metavar="NAME[:KEY=VALUE,...]",
        help="methods scored (default: " + " ".join(VALIDATION_METHODS) + ")",
    )
    p.add_argument("--epochs", type=int, help="training epochs (default 12; 40 with --quick)")
    p.add_argument("--arch", type=_one_of(ARCHS, "architecture"), help="smp architecture (default Unet)")
    p.add_argument("--encoder", help="smp encoder (default mobilenet_v2)")
    p.add_argument("--offsets", help="window offsets, comma-separated (default -1,0,1)")
    p.add_argument("--device", default="auto", type=_one_of(DEVICE_CHOICES, "device"), help=_names(DEVICE_CHOICES))
    p.set_defaults(func=_cmd_validate)


def _names(registry: Collection[str]) -> str:
    return ", ".join(registry)


def _add_reading(p: argparse.ArgumentParser) -> None:
    """How the volume is read (explorer.io.volume.load_volume): which series, dataset or volume, and spacing."""
    p.add_argument("--series", default=None, metavar="UID", help="DICOM SeriesInstanceUID when the input holds several")
    p.add_argument("--dataset", default=None, metavar="PATH", help="HDF5 dataset when the file holds several")
    p.add_argument("--volume-index", type=int, default=None, metavar="N", help="volume N of a 4D image")
    p.add_argument(
        "--spacing",
        default=None,
        metavar="X,Y,Z",
        help="voxel size of a TIFF/HDF5 stack (default: its metadata, else 1,1,1)",
    )


def _load(args: argparse.Namespace, path: str):
    """The volume at ``path`` read with the reading flags."""
    from .io.volume import load_volume

    spacing = None
    if args.spacing is not None:
        try:
            spacing = tuple(float(v) for v in args.spacing.split(","))
        except ValueError as exc:
            raise InputError("--spacing", f"{args.spacing!r} is not numbers", "X,Y,Z, e.g. 0.5,0.5,2") from exc
        if len(spacing) != 3:
            raise InputError("--spacing", f"{args.spacing!r} has {len(spacing)} values", "X,Y,Z, e.g. 0.5,0.5,2")
    return load_volume(path, volume_index=args.volume_index, spacing=spacing, series=args.series, dataset=args.dataset)


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="show or clear the on-disk cache (EXPLORER_CACHE_DIR): results, run records and figure renders"
    )
    p.add_argument("action", choices=["info", "clear"], help="info: entries, bytes and budget; clear: delete all")
    p.set_defaults(func=_cmd_cache)


def _add_app(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="serve the Streamlit app, with the analysis stack imported and the first "
        "visit's results (sample × shipped zoo) computed at server start",
    )
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--address", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument(
        "--no-warm", action="store_true", help="do not analyse the sample × zoo in the background at server start"
    )
    p.set_defaults(func=_cmd_app)


def _cmd_app(args: argparse.Namespace) -> int:
    """Run Streamlit in this process (it blocks until the server stops) while a background thread imports the
    analysis stack and then warms the first visit's results: a page opened a little later neither imports torch
    nor waits for that analysis, and the server answers at once."""
    from streamlit import config as st_config
    from streamlit.web import bootstrap

    from .app import warm

    script = str(Path(__file__).with_name("app") / "main.py")
    warm.begin(analyse=not args.no_warm)
    flags = {
        "server_port": args.port,
        "server_address": args.address,
        "server_headless": True,
        "browser_gatherUsageStats": False,
        # as .streamlit/config.toml says for `streamlit run`: no full garbage collection after every script run
        # (0.3 s each with torch loaded, while a job's progress reruns every second), no polling of source files
        "runner_postScriptGC": False,
        "server_fileWatcherType": "none",
    }
    st_config._main_script_path = script
    bootstrap.load_config_options(flag_options=flags)
    bootstrap.run(script, False, [], flags)
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from .cache.disk import cache_info, clear_cache, unusable_reason
    from .config import cache_dir, cache_max_bytes

    root, budget = cache_dir(), cache_max_bytes()
    if reason := unusable_reason(root):
        raise InputError(root, f"cache directory is not usable ({reason})", "a writable folder in EXPLORER_CACHE_DIR")
    if args.action == "clear":
        print(f"{root}: removed {clear_cache(root)} entries")
        return 0
    info = cache_info(root, budget)
    print(
        f"{root}: {info.entries} entries ({info.runs} run records, {info.renders} figure renders), "
        f"{info.bytes / 1024**2:,.1f} MB of a budget of "
        f"{budget / 1024**2:,.0f} MB (EXPLORER_CACHE_MAX_MB; least recently used entries are evicted)"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.subjects import train_manifest_checkpoint
    from .training.train import (  # imported here: torch/smp load only for this subcommand
        Recipe,
        TrainSpec,
        train_checkpoint,
    )

    spec = TrainSpec(
        strategy=args.strategy,
        arch=args.arch,
        encoder=args.encoder,
        offsets=args.offsets.split(","),  # validated by the spec (windows.validate_offsets)
        axis=args.axis,
        normalisation=args.normalisation,
        weights=args.weights,
        device=args.device,
        recipe=Recipe(
            epochs=args.epochs,
            seed=args.seed,
            loss=args.loss,
            slice_stride=args.slice_stride,
            loss_params=_key_values(args.loss_param, "--loss-param"),
            patience=args.patience,
            val_subjects=args.val_subjects,
            warmup=args.warmup,
        ),
    )
    if args.manifest is not None:
        result = train_manifest_checkpoint(
            args.manifest, args.out, spec, split_column=args.split_column, command=_train_command(args)
        )
        heldout = ", ".join(f"{k} {v:.4f}" for k, v in result.meta.metrics["heldout_dice"].items())
        epochs = result.meta.training["epochs"]
        stopped = f", best epoch {epochs['best_epoch']}" if "best_epoch" in epochs else ""
        print(
            f"wrote {args.out}: strategy {args.strategy}, held-out subjects' Dice {heldout}, "
            f"mean {result.meta.metrics['val_dice']:.4f}; {epochs['epochs_reached']} epoch(s){stopped}"
        )
        return 0
    if args.mask is None:
        raise InputError("--mask", "missing", "a mask with --volume")
    result = train_checkpoint(_load(args, args.volume), args.mask, args.out, spec, command=_train_command(args))
    print(f"wrote {args.out}: strategy {args.strategy}, held-out Dice {result.meta.metrics['val_dice']:.4f}")
    return 0


def _train_command(args: argparse.Namespace) -> str:
    """The canonical command line that reproduces a training run (stored in the checkpoint)."""
    data = (
        ["--manifest", args.manifest, "--split-column", args.split_column]
        if args.manifest is not None
        else ["--volume", args.volume, "--mask", args.mask]
    )
    parts = [
        "explorer",
        "train",
        *data,
        "--strategy",
        args.strategy,
        "--encoder",
        args.encoder,
        "--arch",
        args.arch,
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--axis",
        args.axis,
        "--offsets",
        args.offsets,
        "--normalisation",
        args.normalisation,
    ]
    if args.weights:
        parts += ["--weights", args.weights]
    if args.device != "auto":
        parts += ["--device", args.device]
    if args.loss != "bce-dice":
        parts += ["--loss", args.loss]
    if args.slice_stride != 1:
        parts += ["--slice-stride", str(args.slice_stride)]
    if args.patience is not None:
        parts += [
            "--patience",
            str(args.patience),
            "--val-subjects",
            str(args.val_subjects),
            "--warmup",
            str(args.warmup),
        ]
    for item in args.loss_param:
        parts += ["--loss-param", item]
    for flag in ("series", "dataset", "volume_index", "spacing"):
        if getattr(args, flag) is not None:
            parts += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    return " ".join(shlex.quote(p) for p in [*parts, "--out", args.out])


def _cmd_debias(args: argparse.Namespace) -> int:
    from .debias import DebiasData, DebiasSpec, debias
    from .debias.outputs import check_debias_out, write_debias
    from .models.checkpoints import load_checkpoint
    from .progress import Progress
    from .study import Study

    check_debias_out(args.out)  # before any work
    spec = DebiasSpec(
        variants=tuple(args.variant),
        mode=args.mode,
        epochs=args.epochs,
        freeze_encoder=args.freeze_encoder,
        strategy=args.strategy,
        lr=args.lr,
        batch_size=args.batch_size,
        slice_stride=args.slice_stride,
        seed=args.seed,
        patience=args.patience,
        device=args.device,
    )
    given = {k: v for k, v in dict(arch=args.arch, encoder=args.encoder, strategy=args.parent_strategy).items() if v}
    parent = load_checkpoint(args.checkpoint, meta=given or None)
    if args.manifest is not None:
        data = DebiasData.from_manifest(args.manifest, args.split_column)
    else:
        data = DebiasData(study=Study.load(_load(args, args.volume), args.mask))
    with Progress("debias") as bar:
        result = debias(
            parent,
            data,
            spec,
            command=_debias_command(args),
            progress=lambda fraction, message: bar.update(int(round(1000 * fraction)), 1000, message),
        )
    written = write_debias(result, args.out)
    for record in (result.report["parent"], *result.report["children"]):
        split = next(iter((record.get("channel_asymmetry") or {}).values()), None) or {}
        ci = split.get("ci95") or [None, None]
        change = f" ({record['dice_change']:+.4f})" if record.get("dice_change") is not None else ""
        if "prediction_dice_vs_parent" in record:
            change += f", prediction Dice vs parent {_fmt(record['prediction_dice_vs_parent'])}"
        print(
            f"{record['name']} [{record['variant']}]: held-out Dice {_fmt(record.get('heldout_dice'))}{change}, "
            f"channel asymmetry {_fmt(split.get('mean'))} [{_fmt(ci[0])}, {_fmt(ci[1])}]"
            + (f"; {record['recovery']}" if record.get("recovery") else "")
            + (" (from the cache)" if record.get("from_cache") else "")
        )
    print(f"wrote {len(result.children)} checkpoint(s), debias.json and figures/ to {written['report'].parent}")
    return 0


def _debias_command(args: argparse.Namespace) -> str:
    """The canonical command line of a debias run (recorded in each child)."""
    parts = ["explorer", "debias", args.checkpoint]
    for flag in (
        "volume",
        "mask",
        "manifest",
        "split_column",
        "mode",
        "epochs",
        "strategy",
        "lr",
        "batch_size",
        "slice_stride",
        "seed",
        "patience",
        "arch",
        "encoder",
        "parent_strategy",
        "device",
        "series",
        "dataset",
        "volume_index",
        "spacing",
    ):
        value = getattr(args, flag)
        if value is not None and not (flag == "split_column" and args.manifest is None):
            parts += ["--" + flag.replace("_", "-"), str(value)]
    for variant in args.variant:
        parts += ["--variant", variant]
    if args.freeze_encoder:
        parts.append("--freeze-encoder")
    return shlex.join([*parts, "--out", args.out])


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .outdir import check_out_dir
    from .study import Study

    check_out_dir(args.out)  # before any work: a bad --out must not cost a whole analysis
    # A bad volume or mask is reported before torch/smp load (seconds) where nothing checked below could refuse
    # the command first; otherwise it is read after those checks, so the same error is reported either way.
    early = _plain_analysis(args)
    study = Study.load(_load(args, args.volume), args.mask) if early else None
    from .analysis import analyze  # imported here: torch/smp load only for this subcommand
    from .diagnostics import DiagnosticOptions
    from .diagnostics.report import diagnostics_line
    from .progress import Progress
    from .reporting.outputs import write_outputs
    from .spec import RunSpec

    options = DiagnosticOptions(
        dilation=args.dilation,
        cam=args.cam or args.cam_layer is not None,
        cam_layer=args.cam_layer,
        sanity=args.sanity,
        sanity_slices=args.sanity_slices,
    )
    spec = RunSpec(
        method=args.method or DEFAULT_METHOD,
        target=args.target,
        params=_key_values(args.param, "--param"),
        axis=args.axis,
        zflip=not args.no_zflip,
        keep_maps=args.save_maps,
        diagnostics=options,
        device=args.device,
        precision=args.precision,
        zflip_stride=args.zflip_stride,
    )
    if study is None:
        study = Study.load(_load(args, args.volume), args.mask)
    with Progress("analyze", total=1000) as bar:

        def progress(fraction: float, message: str) -> None:
            bar.update(int(round(1000 * fraction)), 1000, message)

        analysis = analyze(study, args.checkpoint, spec, progress=progress)
        bar.stage("writing the tables and figures")
        written = write_outputs(analysis, args.out, figure_preset=args.figure_preset, figure_formats=args.formats)
    if args.json:
        lines = [written["summary"].read_text().rstrip("\n")]
    else:
        lines = []
        for name, stats in analysis.model_stats.items():
            ai = stats.asymmetry_index
            lines += [
                f"{name}: {_split_text(stats)}AI {_interval(ai)} (mass-weighted {_fmt(ai.mass_weighted)}), "
                f"block sign-flip p {_fmt(ai.p)} (min attainable {_fmt(ai.p_min)}), Dice {_fmt(stats.dice)}",
                "  " + diagnostics_line(stats.raw),
            ]
    print("\n".join(lines))
    if not args.json:
        print(
            f"wrote {len(written)} outputs to {args.out} ({len(analysis.from_cache)} of "
            f"{len(analysis.models)} model results from the cache)"
        )
    replay.record_run(args, lines, outputs=None if args.json else len(written), models=len(analysis.models))
    return 0


def _plain_analysis(args: argparse.Namespace) -> bool:
    """Whether ``analyze``'s options cannot be refused after parsing: no ``--param`` (a method's defaults are
    valid, tests/test_cli_lines.py) and the integers :class:`~explorer.diagnostics.DiagnosticOptions` and
    :class:`~explorer.spec.RunSpec` range-check in range (every name was checked by the parser). Then the
    volume can be read first without changing which error a bad command reports."""
    return not args.param and args.dilation >= 0 and args.sanity_slices >= 1 and args.zflip_stride >= 1


def _cmd_cohort(args: argparse.Namespace) -> int:
    from .cohort import Executor, run_cohort
    from .cohort.outputs import write_cohort
    from .progress import Progress
    from .reporting.outputs import check_out_dir
    from .spec import RunSpec

    check_out_dir(args.out, marker="cohort_summary.json")  # before any work

    executor = Executor(args.executor, args.ray_address, args.workers)
    spec = RunSpec(
        method=args.method,
        target=args.target,
        params=_key_values(args.param, "--param"),
        axis=args.axis,
        zflip=not args.no_reverse,
        device=args.device,
    )
    with Progress("cohort", unit="pair") as bar:
        cohort = run_cohort(
            args.manifest,
            args.checkpoint,
            spec,
            executor=executor,
            margin=args.margin,
            fail_fast=args.fail_fast,
            progress=bar.update,
        )
        bar.stage("writing the tables and figures")
        write_cohort(cohort, args.out, per_volume=args.per_volume)
    print("\n".join(_cohort_lines(cohort.summary)))
    if cohort.errors:
        print(
            f"{len(cohort.errors)} of {len(cohort.rows)} pairs failed (see the error column): "
            + "; ".join(cohort.errors[:3])
            + (" …" if len(cohort.errors) > 3 else "")
        )
    print(
        f"wrote {args.out}/cohort.csv and cohort_summary.json ({cohort.from_cache} of {len(cohort.rows)} "
        f"pairs from the cache)"
    )
    return 0


def _cohort_lines(summary: dict) -> list[str]:
    """The cohort's statistics as printed: each group's interval (its method named), each comparison and each
    equivalence test with its p, the design's minimum attainable p and Holm's p, then the family and the margin.
    "removes" appears only for an equivalence test that passed."""
    label = summary["endpoint"].replace("_", " ")
    lines = []
    for name, g in summary["groups"].items():
        ai = g[g["endpoint"]]
        lines.append(
            f"{name}: {label} {_interval(Estimate.from_block(ai))} "
            f"({g['n_models']} model(s), {g['n_volumes']} volume(s); {ai['method']})"
        )
    for c in summary["comparisons"]:
        mde = (
            f", detects a difference of {_fmt(c['mde'])} with 80% power"
            if c.get("mde") is not None
            else (", cannot reach p < 0.05 with these models" if c["unit"] == "model" else "")
        )
        lines.append(
            f"{c['a']} vs {c['b']}: {c['test']}, p {_fmt(c['p'])} (min attainable {_fmt(c['p_min'])}), "
            f"Holm p {_fmt(c['p_holm'])}, effect {_fmt(c['effect_size'])}{mde}"
        )
    for name, e in summary["equivalence"].items():
        verdict = "removes the asymmetry" if e["equivalent"] else "not shown to remove the asymmetry"
        unit = e["unit"].split(" ")[0]
        power = (
            f"80% power needs a true mean |{label}| ≤ {_fmt(e['detectable_below'])}"
            if e["detectable_below"] is not None and e["detectable_below"] > 0
            else f"no true mean |{label}| reaches 80% power with this design"
        )
        lines.append(
            f"{name}: {verdict}: mean |{label}| {_fmt(e['mean_abs'])} over {e['n']} {unit}s, upper "
            f"95% bound {_fmt(e['upper'])} vs margin {e['margin']:g}, p {_fmt(e['p'])} (min attainable "
            f"{_fmt(e['p_min'])}), Holm p {_fmt(e['p_holm'])}; {power} (minimum detectable effect "
            f"{_fmt(e['mde'])} below the margin)"
        )
    family, margin = summary["family"], summary["equivalence_margin"]
    lines.append(
        f"Holm family: {family['size']} tests ({family['members']}); margin {margin['margin']:g}: {margin['rationale']}"
    )
    return lines


def _cmd_validate(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .validation import ValidationSpec, run_validation
    from .validation.outputs import check_validation_out, write_validation

    check_validation_out(args.out)  # before any work
    given = {
        k: v
        for k, v in dict(
            regimes=args.regimes,
            strategies=args.strategies,
            seeds=args.seeds,
            directions=args.directions,
            methods=args.methods,
            epochs=args.epochs,
            arch=args.arch,
            encoder=args.encoder,
            device=args.device,
            offsets=None if args.offsets is None else args.offsets.split(","),
        ).items()
        if v is not None
    }
    spec = ValidationSpec.quick(**given) if args.quick else ValidationSpec(**given)
    with Progress("validate", unit="step") as bar:
        validation = run_validation(spec, progress=bar.update, command=_validate_command(args))
    written = write_validation(validation, args.out)
    for row in validation.table.itertuples():
        print(
            f"{row.regime} {row.strategy} d={row.direction:+d} {row.method}: channel asymmetry "
            f"{_fmt(row.channel_asymmetry)} [{_fmt(row.ci95_lo)}, {_fmt(row.ci95_hi)}], sign accuracy "
            f"{_fmt(row.sign_accuracy)}, pass rate {_fmt(row.pass_rate)} ({row.seeds} seed(s))"
        )
    print(
        f"wrote {written['csv']}, {written['json'].name} and figures/ ({validation.trained} network(s) trained, "
        f"{validation.from_cache} from the cache)"
    )
    return 0


def _validate_command(args: argparse.Namespace) -> str:
    """The canonical command line of a validation run (recorded in validation.json)."""
    parts = ["explorer", "validate", *(["--quick"] if args.quick else [])]
    for flag in ("regimes", "strategies", "seeds", "directions", "methods", "epochs", "arch", "encoder", "offsets"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    if args.device != "auto":
        parts += ["--device", args.device]
    return shlex.join([*parts, "--out", args.out])


def _key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``; a malformed item is an :class:`InputError`."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(flag, f"{item!r}", "KEY=VALUE, e.g. gamma=2")
        out[key] = value
    return out


def _split_text(stats: ModelSummary) -> str:
    """``channel asymmetry M [lo, hi] p P (min attainable P0), anatomy …; `` of a model's summary ('' when
    skipped)."""
    parts = [
        f"{label} {_interval(value)} p {_fmt(value.p)} (min attainable {_fmt(value.p_min)})"
        for value, label in ((stats.channel_asymmetry, "channel asymmetry"), (stats.anatomy_asymmetry, "anatomy"))
        if value is not None
    ]
    return "; ".join(parts) + "; " if parts else ""


def _interval(estimate: Estimate | None) -> str:
    """``M [lo, hi]``, each as :func:`_fmt` prints it."""
    estimate = estimate or NO_ESTIMATE
    return f"{_fmt(estimate.mean)} [{_fmt(estimate.ci_low)}, {_fmt(estimate.ci_high)}]"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3g}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``explorer`` console script; returns the exit code.

    A repeated ``explorer analyze`` with the same arguments and file contents is answered from its run record
    (:mod:`explorer.reporting.replay`) before anything heavy is imported; every successful analysis is recorded.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["analyze"] and not {"-h", "--help"} & set(argv) and (light := analyze_namespace(argv[1:])):
        try:
            if replay.try_replay(light):
                return 0
        except InputError as exc:  # --out refused, exactly as the run itself would refuse it
            return _error("analyze", exc)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed as one line
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():  # library warnings must not add lines to stderr
            warnings.simplefilter("ignore")
            return int(args.func(args) or 0)
    except InputError as exc:
        return _error(args.command, exc)


def _error(command: str, exc: InputError) -> int:
    """Print ``exc`` as the command's one stderr line; returns the exit code for bad input."""
    text = str(exc).replace("\r", "\\r").replace("\n", "\\n")  # a newline in a file name stays one line
    print(f"explorer {command}: error: {text}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
