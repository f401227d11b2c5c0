"""Train a tiny multilingual BLOOM on the shipped PUD text and save its checkpoints.

The checkpoints are a real, if small, training trajectory to probe: the extractor loads
``OUT/step_<N>`` with ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained`` exactly
as it loads a hub revision. ``OUT/manifest.json`` lists them; it is written last, so a
directory with a manifest is complete.

A seeded tenth of each language's sentences (:func:`split_held_out`) is held out: neither
the model nor its BPE tokenizer is trained on it, and the loss the manifest records for
each checkpoint is measured on it (:func:`held_out_loss`).

Training is deterministic for a given config, torch version and thread count: the
tokenizer is trained without randomness, the weights are initialised under a forked and
seeded torch RNG (the caller's RNG state is left alone), and batches come from a seeded
numpy generator.

This module imports torch, transformers and tokenizers at import time; nothing else in
xalign imports it at import time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import BloomConfig, BloomForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as transformers_logging

from xalign.data import PUD_LANGUAGES, pud_files
from xalign.errors import XalignError
from xalign.treebank.reader import read_conllu

__all__ = [
    "HELD_OUT_FRACTION",
    "MANIFEST_NAME",
    "TOY_MODEL_ID",
    "ToyCheckpointError",
    "ToyConfig",
    "ToyManifest",
    "held_out_loss",
    "read_manifest",
    "split_held_out",
    "train_toy_checkpoints",
]

logger = logging.getLogger(__name__)

TOY_MODEL_ID = "xalign/toy-bloom"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_IN_PROGRESS_NAME = ".toy-in-progress.json"
# BLOOM's own order, so that the ids match bigscience/bloom-*'s (unk 0, bos 1, eos 2, pad 3).
_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
_N_BYTES = 256
_REMEDY = "choose another directory or overwrite it (--overwrite, overwrite=True)"


class ToyCheckpointError(XalignError, ValueError):
    """A toy-checkpoint directory or config that cannot be used as asked."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToyConfig:
    """What to train and when to save.

    Parameters
    ----------
    steps
        Optimizer steps after which to save a checkpoint, strictly increasing; 0 is the
        initialisation. Training runs to the last one.
    hidden_size, n_layer, n_head
        The BLOOM shape; ``n_head`` must divide ``hidden_size``.
    vocab_size
        Target size of the byte-level BPE vocabulary (special tokens and the 256 bytes
        included); the tokenizer may stop short of it on little text.
    batch_size, learning_rate
        Sentences per step and the AdamW learning rate (constant, no warm-up).
    max_length
        Tokens per sentence, ``</s>`` included; longer sentences are truncated.
    seed
        Seed of the initialisation, of the batch order and of which sentences are held out.
    languages
        PUD languages whose text is trained on (all but the held-out sentences).
    """

    steps: tuple[int, ...] = (0, 50, 100, 200, 300, 400)
    hidden_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    vocab_size: int = 8000
    batch_size: int = 32
    learning_rate: float = 2e-3
    max_length: int = 64
    seed: int = 0
    languages: tuple[str, ...] = PUD_LANGUAGES

    def __post_init__(self) -> None:
        problems = []
        if not self.steps or any(s < 0 for s in self.steps):
            problems.append(f"steps must be a non-empty tuple of integers >= 0, got {self.steps!r}")
        elif any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            problems.append(f"steps must be strictly increasing, got {self.steps!r}")
        for name in ("hidden_size", "n_layer", "n_head", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_head >= 1 and self.hidden_size % self.n_head:
            problems.append(f"n_head ({self.n_head}) must divide hidden_size ({self.hidden_size})")
        if self.vocab_size < _N_BYTES + len(_SPECIAL_TOKENS):
            problems.append(
                f"vocab_size must be >= {_N_BYTES + len(_SPECIAL_TOKENS)} "
                f"(256 bytes and {len(_SPECIAL_TOKENS)} special tokens), got {self.vocab_size!r}"
            )
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.max_length < 2:
            problems.append(f"max_length must be >= 2, got {self.max_length!r}")
        unknown = [lang for lang in self.languages if lang not in PUD_LANGUAGES]
        if not self.languages or unknown or len(set(self.languages)) != len(self.languages):
            problems.append(
                f"languages must be distinct PUD languages ({', '.join(PUD_LANGUAGES)}), "
                f"got {self.languages!r}"
            )
        if problems:
            raise ToyCheckpointError("invalid ToyConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToyConfig:
        """Inverse of :meth:`to_dict`."""
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


@dataclass(frozen=True, kw_only=True, slots=True)
class ToyManifest:
    """What ``OUT/manifest.json`` says about a finished toy run.

    Parameters
    ----------
    model_id
        Name to record as the model, ``xalign/toy-bloom``.
    checkpoints
        ``(step, path)`` pairs, the path relative to the output directory.
    config
        The :class:`ToyConfig` trained, as :meth:`ToyConfig.to_dict`.
    losses
        ``(step, loss)`` pairs: the held-out loss of that step's weights, the mean next-token
        cross-entropy (nats per token) over every held-out sentence, which training never
        sees (nor the tokenizer's training).
    n_parameters
        Parameters of the model (tied embeddings counted once).
    sentences
        Training sentences per language.
    held_out
        Held-out sentences per language: a seeded :data:`HELD_OUT_FRACTION` of each
        language's (at least one), the same for the same seed.
    versions
        Versions of the libraries that trained it (determinism holds within them).
    """

    model_id: str
    checkpoints: tuple[tuple[int, str], ...]
    config: dict[str, Any]
    losses: tuple[tuple[int, float], ...]
    n_parameters: int
    sentences: dict[str, int] = field(default_factory=dict)
    held_out: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> tuple[int, ...]:
        """The saved steps, in order."""
        return tuple(step for step, _ in self.checkpoints)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with a format version."""
        return {
            "format_version": FORMAT_VERSION,
            "model_id": self.model_id,
            "checkpoints": [{"step": step, "path": path} for step, path in self.checkpoints],
            "config": self.config,
            "losses": [{"step": step, "loss": loss} for step, loss in self.losses],
            "n_parameters": self.n_parameters,
            "sentences": self.sentences,
            "held_out": self.held_out,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToyManifest:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ToyCheckpointError
            If the format version is unknown or a field is missing.
        """
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ToyCheckpointError(
                f"toy manifest format version {version!r} is not supported (expected {FORMAT_VERSION})"
            )
        try:
            return cls(
                model_id=str(data["model_id"]),
                checkpoints=tuple((int(c["step"]), str(c["path"])) for c in data["checkpoints"]),
                config=dict(data["config"]),
                losses=tuple((int(c["step"]), float(c["loss"])) for c in data["losses"]),
                n_parameters=int(data["n_parameters"]),
                sentences={str(k): int(v) for k, v in data.get("sentences", {}).items()},
                held_out={str(k): int(v) for k, v in data.get("held_out", {}).items()},
                versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ToyCheckpointError(f"malformed toy manifest: {exc!r}") from exc


def read_manifest(out_dir: str | os.PathLike[str]) -> ToyManifest:
    """The manifest of a finished toy run in ``out_dir``.

    Raises
    ------
    ToyCheckpointError
        If there is no readable manifest.
    """
    path = Path(out_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ToyCheckpointError(f"{path}: no toy-checkpoint manifest") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ToyCheckpointError(f"{path}: unreadable toy-checkpoint manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise ToyCheckpointError(f"{path}: malformed toy manifest: not a JSON object")
    return ToyManifest.from_dict(data)


def train_toy_checkpoints(
    out_dir: str | os.PathLike[str],
    config: ToyConfig = ToyConfig(),
    *,
    on_step: Callable[[int, float], None] | None = None,
    overwrite: bool = False,
) -> ToyManifest:
    """Train a toy BLOOM on PUD text and save checkpoints at ``config.steps``.

    Writes ``out_dir/step_<N>/`` (model and tokenizer, loadable with
    ``from_pretrained``) for every step, then ``out_dir/manifest.json``.

    Parameters
    ----------
    out_dir
        Directory to write; created if missing.
    config
        What to train.
    on_step
        Called after every optimizer step with the step number (from 1) and the loss
        that step minimised; for a progress bar.
    overwrite
        Discard the checkpoints and manifest ``out_dir`` holds and train afresh.

    Returns
    -------
    ToyManifest
        The manifest written, or the one found if ``out_dir`` already holds a finished
        run of the same config (then nothing is trained).

    Raises
    ------
    ToyCheckpointError
        If ``out_dir`` holds anything else and ``overwrite`` is false.
    """
    out = Path(out_dir)
    existing = _check_out_dir(out, config, overwrite=overwrite)
    if existing is not None:
        logger.info("%s already holds toy checkpoints of this config; reusing them", out)
        return existing
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / _IN_PROGRESS_NAME, {"config": config.to_dict()})

    texts, held_out = split_held_out(_load_texts(config.languages), seed=config.seed)
    corpus = [text for lang in config.languages for text in texts[lang]]
    started = time.perf_counter()
    tokenizer = _train_tokenizer(corpus, config)
    logger.info(
        "trained a byte-level BPE tokenizer of %d tokens in %.1f s",
        len(tokenizer),
        time.perf_counter() - started,
    )
    sequences = _encode(tokenizer, corpus, config)
    held_out_sequences = _encode(tokenizer, [t for lang in config.languages for t in held_out[lang]], config)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = BloomForCausalLM(_model_config(config, tokenizer))
    n_parameters = sum(p.numel() for p in model.parameters())
    logger.info("toy BLOOM with %d parameters, %d training sentences", n_parameters, len(sequences))

    batches = _batches(sequences, config, pad_id=_pad_id(tokenizer))
    losses = _train(model, tokenizer, batches, out, config, held_out=held_out_sequences, on_step=on_step)

    manifest = ToyManifest(
        model_id=TOY_MODEL_ID,
        checkpoints=tuple((step, _step_dir_name(step)) for step in config.steps),
        config=config.to_dict(),
        losses=tuple(losses),
        n_parameters=n_parameters,
        sentences={lang: len(texts[lang]) for lang in config.languages},
        held_out={lang: len(held_out[lang]) for lang in config.languages},
        versions={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    )
    _write_json(out / MANIFEST_NAME, manifest.to_dict())
    (out / _IN_PROGRESS_NAME).unlink()
    logger.info("wrote %d toy checkpoints to %s", len(config.steps), out)
    return manifest


def _check_out_dir(out: Path, config: ToyConfig, *, overwrite: bool) -> ToyManifest | None:
    """The manifest to reuse, or None once ``out`` is ready for a fresh run."""
    if out.exists() and not out.is_dir():
        raise ToyCheckpointError(f"{out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return None
    if overwrite:
        _remove_our_files(out)
        return None
    if (out / MANIFEST_NAME).exists():
        manifest = read_manifest(out)
        if manifest.config != config.to_dict():
            raise ToyCheckpointError(
                f"{out} holds toy checkpoints of another config "
                f"({_config_difference(manifest.config, config.to_dict())}); "
                f"{_REMEDY}"
            )
        if not manifest.held_out:
            # Written before sentences were held out: its "held-out" losses are training losses.
            raise ToyCheckpointError(
                f"{out} holds toy checkpoints trained on every sentence, from before xalign held some "
                f"out (its manifest's losses are not held-out losses); {_REMEDY}"
            )
        missing = [path for _, path in manifest.checkpoints if not (out / path / "config.json").is_file()]
        if missing:
            raise ToyCheckpointError(
                f"{out}: manifest lists checkpoints that are missing ({', '.join(missing)}); {_REMEDY}"
            )
        return manifest
    in_progress = out / _IN_PROGRESS_NAME
    if in_progress.exists():
        try:
            previous = json.loads(in_progress.read_text(encoding="utf-8")).get("config")
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = None
        if previous == config.to_dict():
            # An interrupted run of the same config: training is deterministic, so start over.
            logger.info("%s holds an unfinished run of this config; training it again", out)
            _remove_our_files(out)
            return None
        raise ToyCheckpointError(f"{out} holds an unfinished toy run of another config; {_REMEDY}")
    raise ToyCheckpointError(f"{out} is not empty and holds no toy checkpoints; {_REMEDY}")


def _config_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} asked" for k in keys if old.get(k) != new.get(k)
    )


def _remove_our_files(out: Path) -> None:
    """Delete what a toy run writes, and nothing else."""
    for path in out.iterdir():
        name = path.name
        if name.removesuffix(".partial") in (MANIFEST_NAME, _IN_PROGRESS_NAME):
            path.unlink()
        elif path.is_dir() and (name.startswith("step_") or name.startswith(".step_")):
            shutil.rmtree(path)
    leftover = sorted(p.name for p in out.iterdir())
    if leftover:
        logger.warning("%s: left files that a toy run does not write: %s", out, ", ".join(leftover))


def _load_texts(languages: Sequence[str]) -> dict[str, list[str]]:
    texts = {}
    for language, path in zip(languages, pud_files(tuple(languages)), strict=True):
        texts[language] = [s.text for s in read_conllu(path) if s.text.strip()]
    return texts


def _train_tokenizer(texts: Sequence[str], config: ToyConfig) -> PreTrainedTokenizerFast:
    """Byte-level BPE, GPT-2 style; offsets exclude the leading space of a word."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    unk, bos, eos, pad = _SPECIAL_TOKENS
    # Like BLOOM's, it adds no special tokens when encoding: the model is trained on
    # plain sentence tokens (then </s>), which is what the extractor feeds it.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=unk,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        padding_side="right",
    )


def _pad_id(tokenizer: PreTrainedTokenizerFast) -> int:
    pad_id = tokenizer.pad_token_id
    assert isinstance(pad_id, int)
    return pad_id


def _encode(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], config: ToyConfig) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    sequences = [[*ids, eos][: config.max_length] for ids in encoded]
    truncated = sum(len(ids) + 1 > config.max_length for ids in encoded)
    if truncated:
        logger.info("%d of %d sentences truncated to %d tokens", truncated, len(texts), config.max_length)
    return sequences


def _model_config(config: ToyConfig, tokenizer: PreTrainedTokenizerFast) -> BloomConfig:
    return BloomConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        n_layer=config.n_layer,
        n_head=config.n_head,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _batches(
    sequences: Sequence[Sequence[int]], config: ToyConfig, *, pad_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (input_ids, attention_mask) batches, reshuffled every epoch, right-padded."""
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    while True:
        while len(order) < config.batch_size:
            order.extend(int(i) for i in rng.permutation(len(sequences)))
        chosen, order = order[: config.batch_size], order[config.batch_size :]
        yield _padded([sequences[i] for i in chosen], pad_id=pad_id)


def _padded(sequences: Sequence[Sequence[int]], *, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of ``sequences``, right-padded to the longest."""
    width = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    return ids, mask


HELD_OUT_FRACTION = 0.1
"""Share of each language's sentences the toy never trains on (nor its tokenizer); its
held-out loss is measured on them."""


def split_held_out(
    texts: Mapping[str, Sequence[str]], *, seed: int
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each language's sentences as (training, held out): a seeded :data:`HELD_OUT_FRACTION`
    (at least one sentence) held out, chosen by a permutation that depends on the seed and the
    language only; both keep the sentences' order."""
    training: dict[str, list[str]] = {}
    held_out: dict[str, list[str]] = {}
    for language, sentences in texts.items():
        n_held = max(1, round(HELD_OUT_FRACTION * len(sentences)))
        key = [seed, *language.encode()]
        chosen = set(np.random.default_rng(key).permutation(len(sentences))[:n_held].tolist())
        training[language] = [s for i, s in enumerate(sentences) if i not in chosen]
        held_out[language] = [s for i, s in enumerate(sentences) if i in chosen]
    return training, held_out


def held_out_loss(
    model: BloomForCausalLM, sequences: Sequence[Sequence[int]], *, pad_id: int, batch_size: int = 64
) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` over every token of
    ``sequences``, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(sequences), batch_size):
                ids, mask = _padded(sequences[start : start + batch_size], pad_id=pad_id)
                total += float(_loss(model, ids, mask, reduction="sum"))
                tokens += int(mask[:, 1:].sum())
    finally:
        model.train(was_training)
    return total / tokens


def _loss(
    model: BloomForCausalLM, ids: torch.Tensor, mask: torch.Tensor, *, reduction: str = "mean"
) -> torch.Tensor:
    """Next-token cross-entropy over real tokens only (their mean, or with ``reduction="sum"``
    their sum).

    The LM head runs on the unpadded positions alone, which saves a quarter of a step.
    """
    hidden = model.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask[:, 1:].bool()
    logits = model.lm_head(hidden[:, :-1][keep])
    return F.cross_entropy(logits, ids[:, 1:][keep], reduction=reduction)


def _train(
    model: BloomForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    out: Path,
    config: ToyConfig,
    *,
    held_out: Sequence[Sequence[int]],
    on_step: Callable[[int, float], None] | None,
) -> list[tuple[int, float]]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    model.train()
    saved = set(config.steps)
    losses: list[tuple[int, float]] = []
    step = 0
    started = time.perf_counter()
    pad_id = _pad_id(tokenizer)
    while True:
        if step in saved:
            losses.append((step, held_out_loss(model, held_out, pad_id=pad_id)))
            _save(model, tokenizer, out, step)
            if step == config.steps[-1]:
                break
        ids, mask = next(batches)
        loss = _loss(model, ids, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if on_step is not None:
            on_step(step, float(loss.detach()))
    for saved_step, saved_loss in losses:
        logger.info("step %d: held-out loss %.3f", saved_step, saved_loss)
    logger.info("trained %d steps in %.1f s", config.steps[-1], time.perf_counter() - started)
    return losses


def _step_dir_name(step: int) -> str:
    return f"step_{step}"


def _save(model: BloomForCausalLM, tokenizer: PreTrainedTokenizerFast, out: Path, step: int) -> None:
    """Write one checkpoint next to its final place, then rename it there."""
    final = out / _step_dir_name(step)
    partial = out / f".{_step_dir_name(step)}.partial"
    for path in (final, partial):
        if path.exists():
            shutil.rmtree(path)
    with _no_transformers_progress_bars():
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    partial.rename(final)


@contextmanager
def _no_transformers_progress_bars() -> Iterator[None]:
    """Silence the bars that ``save_pretrained`` draws: progress is the caller's to show."""
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
