"""Fine-tune the encoder once, offline, with low-rank adapters; the bot still serves
"embedding, then logistic regression".

The encoder (with the same pooling the classifier uses) gets LoRA adapters on every Linear layer
of its transformer blocks and a linear classification head, and is trained with cross-entropy on
labelled SST-2 rows. Only the adapters are kept (a few MB); training then freezes the encoder with
the adapters merged and fits the logistic regression on its embeddings as usual.

Runs are reproducible (fixed seeds, deterministic length-bucketed batches) and resumable:
every ``checkpoint_every`` steps the adapters, head, optimiser, schedule and random state are
saved under a folder named after the run's settings and data, and the same command picks up
where an interrupted run stopped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from model.serving.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_digest, lora_targets
from model.serving.encoder import Encoder, cpu_has_native_bf16, pool
from model.training.cache import default_cache_dir
from model.training.data import Dataset

Log = Callable[[str], None]
CHECKPOINT_FILE = "checkpoint.pt"
# Batches are drawn from windows of this many batches sorted by length: batches hold texts of
# similar length (little padding) while their order stays random.
_BUCKET_BATCHES = 50


class FinetuneError(Exception):
    """Fine-tuning cannot start or go on. The message says what to do."""


@dataclass(frozen=True)
class FinetuneOptions:
    # The defaults are the committed default's run, the best on dev of those tried (README).
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 3e-4
    rank: int = 64
    alpha: int = 128
    dropout: float = 0.1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 0
    max_steps: int | None = None  # stop after this many steps (quick trials, tests)
    checkpoint_every: int = 200  # steps between checkpoints
    device: str = "auto"  # auto: the GPU when there is one, else the CPU
    bf16: bool | None = None  # bf16 autocast; None: where the hardware has native bf16

    def __post_init__(self) -> None:
        # checked once, here (the device is checked when it is used: is there a GPU?)
        if self.epochs < 1 or self.batch_size < 1 or self.rank < 1:
            raise FinetuneError("epochs, batch size and rank must each be at least 1.")

    def identity(self) -> dict[str, Any]:
        """The settings that change the result (not where or how often it is saved)."""
        d = asdict(self)
        for key in ("checkpoint_every", "device", "bf16"):
            d.pop(key)
        return d


@dataclass
class FinetuneResult:
    adapter_dir: Path
    adapter_digest: str
    steps: int
    seconds: float  # of training in this process (a resumed run counts only its own part)
    # of training over all the processes of this run (None: an older checkpoint did not say)
    total_seconds: float | None = None
    losses: list[dict[str, float]] = field(default_factory=list)  # step, mean training loss
    resumed_from: int = 0
    device: str = "cpu"
    bf16: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "adapter_digest": self.adapter_digest,
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "total_seconds": None if self.total_seconds is None else round(self.total_seconds, 1),
            "resumed_from_step": self.resumed_from,
            "device": self.device,
            "bf16_autocast": self.bf16,
            "loss_curve": self.losses,
        }


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise FinetuneError(f"unknown device {choice!r}: use auto, cpu or cuda.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FinetuneError("device cuda was asked for but no GPU is visible: use --device cpu.")
    return device


def _native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[NDArray[np.int64]]:
    """Row indices of each batch of one epoch: shuffled, then sorted by length within windows
    of ``_BUCKET_BATCHES`` batches, then the batches shuffled. Same seed and epoch, same batches."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lens = np.asarray(lengths)
    window = batch_size * _BUCKET_BATCHES
    batches: list[NDArray[np.int64]] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lens[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def run_key(
    encoder: Encoder,
    ids: Sequence[Sequence[int]],
    labels: NDArray[np.int64],
    options: FinetuneOptions,
    *,
    classes: Sequence[str] = ("negative", "positive"),
    weights: NDArray[np.float64] | None = None,
    init_digest: str | None = None,
) -> str:
    """Names a run: same base weights, pooling, token ids, labels and settings = same run, so
    an interrupted run resumes. Token ids, not texts: they are what the model trains on."""
    h = hashlib.sha256()
    h.update(encoder.fingerprint.encode())
    spec = [encoder.spec.pooling, encoder.spec.max_length, encoder.spec.normalize]
    h.update(json.dumps({"spec": spec, "options": options.identity()}, sort_keys=True).encode())
    for row in ids:
        h.update(np.asarray(row, dtype=np.int64).tobytes())
        h.update(b"|")
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    # what binary runs never had stays out of their key, so their checkpoints still resume
    if tuple(classes) != ("negative", "positive"):
        h.update(repr(tuple(classes)).encode())
    if weights is not None:
        h.update(np.asarray(weights, dtype=np.float64).tobytes())
    if init_digest is not None:
        h.update(init_digest.encode())
    return h.hexdigest()[:16]


class _Head(torch.nn.Module):
    """Pooling as the classifier sees it, then a linear layer. L2-normalised embeddings are
    scaled by sqrt(dim) so the head's logits are not stuck near zero."""

    def __init__(self, encoder: Encoder, classes: int = 2) -> None:
        super().__init__()
        self.pooling = encoder.spec.pooling
        self.normalize = encoder.spec.normalize
        self.scale = math.sqrt(encoder.dim) if encoder.spec.normalize else 1.0
        self.linear = torch.nn.Linear(encoder.dim, classes)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(
            pool(hidden, mask, self.pooling, self.normalize) * self.scale
        )
        return logits


def _start_from(model: Any, folder: Path, rank: int) -> None:
    """Load the LoRA weights of an adapter trained before into ``model`` (same rank)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if config.get("r") != rank:
        raise FinetuneError(
            f"adapter {folder} has rank {config.get('r')}, this run rank {rank}: start from an "
            f"adapter of the same rank (--lora-rank {config.get('r')})."
        )
    state = {k: v.float() for k, v in load_file(folder / ADAPTER_WEIGHTS).items()}
    result = set_peft_model_state_dict(model, state)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise FinetuneError(
            f"adapter {folder} does not fit this encoder ({len(missing)} weights unused): "
            "start from an adapter trained on the same base model."
        )


def _canonical_config(path: Path) -> None:
    """peft writes ``target_modules`` from a set, in an order that changes from one process to
    the next (string hashing is salted): sort it, so the same run gives the same digest."""
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _store_half(path: Path) -> None:
    """Rewrite the adapter's weights in fp16: half the file to commit. The low-rank factors are
    small numbers whose rounding moves no prediction measurably (the artifact's logistic
    regression is fitted on the encoder merged from these very fp16 weights); the training
    checkpoint keeps fp32, so resuming loses nothing."""
    from safetensors.torch import load_file, save_file

    tensors = {name: t.to(torch.float16).contiguous() for name, t in load_file(path).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def finetune(
    encoder: Encoder,
    data: Dataset,
    output: Path,
    *,
    options: FinetuneOptions | None = None,
    checkpoint_root: Path | None = None,
    progress: bool = True,
    log: Log = print,
    weights: NDArray[np.float64] | None = None,
    init_adapter: Path | None = None,
) -> FinetuneResult:
    """Train LoRA adapters for ``encoder`` (an fp32 encoder without adapter) on ``data`` and
    write them to the folder ``output``. ``encoder`` is left unchanged.

    The head has one output per class of ``data`` (two for SST-2, three for the chat model).
    ``weights`` (one per row, see :func:`row_weights`) weight each row's loss. ``init_adapter``
    starts from an adapter trained before (same rank) instead of from zero: e.g. the SST-2
    adapter, then taught the three-way chat task."""
    from peft import (
        LoraConfig,
        get_peft_model,
        get_peft_model_state_dict,
        set_peft_model_state_dict,
    )
    from transformers import get_linear_schedule_with_warmup

    options = options or FinetuneOptions()
    if encoder.spec.adapter is not None:
        raise FinetuneError("the encoder already has an adapter: fine-tune its base instead.")
    if encoder.spec.precision != "fp32":
        raise FinetuneError("fine-tune an fp32 encoder (bf16 is used through autocast).")
    if len(set(data.labels.tolist())) < 2:
        raise FinetuneError(f"{data.source} has only one label: fine-tuning needs both.")

    if weights is not None and (weights.shape != (len(data),) or not (weights > 0).all()):
        raise FinetuneError("row weights must be one positive number per row")
    init_digest = adapter_digest(init_adapter) if init_adapter is not None else None

    device = pick_device(options.device)
    use_bf16 = _native_bf16(device) if options.bf16 is None else options.bf16
    ids = encoder.tokenize(data.texts)
    key = run_key(
        encoder,
        ids,
        data.labels,
        options,
        classes=data.classes,
        weights=weights,
        init_digest=init_digest,
    )
    ckpt_dir = (checkpoint_root or default_cache_dir() / "finetune") / key
    ckpt_path = ckpt_dir / CHECKPOINT_FILE

    torch.manual_seed(options.seed)
    labels = torch.as_tensor(data.labels, dtype=torch.long)
    row_weight = torch.as_tensor(
        weights if weights is not None else np.ones(len(data)), dtype=torch.float32
    )
    steps_per_epoch = math.ceil(len(ids) / options.batch_size)
    total = steps_per_epoch * options.epochs
    if options.max_steps is not None:
        total = min(total, options.max_steps)

    # A private copy of the weights: LoRA wraps the layers in place.
    base = copy.deepcopy(encoder.model).float()
    targets = lora_targets(base)
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=targets,
        bias="none",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        model = get_peft_model(base, config)
    if init_adapter is not None:
        _start_from(model, init_adapter, options.rank)
        log(f"starting from adapter {init_adapter} (digest {init_digest[:12]})")  # type: ignore[index]
    head = _Head(encoder, len(data.classes))
    model.to(device)
    head.to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(
        params, lr=options.learning_rate, weight_decay=options.weight_decay
    )
    warmup = int(options.warmup_ratio * total)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)  # type: ignore[no-untyped-call]
    trainable = sum(p.numel() for p in params)
    log(
        f"fine-tuning {encoder.spec.name}: LoRA r={options.rank} alpha={options.alpha} on "
        f"{len(targets)} Linear layers + head, {trainable:,} trainable "
        f"parameters; {len(ids):,} rows, {total:,} steps of {options.batch_size} on {device}"
        f"{' (bf16 autocast)' if use_bf16 else ''}"
    )

    start = 0
    earlier_seconds: float | None = 0.0  # training time of the processes before this one
    losses: list[dict[str, float]] = []
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state.get("key") != key:
            raise FinetuneError(
                f"checkpoint {ckpt_path} belongs to another run; delete {ckpt_dir} to start over."
            )
        set_peft_model_state_dict(model, state["lora"])
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start = int(state["step"])
        losses = list(state["losses"])
        earlier_seconds = state.get("seconds")
        log(f"resuming from checkpoint {ckpt_path} at step {start:,} of {total:,}")

    def save_checkpoint(step: int) -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}.tmp")
        torch.save(
            {
                "key": key,
                "step": step,
                "lora": get_peft_model_state_dict(model),
                "head": head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "losses": losses,
                "seconds": None
                if earlier_seconds is None
                else earlier_seconds + time.perf_counter() - started,
            },
            tmp,
        )
        tmp.replace(ckpt_path)

    model.train()
    head.train()
    started = time.perf_counter()
    window_loss, window_n = 0.0, 0
    batches: list[NDArray[np.int64]] = []
    current_epoch = -1
    lengths = [len(x) for x in ids]
    with tqdm(
        total=total, initial=start, desc="Fine-tuning", unit="step", disable=not progress
    ) as bar:
        try:
            for step in range(start, total):
                epoch, index = divmod(step, steps_per_epoch)
                if epoch != current_epoch:
                    batches = epoch_batches(lengths, options.batch_size, options.seed, epoch)
                    current_epoch = epoch
                rows = batches[index]
                input_ids, mask = encoder.pad([ids[i] for i in rows])
                input_ids, mask = input_ids.to(device), mask.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                    logits = head(hidden, mask)
                per_row = torch.nn.functional.cross_entropy(
                    logits.float(), labels[rows].to(device), reduction="none"
                )
                w = row_weight[rows].to(device)
                loss = (per_row * w).sum() / w.sum()
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)

                window_loss += float(loss.detach())
                window_n += 1
                bar.update(1)
                bar.set_postfix(loss=f"{window_loss / window_n:.4f}", refresh=False)
                done = step + 1
                if done % options.checkpoint_every == 0 or done == total:
                    losses.append({"step": done, "loss": window_loss / window_n})
                    window_loss, window_n = 0.0, 0
                    save_checkpoint(done)
        except KeyboardInterrupt:
            last = losses[-1]["step"] if losses else 0
            log(
                f"\ninterrupted; the last checkpoint (step {int(last):,} of {total:,}) is in "
                f"{ckpt_dir}: run the same command again to resume from it"
            )
            raise

    seconds = time.perf_counter() - started

    output.mkdir(parents=True, exist_ok=True)
    for peft_config in model.peft_config.values():
        # where the base lay on the training machine is not part of the adapter
        peft_config.base_model_name_or_path = encoder.spec.name
    with warnings.catch_warnings():
        # peft looks for the base's config on the hub to see whether the vocabulary changed;
        # offline it warns. LoRA here never touches the embeddings.
        warnings.filterwarnings("ignore", "Could not find a config file", UserWarning)
        model.save_pretrained(str(output))
    (output / "README.md").unlink(missing_ok=True)  # peft's blank model card
    _canonical_config(output / ADAPTER_CONFIG)
    _store_half(output / ADAPTER_WEIGHTS)
    digest = adapter_digest(output)
    log(
        f"wrote adapter {output} ({sum(f.stat().st_size for f in output.iterdir()) / 1e6:.1f} MB,"
        f" digest {digest[:12]}) after {total:,} steps, {seconds / 60:.1f} min"
    )
    return FinetuneResult(
        adapter_dir=output,
        adapter_digest=digest,
        steps=total,
        seconds=seconds,
        total_seconds=None if earlier_seconds is None else earlier_seconds + seconds,
        losses=losses,
        resumed_from=start,
        device=str(device),
        bf16=use_bf16,
    )
