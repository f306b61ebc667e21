"""``sentiment-train``: optionally fine-tune the encoder once (LoRA), then fit the classifier,
choose C and the voicing thresholds on dev, evaluate on test, write the artifact and reports."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model.cli.common import (
    UsageError,
    chat_set,
    check_writable,
    embedding_cache,
    load_split,
    run_command,
    settings_from,
)
from model.cli.options import train_parser
from model.cli.report import (
    describe_chat_data,
    describe_data,
    describe_encoder,
    print_training_reports,
    write_report,
)
from model.serving.adapter import adapter_digest
from model.serving.artifact import save_artifact
from model.serving.encoder import Encoder
from model.serving.spec import Precision, TextEncoder
from model.settings import ModelSettings
from model.training.corrections import (
    DEFAULT_HELD_OUT,
    DEFAULT_WEIGHT,
    format_corrections_report,
    held_out_report,
    load_corrections,
    split_held_out,
)
from model.training.data import (
    BINARY,
    THREE_WAY,
    ChatMapping,
    Dataset,
    TrainOn,
    find_chat_files,
    load_goemotions,
    load_training_data,
    row_weights,
)
from model.training.finetune import FinetuneOptions, finetune
from model.training.paths import validate_paths
from model.training.plots import plot_loss_curve, plot_reliability
from model.training.train import (
    DEFAULT_C_GRID,
    THREE_WAY_C_GRID,
    TrainOptions,
    TrainResult,
    embed,
    train_classifier,
    train_three_way,
)

FINETUNE_RECORD = "finetune.json"


def train_main(argv: Sequence[str] | None = None, prog: str = "sentiment-train") -> int:
    return run_command(partial(_train, prog=prog), argv)


def _train(argv: list[str] | None, *, prog: str) -> int:
    args = train_parser(prog).parse_args(argv)
    _check_outputs(args)
    _check_flags(args)
    started = time.perf_counter()
    settings = settings_from(args)
    data = _TrainingData.load(args, settings)
    # read now: a wrong --corrections file fails before minutes of work
    corrections = (
        load_corrections(args.corrections, THREE_WAY if data.three_way else BINARY)
        if args.corrections is not None
        else None
    )
    train = data.rows(args.train_on)
    adapter: Path | None = args.adapter
    finetuned: dict[str, Any] | None = None
    if args.finetune:
        adapter = args.output.with_suffix(".adapter")
        finetuned = _finetune(args, settings, data, train, adapter)
    elif adapter is not None:
        finetuned = adapter_record(adapter)
    encoder = _encoder(args, settings, settings.precision or "auto", adapter)
    print(describe_encoder(encoder, adapter))
    dev, test = load_split("dev", args, settings), load_split("test", args, settings)
    print(describe_data(args.train_on, train, dev, test))
    if corrections is None:
        result = _fit(args, settings, data, encoder, (train, dev, test), finetuned)
    else:
        result = _fit_with_corrections(
            args, settings, data, encoder, (train, dev, test), finetuned, corrections
        )
    if args.serve_paths:
        result = _validate_serving_paths(args, settings, data, encoder, result, dev)
    written = _write_outputs(args, result, finetuned, encoder.spec.name, data.three_way)
    print_training_reports(result, dev.source, test.source, time.perf_counter() - started)
    if "corrections" in result.report:
        print()
        print(format_corrections_report(result.report["corrections"]))
    print(f"wrote {args.output} (model {result.artifact.version}), {', '.join(written)}")
    return 0


def _validate_serving_paths(
    args: argparse.Namespace,
    settings: ModelSettings,
    data: _TrainingData,
    encoder: Encoder,
    result: TrainResult,
    dev: Dataset,
) -> TrainResult:
    """--serve-paths: which other paths may serve the classifier (model/training/paths.py)."""
    sets = {"sst2_dev": dev}
    if data.three_way:
        sets["chat_dev"] = data.chat_split("dev")[0]
    others: dict[Precision, Callable[[], TextEncoder]] = {
        path: partial(
            Encoder.from_spec,
            encoder.spec,
            batch_size=settings.encoder_batch_size,
            threads=settings.torch_threads,
            precision=path,
        )
        for path in args.serve_paths
        if path != encoder.spec.precision
    }

    def embed_with(chosen: TextEncoder, rows: Dataset) -> NDArray[np.float32]:
        return embed(
            chosen,
            rows,
            embedding_cache(args, settings, chosen),
            progress=not args.quiet,
            desc=f"Embedding {rows.source} ({chosen.spec.precision})",
        )

    artifact, report = validate_paths(result.artifact, encoder, others, sets, embed_with)
    result.report["serving_paths"] = report
    return replace(result, artifact=artifact)


def _check_outputs(args: argparse.Namespace) -> None:
    """Everything the run will write, checked now rather than after minutes of training."""
    check_writable(args.output)
    if args.report is not None:
        check_writable(args.report, "--report")
    for suffix in (".report.json", ".reliability.png", ".finetune.png"):
        if suffix != ".report.json" or args.report is None:
            check_writable(args.output.with_suffix(suffix), given=args.output)
    if args.finetune:
        check_writable(args.output.with_suffix(".adapter"), given=args.output, folder=True)


def _check_flags(args: argparse.Namespace) -> None:
    if args.finetune and args.adapter is not None:
        raise UsageError("give --finetune (train a new adapter) or --adapter DIR, not both.")
    if args.finetune_on is not None and not args.finetune:
        raise UsageError("--finetune-on only applies with --finetune.")
    if args.init_adapter is not None and not args.finetune:
        raise UsageError("--init-adapter only applies with --finetune.")
    chat_flags = [
        flag
        for flag, given in (
            ("--chat-data", args.chat_data_dir is not None),
            ("--fit-chat-share", args.fit_chat_share is not None),
            ("--balance-classes", args.balance_classes),
        )
        if given
    ]
    for flag, given in (
        ("--corrections-held-out", args.corrections_held_out is not None),
        ("--corrections-weight", args.corrections_weight is not None),
    ):
        if given and args.corrections is None:
            raise UsageError(f"{flag} only applies with --corrections FILE.")
    if chat_flags and args.task != "three-way":
        raise UsageError(f"{', '.join(chat_flags)} only apply with --task three-way.")


def _encoder(
    args: argparse.Namespace, settings: ModelSettings, precision: str, adapter: Path | None
) -> Encoder:
    return Encoder(
        settings.encoder,
        pooling=settings.pooling,
        max_length=settings.max_length,
        batch_size=settings.encoder_batch_size,
        threads=settings.torch_threads,
        precision=precision,
        adapter=adapter,
        text_normalizer=args.text_normalizer,
    )


@dataclass
class _TrainingData:
    """The training rows: SST-2 (sentences, phrases or both) and, for the three-way model, the
    GoEmotions comments mapped to three moods."""

    args: argparse.Namespace
    settings: ModelSettings
    mapping: ChatMapping
    chat_folder: Path | None = None
    chat_train: Dataset | None = None
    chat_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, args: argparse.Namespace, settings: ModelSettings) -> _TrainingData:
        data = cls(
            args, settings, ChatMapping(ambiguous=args.chat_ambiguous, mixed=args.chat_mixed)
        )
        if args.task == "three-way":
            data.chat_folder = find_chat_files(settings.chat_data_dir, progress=not args.quiet)
            data.chat_train, data.chat_counts = data.chat_split("train")
        return data

    @property
    def three_way(self) -> bool:
        return self.chat_folder is not None

    @property
    def shares(self) -> dict[str, float] | None:
        """Each source's share of the training weight (three-way only)."""
        share: float = self.args.chat_share
        return {"sst2": 1.0 - share, "chat": share} if self.three_way else None

    def chat_split(self, split: str) -> tuple[Dataset, dict[str, int]]:
        assert self.chat_folder is not None
        data, counts = load_goemotions(
            split, self.chat_folder, self.mapping, skip_malformed=self.args.skip_malformed
        )
        return data.head(self.args.limit), counts

    def rows(self, which: TrainOn) -> Dataset:
        sst = load_training_data(
            which,
            self.settings.data_dir,
            phrases=self.settings.phrases_file,
            skip_malformed=self.args.skip_malformed,
            progress=not self.args.quiet,
        ).head(self.args.limit)
        if self.chat_train is None:
            return sst
        return Dataset.concat([sst.as_three_way().named("sst2"), self.chat_train.named("chat")])


