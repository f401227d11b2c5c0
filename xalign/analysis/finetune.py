"""Zero-shot cross-lingual transfer by fine-tuning: the paper's measure, independent of the overlap.

For each checkpoint of a store, the model it was extracted from gets a token-classification head
for UPOS (as XTREME's UD-POS task) and is fine-tuned on the train sentences of a source
language; the epoch is chosen on the source's dev sentences, and accuracy is measured on the
test sentences of every language. Unlike probe transfer (:mod:`xalign.analysis.transfer`), which
fits a classifier on the very hidden states the overlap reads, this changes the model and reads
no stored activation, so its agreement with the overlap is not built in.

Choices, recorded with the results:

- Sentences, not words, are split (80/10/10), by a seeded permutation of the sentence ids of
  every language together, so that the translations of a test sentence are test sentences in
  every language of a parallel treebank: the source never trains on what a target is tested on.
- Each word is tokenised alone (with a leading space after the first word of a sentence), and
  its label sits on its first subword; the others are ignored (the usual first-subword
  convention, e.g. XTREME's). A sentence longer than ``max_length`` subwords is cut between
  words into pieces that fit, so every word is labelled and scored.
- The tag set is the UPOS tags of the source's train words; a target word whose tag the source
  never saw counts as an error. Words without a tag (``_``) are neither trained on nor scored; a
  word that no subword encodes is scored as an error.
- Full fine-tuning by default; LoRA (``peft``) as an option for large models. AdamW at a constant
  learning rate; seeded; on CPU, a fixed number of torch threads per task (``threads``) makes a
  run bit-identical whatever the scheduler.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xalign import dims
from xalign.analysis.engine import SlabJob, select_values
from xalign.store.outputs import ResultsError
from xalign.store.store import Store

__all__ = [
    "FINETUNE_MEASURE",
    "FINETUNE_VARIABLES",
    "FinetuneParams",
    "checkpoint_of",
    "finetune_job",
    "finetune_slab",
    "sentence_splits",
    "stored_checkpoints",
]

FINETUNE_MEASURE = (
    "fine-tuned transfer: the model fine-tuned for UPOS on the source's train sentences, "
    "tested on each target's test sentences (independent of the stored hidden states)"
)
"""What the fine-tuned transfer measures (recorded in its attrs)."""

FINETUNE_VARIABLES = ("accuracy", "baseline", "n_test", "dev_accuracy", "best_epoch", "cpu_seconds")
"""The variables of a fine-tuned transfer result, besides its status."""

IGNORED = -100
"""The label of positions the loss and the accuracy skip (Hugging Face's convention)."""

_TORCH_STATE = threading.Lock()
"""torch's random generator and thread count are process-wide: fine-tuning tasks in one process
take turns, so that each is seeded alone (run them in parallel with processes or local:N)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FinetuneParams:
    """How the model is fine-tuned; stored with the results.

    Each field's ``help`` is also the text of its command-line option (``xalign finetune``).
    """

    sources: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "Language to fine-tune on (repeatable). Default: en where the store has it, "
            "else its first language.",
            "option": "source",
        },
    )
    epochs: int = field(
        default=3, metadata={"help": "Epochs; the best on the source's dev split is kept.", "min": 1}
    )
    learning_rate: float = field(
        default=5e-4, metadata={"help": "AdamW learning rate (constant).", "min": 0.0}
    )
    batch_size: int = field(default=16, metadata={"help": "Sentences per optimiser step.", "min": 1})
    max_length: int = field(
        default=128,
        metadata={"help": "Subwords per sequence; longer sentences are cut between words.", "min": 8},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay.", "min": 0.0})
    seed: int = field(default=0, metadata={"help": "Seed of the head's initialisation and the batch order."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the sentence split."})
    lora: bool = field(
        default=False,
        metadata={
            "help": "Fine-tune LoRA adapters (peft; pip install 'xalign[lora]') instead of every weight."
        },
    )
    lora_rank: int = field(default=8, metadata={"help": "Rank of the LoRA adapters.", "min": 1})
    threads: int = field(
        default=1,
        metadata={
            "help": "Torch threads per task (fixed, so results do not depend on the scheduler).",
            "min": 1,
        },
    )
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1 ..."})
    compute_dtype: str = field(
        default="float32",
        metadata={"help": "Weights' dtype while fine-tuning.", "choices": ("float32", "bfloat16", "float16")},
    )

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lora_rank", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.sources is not None:
            object.__setattr__(self, "sources", tuple(self.sources))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able parameters."""
        out = asdict(self)
        out["sources"] = None if self.sources is None else list(self.sources)
        return out

    @classmethod
    def from_dict(cls, parameters: Mapping[str, Any]) -> FinetuneParams:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in parameters.items() if k in known}
        if values.get("sources") is not None:
            values["sources"] = tuple(values["sources"])
        return cls(**values)


