"""Low-rank adapters (LoRA, the ``peft`` library) for the encoder: files, digest, merge.

A fine-tuned encoder is stored as the base encoder's name plus a small adapter folder
(``adapter_config.json`` + ``adapter_model.safetensors``, a few MB). At load time the adapter is
checked against the digest the artifact recorded and merged into the base weights, so serving
runs the same plain transformer as before, at the same speed.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)


class AdapterError(Exception):
    """The adapter is missing, altered or does not fit the encoder. The message says the fix."""


def adapter_digest(folder: str | Path) -> str:
    """SHA-256 over the adapter's config and weights files: names exactly these weights."""
    folder = Path(folder)
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise AdapterError(
            f"adapter folder {folder} lacks {', '.join(missing)}. Copy the whole adapter folder "
            "that sentiment-train --finetune wrote next to the artifact, or retrain it."
        )
    h = hashlib.sha256()
    for name in ADAPTER_FILES:
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def lora_targets(model: Any) -> list[str]:
    """Full names of every Linear layer in the transformer blocks (BERT's pooler left out: the
    embedding never uses it)."""
    import torch

    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.startswith("pooler")
    ]


def merge_adapter(
    model: Any, folder: str | Path, *, expected_digest: str | None
) -> tuple[Any, str]:
    """``model`` with the adapter in ``folder`` merged into its weights (a plain model again),
    and the adapter's digest.

    ``expected_digest`` (what the artifact recorded) must match the files; None skips the check.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterError(
            f"adapter folder {folder} not found. A fine-tuned encoder needs it: copy the adapter "
            "folder that sentiment-train --finetune wrote next to the artifact (and keep the two "
            "together), or retrain."
        )
    digest = adapter_digest(folder)
    if expected_digest is not None and digest != expected_digest:
        raise AdapterError(
            f"adapter {folder} is not the one the artifact was trained with (digest "
            f"{digest[:12]}, artifact expects {expected_digest[:12]}). Restore the matching "
            "adapter folder, or retrain the artifact on this adapter with sentiment-train "
            f"--adapter {folder}."
        )
    from peft import PeftModel

    try:
        with warnings.catch_warnings():
            # transformers 5 deprecates an attribute that peft still reads: not ours to fix
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            wrapped = PeftModel.from_pretrained(model, str(folder))
            return wrapped.merge_and_unload(), digest
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise AdapterError(
            f"adapter {folder} does not fit this encoder ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}). It was trained on another "
            f"base model (see base_model_name_or_path in {folder / ADAPTER_CONFIG}); use that "
            "encoder or retrain the adapter."
        ) from None