def _finetune(
    args: argparse.Namespace,
    settings: ModelSettings,
    data: _TrainingData,
    train: Dataset,
    adapter: Path,
) -> dict[str, Any]:
    """Fine-tune the encoder's adapter into ``adapter``; what the artifact records of it."""
    finetune_on = args.finetune_on or args.train_on
    rows = train if finetune_on == args.train_on else data.rows(finetune_on)
    options = FinetuneOptions(
        epochs=args.epochs,
        batch_size=args.finetune_batch_size,
        learning_rate=args.learning_rate,
        rank=args.lora_rank,
        alpha=args.lora_alpha,
        seed=args.seed,
        max_steps=args.max_steps,
        device=args.device,
    )
    tuned = finetune(
        _encoder(args, settings, "fp32", None),
        rows,
        adapter,
        options=options,
        checkpoint_root=args.checkpoint_dir or settings.embedding_cache_dir / "finetune",
        progress=not args.quiet,
        weights=row_weights(rows, data.shares),
        init_adapter=args.init_adapter,
    )
    record = {
        "finetune_on": finetune_on,
        "rows": len(rows),
        **({"chat_share": args.chat_share} if data.three_way else {}),
        **(
            {"init_adapter_digest": adapter_digest(args.init_adapter)}
            if args.init_adapter is not None
            else {}
        ),
        **options.identity(),
        **tuned.summary(),
    }
    # kept with the adapter, so that a classifier refitted on it later (--adapter) still
    # records how its encoder was tuned
    (adapter / FINETUNE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def adapter_record(adapter: Path) -> dict[str, Any] | None:
    """How the adapter in ``adapter`` was fine-tuned (its ``finetune.json``), when it says so
    and names these very weights; None for an adapter without one."""
    try:
        record = json.loads((adapter / FINETUNE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("adapter_digest") != adapter_digest(adapter):
        return None
    return record


def _fit(
    args: argparse.Namespace,
    settings: ModelSettings,
    data: _TrainingData,
    encoder: Encoder,
    splits: tuple[Dataset, Dataset, Dataset],
    finetuned: dict[str, Any] | None,
    corrections_weight: float = 1.0,
) -> TrainResult:
    """Embed, fit, calibrate and choose on dev, evaluate on test (and on the chat data)."""
    train, dev, test = splits
    three_way = data.three_way
    options = TrainOptions(
        c_grid=tuple(args.c_grid)
        if args.c_grid
        else (THREE_WAY_C_GRID if three_way else DEFAULT_C_GRID),
        random_state=args.seed,
        band_precision=args.band_precision,
        calibration=args.calibration,
        train_on=args.train_on,
        finetune=finetuned,
        chat_share=(args.fit_chat_share or args.chat_share) if three_way else None,
        balance_classes=args.balance_classes,
        chat_mapping=asdict(data.mapping) if three_way else None,
        corrections_weight=corrections_weight,
    )
    cache = embedding_cache(args, settings, encoder)
    if not three_way:
        return train_classifier(
            encoder,
            train,
            dev,
            test,
            options=options,
            cache=cache,
            chat=chat_set(args.chat_set),
            progress=not args.quiet,
        )
    chat_dev, chat_dev_counts = data.chat_split("dev")
    print(
        describe_chat_data(
            data.mapping, data.chat_train, chat_dev, data.chat_counts, chat_dev_counts
        )
    )
    return train_three_way(
        encoder,
        train,
        dev.as_three_way(),
        chat_dev,
        test.as_three_way(),
        options=options,
        cache=cache,
        chat=chat_set(args.chat_set),
        chat_counts={"train": data.chat_counts, "dev": chat_dev_counts},
        progress=not args.quiet,
    )


def _fit_with_corrections(
    args: argparse.Namespace,
    settings: ModelSettings,
    data: _TrainingData,
    encoder: Encoder,
    splits: tuple[Dataset, Dataset, Dataset],
    finetuned: dict[str, Any] | None,
    corrections: Dataset,
) -> TrainResult:
    """Fit without the corrections (the "before"), then with the share not held out (the
    artifact); the report says how the predictions on the held-out corrections moved. The
    second fit reads every embedding from the cache: seconds."""
    train, dev, test = splits
    share = args.corrections_held_out or DEFAULT_HELD_OUT
    weight = args.corrections_weight or DEFAULT_WEIGHT
    fit_part, held = split_held_out(corrections, share, args.seed)
    print(f"fitting without the corrections ({len(corrections)} with text) for comparison:")
    before = _fit(args, settings, data, encoder, splits, finetuned)
    print(
        f"fitting with {len(fit_part)} corrections (weight {weight:g} each), {len(held)} held out:"
    )
    mixed = Dataset.concat([fit_part, train if train.origin is not None else train.named("sst2")])
    after = _fit(args, settings, data, encoder, (mixed, dev, test), finetuned, weight)
    cache = embedding_cache(args, settings, encoder)
    x_held = embed(encoder, held, cache, progress=False, desc="Embedding held-out corrections")
    report = {
        "file": str(args.corrections),
        "rows": len(corrections),
        "trained_on": len(fit_part),
        "weight": weight,
        "held_out_share": share,
        "model_before": before.artifact.version,
        **held_out_report(
            held,
            before.artifact.class_probabilities(x_held),
            after.artifact.class_probabilities(x_held),
        ),
    }
    after.report["corrections"] = report
    after.artifact.training["corrections"] = {
        "file": Path(args.corrections).name,
        "trained_on": len(fit_part),
        "held_out": len(held),
        "weight": weight,
    }
    return after


def _write_outputs(
    args: argparse.Namespace,
    result: TrainResult,
    finetuned: dict[str, Any] | None,
    encoder_name: str,
    three_way: bool,
) -> list[str]:
    """The artifact, its report and plots; the paths written besides the artifact."""
    save_artifact(result.artifact, args.output)
    report_path = args.report or args.output.with_suffix(".report.json")
    plot_path = args.output.with_suffix(".reliability.png")
    result.report["artifact"] = str(args.output)
    write_report(result.report, report_path)
    title = f"SST-2 test, model {result.artifact.version} (C={result.artifact.training['C']:g})"
    plot_reliability(result.report["test"], plot_path, title)
    written = [str(report_path), str(plot_path)]
    if finetuned is not None and finetuned["loss_curve"]:
        loss_path = args.output.with_suffix(".finetune.png")
        epochs = finetuned["epochs"]
        plot_loss_curve(
            finetuned["loss_curve"],
            loss_path,
            f"LoRA fine-tuning of {encoder_name}{' (three-way)' if three_way else ''}\n"
            f"{finetuned['rows']:,} rows ({finetuned['finetune_on']}"
            f"{' + chat' if three_way else ''}), {epochs} epoch{'s' if epochs != 1 else ''}, "
            f"{finetuned['steps']:,} steps",
            classes=3 if three_way else 2,
        )
        written.append(str(loss_path))
    return written
