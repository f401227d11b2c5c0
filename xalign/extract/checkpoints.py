"""Which checkpoints to extract, and loading them: hub revisions or local directories.

A :class:`Checkpoint` names a training step and where its weights are: a Hugging Face
model id with a revision (``bigscience/bloom-560m-intermediate`` at ``global_step1000``)
or a local directory written by ``save_pretrained``. Both load through transformers'
``from_pretrained``, so a toy checkpoint and a published one take the same path.

torch and transformers are imported inside :func:`load_checkpoint` only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xalign.errors import XalignError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "LoadedCheckpoint",
    "ModelShape",
    "bloom_intermediate",
    "checkpoint_files",
    "from_directory",
    "inspect_checkpoint",
    "load_checkpoint",
    "load_tokenizer",
    "needed_files",
    "parse_revision",
    "source_of",
    "weights_fingerprint",
]

_GLOBAL_STEP = re.compile(r"^global_step(\d+)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class CheckpointError(XalignError, ValueError):
    """A checkpoint that cannot be found or loaded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Checkpoint:
    """One training checkpoint: its step and where its weights are."""

    step: int
    source: str
    """A hub model id, or a local directory."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); None for a local directory."""

    @property
    def label(self) -> str:
        """What the store records as the step's revision."""
        return self.revision if self.revision is not None else self.source

    @property
    def is_local(self) -> bool:
        return self.revision is None


def bloom_intermediate(model_id: str, steps: list[int] | tuple[int, ...]) -> list[Checkpoint]:
    """Checkpoints of a BigScience ``*-intermediate`` repository: revision ``global_step<N>``."""
    return [Checkpoint(step=step, source=model_id, revision=f"global_step{step}") for step in steps]


def parse_revision(model_id: str, text: str) -> Checkpoint:
    """``global_step1000`` or ``STEP=REVISION`` (e.g. ``0=main``) as a checkpoint of ``model_id``.

    Raises
    ------
    CheckpointError
        If no step can be read from ``text``.
    """
    step_text, sep, revision = text.partition("=")
    if sep:
        if not step_text.strip().isdigit() or not revision:
            raise CheckpointError(f"revision {text!r}: expected STEP=REVISION, e.g. 0=main")
        return Checkpoint(step=int(step_text), source=model_id, revision=revision)
    match = _GLOBAL_STEP.match(text)
    if match is None:
        raise CheckpointError(
            f"cannot tell the step of revision {text!r}; name it global_step<N> or give STEP={text}"
        )
    return Checkpoint(step=int(match[1]), source=model_id, revision=text)


def from_directory(directory: str | os.PathLike[str]) -> tuple[str, list[Checkpoint]]:
    """The model id and checkpoints listed in a directory's ``manifest.json``.

    The manifest (as ``xalign toy-checkpoints`` writes it) is
    ``{"model_id": ..., "checkpoints": [{"step": 0, "path": "step_0"}, ...]}``, paths
    relative to the directory.

    Raises
    ------
    CheckpointError
        If the directory has no readable manifest.
    """
    manifest_path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        checkpoints = [
            Checkpoint(step=int(entry["step"]), source=str((Path(directory) / entry["path"]).resolve()))
            for entry in manifest["checkpoints"]
        ]
        return str(manifest["model_id"]), checkpoints
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"{directory}: no manifest.json (make one with xalign toy-checkpoints)"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{manifest_path}: not a checkpoint manifest ({exc})") from exc


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedCheckpoint:
    """A model ready for forward passes, with what the store records about it."""

    checkpoint: Checkpoint
    model: Any
    tokenizer: Any
    commit: str
    """Resolved commit of a hub revision; empty for a local directory."""
    fingerprint: str
    tokenizer_hash: str


def load_checkpoint(
    checkpoint: Checkpoint, *, device: str = "cpu", compute_dtype: str = "float32"
) -> LoadedCheckpoint:
    """Load a checkpoint's model (eval mode) and tokenizer.

    A hub checkpoint is resolved to a local snapshot first (its config, tokenizer and one
    weight format, :func:`needed_files`), from the cache when the hub is unreachable or
    ``HF_HUB_OFFLINE=1``; the snapshot's folder name is its commit.

    Raises
    ------
    CheckpointError
        If the model or revision does not exist, is not cached offline, or cannot be loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the CLI shows its own progress
    path, commit = _resolve(checkpoint)
    tokenizer = _fast_tokenizer(path, checkpoint)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, compute_dtype))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load {checkpoint.label}: {exc}") from exc
    model.eval().to(device)
    return LoadedCheckpoint(
        checkpoint=checkpoint,
        model=model,
        tokenizer=tokenizer,
        commit=commit,
        fingerprint=weights_fingerprint(model),
        tokenizer_hash=tokenizer_digest(tokenizer),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelShape:
    """What a store's dims need of a model: hidden states per token, and their width."""

    hidden_states: int
    """Embeddings plus one per block."""
    neurons: int