# --------------------------------------------------------------------------------------------
# Data: sentences of a language from the store, split by sentence id.


def sentence_splits(
    sentence_ids: Sequence[str], *, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, str]:
    """Sentence id -> split: distinct ids sorted, permuted with ``numpy.random.default_rng(seed)``;
    dev and test get ``ceil(fraction * n)`` ids each, train the rest."""
    ids = sorted(set(sentence_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    n_dev = math.ceil(fractions[1] * len(ids) - 1e-9)
    n_test = math.ceil(fractions[2] * len(ids) - 1e-9)
    out: dict[str, str] = {}
    for rank, index in enumerate(order):
        out[ids[index]] = (
            dims.SPLITS[2] if rank < n_test else dims.SPLITS[1] if rank < n_test + n_dev else dims.SPLITS[0]
        )
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class _Sentences:
    """The sentences of one language: word forms and UPOS tags, and each sentence's id."""

    ids: tuple[str, ...]
    forms: tuple[tuple[str, ...], ...]
    tags: tuple[tuple[str, ...], ...]


def _sentences(store: Store, language: str) -> _Sentences:
    labels = store.labels(language)
    index = np.asarray(labels[dims.SENTENCE_INDEX].values, dtype=np.int64)
    forms = np.asarray(labels[dims.FORM].values, dtype=object)
    tags = np.asarray(labels[dims.UPOS].values, dtype=object)
    ids = np.asarray(labels[dims.SENT_ID].values, dtype=object)
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    ends = np.r_[starts[1:], len(index)]
    return _Sentences(
        ids=tuple(str(ids[s]) for s in starts),
        forms=tuple(tuple(str(f) for f in forms[s:e]) for s, e in zip(starts, ends, strict=True)),
        tags=tuple(tuple(str(t) for t in tags[s:e]) for s, e in zip(starts, ends, strict=True)),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Encoded:
    """Sequences of subword ids with a label on each word's first subword (``IGNORED`` elsewhere)."""

    ids: tuple[tuple[int, ...], ...]
    labels: tuple[tuple[int, ...], ...]
    unencoded: int
    """Scored words that no subword encodes (each counts as an error)."""


def _encode(
    tokenizer: Any, sentences: _Sentences, chosen: Sequence[int], codes: Mapping[str, int], max_length: int
) -> _Encoded:
    """Encode the sentences ``chosen``; tags not in ``codes`` get code -1 (scored, never right)."""
    ids: list[tuple[int, ...]] = []
    labels: list[tuple[int, ...]] = []
    unencoded = 0
    for s in chosen:
        forms, tags = sentences.forms[s], sentences.tags[s]
        pieces = tokenizer(
            [(" " if i else "") + form for i, form in enumerate(forms)], add_special_tokens=False
        )
        current_ids: list[int] = []
        current_labels: list[int] = []
        for word_ids, tag in zip(pieces["input_ids"], tags, strict=True):
            scored = tag not in ("", "_")
            code = codes.get(tag, -1) if scored else IGNORED
            if not word_ids:
                unencoded += int(scored)
                continue
            word_ids = list(word_ids)[:max_length]
            if len(current_ids) + len(word_ids) > max_length:
                ids.append(tuple(current_ids))
                labels.append(tuple(current_labels))
                current_ids, current_labels = [], []
            current_ids += word_ids
            current_labels += [code] + [IGNORED] * (len(word_ids) - 1)
        if current_ids:
            ids.append(tuple(current_ids))
            labels.append(tuple(current_labels))
    return _Encoded(ids=tuple(ids), labels=tuple(labels), unencoded=unencoded)


# --------------------------------------------------------------------------------------------
# The model.


def checkpoint_of(store: Store, step: int) -> Any:
    """The :class:`~xalign.extract.checkpoints.Checkpoint` a store's ``step`` was extracted from:
    the local directory it records, else the model id at the hub revision it records."""
    from xalign.extract.checkpoints import Checkpoint

    revision = store.revisions[int(step)]
    if Path(revision).is_dir():
        return Checkpoint(step=int(step), source=revision)
    return Checkpoint(step=int(step), source=str(store.provenance.get("model_id", "")), revision=revision)


def _model(path: str, tags: Sequence[str], params: FinetuneParams) -> Any:
    import torch
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()  # "some weights are newly initialised": the head, as intended
    torch.manual_seed(params.seed)
    model = AutoModelForTokenClassification.from_pretrained(
        path,
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id={tag: i for i, tag in enumerate(tags)},
        dtype=getattr(torch, params.compute_dtype),
    )
    if params.lora:
        try:
            from peft import LoraConfig, TaskType, get_peft_model
        except ImportError as exc:
            raise ResultsError("--lora needs peft: pip install 'xalign[lora]'") from exc
        config = LoraConfig(
            task_type=TaskType.TOKEN_CLS,
            r=params.lora_rank,
            lora_alpha=2 * params.lora_rank,
            lora_dropout=0.0,
        )
        model = get_peft_model(model, config)
    return model.to(params.device)


def _batches(encoded: _Encoded, order: Sequence[int], size: int, pad: int) -> Any:
    import torch

    for start in range(0, len(order), size):
        chosen = order[start : start + size]
        width = max(len(encoded.ids[i]) for i in chosen)
        ids = torch.full((len(chosen), width), pad, dtype=torch.long)
        labels = torch.full((len(chosen), width), IGNORED, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, i in enumerate(chosen):
            n = len(encoded.ids[i])
            ids[row, :n] = torch.tensor(encoded.ids[i])
            labels[row, :n] = torch.tensor(encoded.labels[i])
            mask[row, :n] = 1
        yield ids, mask, labels


def _accuracy(model: Any, encoded: _Encoded, params: FinetuneParams, pad: int) -> tuple[float, int]:
    """Share of scored words tagged right (unencoded words count as errors), and their number."""
    import torch

    right = total = 0
    model.eval()
    with torch.no_grad():
        for ids, mask, labels in _batches(encoded, list(range(len(encoded.ids))), params.batch_size, pad):
            logits = model(input_ids=ids.to(params.device), attention_mask=mask.to(params.device)).logits
            predicted = logits.argmax(-1).cpu()
            scored = labels != IGNORED
            right += int(((predicted == labels) & scored).sum())
            total += int(scored.sum())
    total += encoded.unencoded
    return (right / total if total else math.nan), total


def _train(model: Any, train: _Encoded, dev: _Encoded, params: FinetuneParams, pad: int) -> tuple[float, int]:
    """Fine-tune ``model`` in place, keeping the weights of the best epoch on ``dev``."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    generator = torch.Generator().manual_seed(params.seed)
    best, best_epoch, best_state = -math.inf, 0, None
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(train.ids), generator=generator).tolist()
        for ids, mask, labels in _batches(train, order, params.batch_size, pad):
            loss = model(
                input_ids=ids.to(params.device),
                attention_mask=mask.to(params.device),
                labels=labels.to(params.device),
            ).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        accuracy, _ = _accuracy(model, dev, params, pad)
        if accuracy > best:
            best, best_epoch = accuracy, epoch
            best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return best, best_epoch


# --------------------------------------------------------------------------------------------
# One slab (a checkpoint), and the job over a store.


def finetune_slab(
    store: Store,
    step: int,
    sources: Sequence[str],
    targets: Sequence[str],
    params: FinetuneParams,
    checkpoints: Mapping[int, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Fine-tune the checkpoint of ``step`` on each source; accuracy on each target's test split."""
    import torch

    from xalign.extract.checkpoints import checkpoint_files, load_tokenizer, tokenizer_digest

    out = _empty(len(sources), len(targets))
    checkpoint = (checkpoints or {}).get(int(step)) or checkpoint_of(store, step)
    path = checkpoint_files(checkpoint)
    tokenizer = load_tokenizer(path, checkpoint)
    wanted = store.provenance.get("tokenizer_hash")
    if wanted and tokenizer_digest(tokenizer) != wanted:
        raise ResultsError(f"{checkpoint.label}: its tokenizer differs from the one the store was made with")
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    sentences = {language: _sentences(store, language) for language in dict.fromkeys([*sources, *targets])}
    split = sentence_splits([i for s in sentences.values() for i in s.ids], seed=params.split_seed)
    of = {
        language: {name: [i for i, sid in enumerate(s.ids) if split[sid] == name] for name in dims.SPLITS}
        for language, s in sentences.items()
    }
    with _TORCH_STATE:
        threads = torch.get_num_threads()
        torch.set_num_threads(params.threads)
        try:
            _fit_sources(out, tokenizer, path, sentences, of, sources, targets, params, pad)
        finally:
            torch.set_num_threads(threads)
    out["status"] = np.asarray("done", dtype=object)
    return out


def _fit_sources(
    out: dict[str, np.ndarray],
    tokenizer: Any,
    path: str,
    sentences: Mapping[str, _Sentences],
    of: Mapping[str, Mapping[str, list[int]]],
    sources: Sequence[str],
    targets: Sequence[str],
    params: FinetuneParams,
    pad: int,
) -> None:
    """Fine-tune on each source in turn and test on every target, filling ``out``."""
    for a, source in enumerate(sources):
        started = time.process_time()
        train_sentences = sentences[source]
        train_tags = [t for i in of[source]["train"] for t in train_sentences.tags[i] if t not in ("", "_")]
        tags = sorted(set(train_tags))
        if len(tags) < 2:
            continue
        codes = {tag: i for i, tag in enumerate(tags)}
        counts = Counter(train_tags)
        majority = max(tags, key=lambda t: (counts[t], t))
        train = _encode(tokenizer, train_sentences, of[source]["train"], codes, params.max_length)
        dev = _encode(tokenizer, train_sentences, of[source]["dev"], codes, params.max_length)
        model = _model(path, tags, params)
        out["dev_accuracy"][a], out["best_epoch"][a] = _train(model, train, dev, params, pad)
        for b, target in enumerate(targets):
            test = _encode(tokenizer, sentences[target], of[target]["test"], codes, params.max_length)
            out["accuracy"][a, b], out["n_test"][a, b] = _accuracy(model, test, params, pad)
            gold = [t for i in of[target]["test"] for t in sentences[target].tags[i] if t not in ("", "_")]
            out["baseline"][a, b] = gold.count(majority) / len(gold) if gold else math.nan
        out["cpu_seconds"][a] = time.process_time() - started
        del model


def _empty(n_sources: int, n_targets: int) -> dict[str, np.ndarray]:
    return {
        "accuracy": np.full((n_sources, n_targets), np.nan, dtype=np.float32),
        "baseline": np.full((n_sources, n_targets), np.nan, dtype=np.float32),
        "n_test": np.zeros((n_sources, n_targets), dtype=np.int64),
        "dev_accuracy": np.full(n_sources, np.nan, dtype=np.float32),
        "best_epoch": np.zeros(n_sources, dtype=np.int64),
        "cpu_seconds": np.full(n_sources, np.nan, dtype=np.float32),
        "status": np.asarray("", dtype=object),
    }


_INNER = {
    "accuracy": (dims.LANGUAGE, dims.LANGUAGE_OTHER),
    "baseline": (dims.LANGUAGE, dims.LANGUAGE_OTHER),
    "n_test": (dims.LANGUAGE, dims.LANGUAGE_OTHER),
    "dev_accuracy": (dims.LANGUAGE,),
    "best_epoch": (dims.LANGUAGE,),
    "cpu_seconds": (dims.LANGUAGE,),
    "status": (),
}


def finetune_job(
    store: Store,
    params: FinetuneParams | None = None,
    *,
    steps: Sequence[int] | None = None,
    targets: Sequence[str] | None = None,
    checkpoints: Mapping[int, Any] | None = None,
) -> SlabJob:
    """Fine-tuned transfer over every checkpoint as a :class:`~xalign.analysis.engine.SlabJob`:
    one task per step (:func:`finetune_slab`). Sources: ``params.sources`` (given; the lazy
    :func:`xalign.finetune` chooses a default); targets: ``targets`` (default: every language).
    ``checkpoints`` (step -> Checkpoint) overrides where a step's model is loaded from."""
    params = params or FinetuneParams()
    languages = list(store.languages)
    if not params.sources:
        raise ValueError("name the source languages (xalign.finetune chooses en, else the first, for you)")
    sources = list(params.sources)
    targets = list(languages if targets is None else targets)
    unknown = sorted(set(sources + targets) - set(languages))
    if unknown:
        raise ResultsError(f"language {unknown} not in the store; it has {', '.join(languages)}")
    coords = {
        dims.STEP: np.asarray(store.steps.tolist(), dtype=np.int64),
        dims.LANGUAGE: np.asarray(sources, dtype=object),
        dims.LANGUAGE_OTHER: np.asarray(targets, dtype=object),
    }
    parameters: dict[str, Any] = {**params.to_dict(), "sources": sources, "targets": targets}
    if checkpoints:
        # Where the models came from, when not from the store's own records (rebuilt by persist).
        parameters["checkpoints"] = {
            str(step): {"source": c.source, "revision": c.revision} for step, c in sorted(checkpoints.items())
        }
    return SlabJob(
        kind="finetune",
        location=store.location,
        parameters=parameters,
        slab_dims=(dims.STEP,),
        coords=coords,
        selected={dims.STEP: select_values(coords[dims.STEP].tolist(), steps)},
        example=_empty(len(sources), len(targets)),
        inner_dims=_INNER,
        function=finetune_slab,
        args=(sources, targets, params, dict(checkpoints or {})),
        attrs={"method": "finetune", "measure": FINETUNE_MEASURE, "task": "upos"},
    )


def stored_checkpoints(parameters: Mapping[str, Any]) -> dict[int, Any]:
    """The checkpoints a fine-tuning run was given (``parameters["checkpoints"]``), by step."""
    from xalign.extract.checkpoints import Checkpoint

    given = parameters.get("checkpoints") or {}
    return {
        int(step): Checkpoint(step=int(step), source=str(c["source"]), revision=c.get("revision"))
        for step, c in given.items()
    }