def inspect_checkpoint(checkpoint: Checkpoint) -> tuple[Any, str, ModelShape]:
    """A checkpoint's tokenizer, tokenizer hash and shape, without loading its weights."""
    from transformers import AutoConfig

    path, _ = _resolve(checkpoint)
    tokenizer = _fast_tokenizer(path, checkpoint)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load {checkpoint.label}: {exc}") from exc
    shape = ModelShape(hidden_states=int(config.num_hidden_layers) + 1, neurons=int(config.hidden_size))
    return tokenizer, tokenizer_digest(tokenizer), shape


def checkpoint_files(checkpoint: Checkpoint) -> str:
    """The local directory of a checkpoint's files (a hub revision is resolved through the cache).

    Raises
    ------
    CheckpointError
        As :func:`load_checkpoint` does.
    """
    return _resolve(checkpoint)[0]


def load_tokenizer(path: str, checkpoint: Checkpoint) -> Any:
    """The fast tokenizer in ``path`` (the files of ``checkpoint``)."""
    return _fast_tokenizer(path, checkpoint)


def _fast_tokenizer(path: str, checkpoint: Checkpoint) -> Any:
    """A checkpoint's tokenizer; a fast one, since words are aligned by character offsets."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load {checkpoint.label}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise CheckpointError(f"{checkpoint.label}: xalign needs a fast tokenizer (for character offsets)")
    return tokenizer


def tokenizer_digest(tokenizer: Any) -> str:
    """A hash of a fast tokenizer's whole definition (vocabulary, merges, normalisation)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def _resolve(checkpoint: Checkpoint) -> tuple[str, str]:
    """Local path of a checkpoint's files, and its commit ('' for a local directory)."""
    if checkpoint.is_local:
        if not Path(checkpoint.source).is_dir():
            raise CheckpointError(f"no checkpoint directory at {checkpoint.source}")
        return checkpoint.source, ""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = snapshot_download(
            checkpoint.source, revision=checkpoint.revision, allow_patterns=_wanted_files(checkpoint)
        )
    except LocalEntryNotFoundError as exc:
        raise CheckpointError(
            f"{checkpoint.source} at revision {checkpoint.revision} is not in the local Hugging Face cache "
            "and the hub cannot be reached (HF_HUB_OFFLINE, or no network)"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"unknown model or revision: {checkpoint.source} at {checkpoint.revision} ({exc})"
        ) from exc
    name = Path(path).name
    return path, name if _COMMIT.match(name) else ""


_CONFIG_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.model",  # sentencepiece
)
# The names transformers loads weights from (one file, or shards an index lists); not, say,
# a second copy in another layout (Mistral's consolidated.safetensors) or an adapter's.
_SAFETENSORS = ("model*.safetensors", "model.safetensors.index.json")
_PYTORCH = ("pytorch_model*.bin", "pytorch_model.bin.index.json")


def needed_files(files: Iterable[str]) -> list[str]:
    """The ``allow_patterns`` that fetch what a checkpoint needs from a revision holding
    ``files``: its config and tokenizer, and one copy of its weights (safetensors when the
    revision has them, else PyTorch's .bin), never the Flax, TensorFlow or ONNX copies."""
    has_safetensors = any(
        "/" not in name and fnmatch.fnmatchcase(name, pattern) for name in files for pattern in _SAFETENSORS
    )
    return [*_CONFIG_FILES, *(_SAFETENSORS if has_safetensors else _PYTORCH)]


def _wanted_files(checkpoint: Checkpoint) -> list[str]:
    """:func:`needed_files` of the revision as the hub lists it; offline, or when the listing
    fails, both weight formats: ``snapshot_download`` then reads the cache, which holds the
    format fetched before, or says what is wrong."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return [*_CONFIG_FILES, *_SAFETENSORS, *_PYTORCH]
    try:
        files = HfApi().list_repo_files(checkpoint.source, revision=checkpoint.revision)
    # Any failure: the hub's HTTP errors, and connection errors, which are not OSErrors since
    # huggingface_hub moved from requests to httpx.
    except Exception:
        return [*_CONFIG_FILES, *_SAFETENSORS, *_PYTORCH]
    return needed_files(files)


def source_of(checkpoint: Checkpoint) -> dict[str, str]:
    """Where a checkpoint's files come from, for the provenance: the model id, revision and
    resolved commit of a hub checkpoint; the directory of a local one (never a cache path)."""
    if checkpoint.is_local:
        return {"directory": checkpoint.source}
    _, commit = _resolve(checkpoint)
    return {"model_id": checkpoint.source, "revision": str(checkpoint.revision), "commit": commit}


def weights_fingerprint(model: Any) -> str:
    """SHA-256 over every parameter and buffer, by name: equal for identical weights.

    Tied weights are hashed once. Published BLOOM intermediate checkpoints include
    duplicates (e.g. 560m step 500k = step 10k); equal fingerprints reveal them.
    """
    import torch

    digest = hashlib.sha256()
    seen: set[int] = set()
    for name, tensor in sorted(model.state_dict().items()):
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
