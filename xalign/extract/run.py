"""Run an extraction: a driver that prepares the store, and one job per checkpoint.

The job of a step loads that checkpoint once, streams every language through it in the
planned batches, and writes only chunks at its own step index, so jobs are independent:
they run one after another here, or as tasks on a Dask cluster. Rerunning the same
extraction skips every chunk already done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from xalign import dims
from xalign.extract.checkpoints import (
    Checkpoint,
    CheckpointError,
    inspect_checkpoint,
    load_checkpoint,
    source_of,
)
from xalign.extract.config import ExtractConfig
from xalign.extract.encode import EncodedCorpus, encode_corpus
from xalign.extract.exclusive import WriterLock, writer_lock
from xalign.extract.forward import run_batch
from xalign.extract.plan import loss_batches, needed_sentences, plan_batches
from xalign.extract.prepare import PreparationNote, prepare
from xalign.extract.sink import DISK_FULL, ChunkSink, ChunkWriter, disk_full_error
from xalign.extract.template import file_digest, provenance
from xalign.parallel import ProgressRelay, compute_tasks
from xalign.store.layout import ACTIVATIONS, LanguageMeta, language_group
from xalign.store.location import StoreLocation, describe_location, is_shared, resolve_location
from xalign.store.nodes import child_array, child_group
from xalign.store.write import consolidate
from xalign.treebank.corpus import Corpus, load_corpora, load_corpus

__all__ = [
    "Coverage",
    "ExtractReport",
    "LanguageReport",
    "Progress",
    "StepReport",
    "encoding_coverage",
    "extract",
    "extract_language",
    "extract_step",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called after each batch with (words done, bytes written since the last call)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StepReport:
    step: int
    words: int
    sentences: int
    batches: int
    bytes_written: int
    heldout_loss: dict[str, float]
    fingerprint: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtractReport:
    steps: tuple[StepReport, ...]
    skipped: tuple[int, ...]
    """Steps that were already complete."""
    new_steps: tuple[int, ...] = ()
    new_languages: tuple[str, ...] = ()
    words_to_do: int = 0
    coverage: dict[str, Coverage] = field(default_factory=dict)
    """Per language: sentences run in windows, and words that no subword encodes."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Coverage:
    """How a language's words reach the model."""

    sentences: int
    windowed_sentences: int
    """Sentences longer than ``max_length`` subwords, run in overlapping windows."""
    longest: int
    """Subwords of the longest sentence."""
    unencoded_by_file: dict[str, int]
    """File -> words that no subword encodes (NaN vectors; probing leaves them out)."""

    @property
    def unencoded_words(self) -> int:
        return sum(self.unencoded_by_file.values())


def encoding_coverage(corpus: Corpus, encoded: EncodedCorpus, config: ExtractConfig) -> Coverage:
    """Which sentences of ``corpus`` need windows, and which words have no subword, per file."""
    lost = encoded.unencoded_words
    sentence_of = np.searchsorted(encoded.word_ptr, lost, side="right") - 1
    by_file: dict[str, int] = {}
    for s in sentence_of.tolist():
        path = corpus.sentences[s].path
        by_file[path] = by_file.get(path, 0) + 1
    return Coverage(
        sentences=encoded.n_sentences,
        windowed_sentences=encoded.windowed_sentences(config.max_length),
        longest=int(encoded.sentence_lengths.max(initial=0)),
        unencoded_by_file=by_file,
    )


def _warn_coverage(language: str, coverage: Coverage, config: ExtractConfig) -> None:
    if coverage.windowed_sentences:
        logger.info(
            "%s: %d of %d sentences are longer than --max-length %d subwords (the longest has %d); "
            "they run in overlapping windows with %d subwords of left context",
            language,
            coverage.windowed_sentences,
            coverage.sentences,
            config.max_length,
            coverage.longest,
            config.window_stride,
        )
    for path, count in coverage.unencoded_by_file.items():
        logger.warning(
            "%s: %d word(s) of %s produce no subword with this tokenizer; their vectors are NaN "
            "and probing leaves them out",
            language,
            count,
            path,
        )


def extract(
    location: StoreLocation,
    checkpoints: Sequence[Checkpoint],
    treebanks: Sequence[str | Path],
    config: ExtractConfig,
    *,
    device: str = "cpu",
    client: Any = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    on_plan: Callable[[int], None] | None = None,
    file_languages: Mapping[str, str] | None = None,
) -> ExtractReport:
    """Extract every checkpoint over every treebank into the store at ``location``.

    Parameters
    ----------
    checkpoints
        One per step; steps must be distinct.
    treebanks
        CoNLL-U files; files of one language (from the UD file name, or ``file_languages``)
        are pooled.
    client
        None runs the jobs here, one after another (with ``progress``). A
        ``distributed.Client`` runs one job per checkpoint on its cluster (give its workers
        one thread each: one model per worker at a time); they must see ``location`` and the
        treebank files. Extraction never picks up an active client by itself: a model per
        worker is a choice to make on purpose.
    on_plan
        Called once with the number of words that will be extracted (for a progress total).
    file_languages
        Path -> language code for files whose names are not UD-style.

    Raises
    ------
    ExtractionError, CheckpointError, TreebankError
        With a message saying what to fix: among them a full disk (free space and rerun to
        resume) and :class:`~xalign.extract.lock.StoreLockedError` when another process is
        extracting into the same store.
    """
    steps = [c.step for c in checkpoints]
    if not checkpoints:
        raise CheckpointError("no checkpoints given")
    if len(set(steps)) != len(steps):
        raise CheckpointError(f"steps repeat: {sorted(steps)}")
    note = PreparationNote.beside(location)
    target = resolve_location(location)
    with writer_lock(location) as lock, _disk_errors(target):
        return _extract(
            target,
            checkpoints,
            treebanks,
            config,
            device=device,
            client=client,
            overwrite=overwrite,
            progress=progress,
            on_plan=on_plan,
            file_languages=file_languages,
            note=note,
            lock=lock,
        )


@contextlib.contextmanager
def _disk_errors(location: StoreLocation) -> Iterator[None]:
    """A full disk met anywhere (the template, records, metadata) is a clear, resumable error."""
    try:
        yield
    except OSError as error:
        if error.errno in DISK_FULL:
            raise disk_full_error(describe_location(location), error) from error
        raise


def _extract(
    location: StoreLocation,
    checkpoints: Sequence[Checkpoint],
    treebanks: Sequence[str | Path],
    config: ExtractConfig,
    *,
    device: str,
    client: Any,
    overwrite: bool,
    progress: Progress | None,
    on_plan: Callable[[int], None] | None,
    file_languages: Mapping[str, str] | None,
    note: PreparationNote | None,
    lock: WriterLock,
) -> ExtractReport:
    steps = [c.step for c in checkpoints]
    files = [str(Path(f)) for f in treebanks]
    corpora = load_corpora(files, options=config.corpus, file_languages=file_languages)
    tokenizer, tokenizer_hash, shape = inspect_checkpoint(checkpoints[0])
    encoded = {
        language: encode_corpus(corpus, tokenizer, context=config.context)
        for language, corpus in corpora.items()
    }
    coverage = {
        language: encoding_coverage(corpora[language], encoded[language], config) for language in corpora
    }
    for language, found in coverage.items():
        _warn_coverage(language, found, config)
    prov = provenance(
        config,
        tokenizer_source=source_of(checkpoints[0]),
        tokenizer_hash=tokenizer_hash,
        data_files={Path(f).name: file_digest(f) for f in files},
    )
    plan = prepare(
        location,
        note,
        config=config,
        checkpoints=checkpoints,
        corpora=corpora,
        encoded=encoded,
        shape=shape,
        prov=prov,
        overwrite=overwrite,
    )
    root = zarr.open_group(location, mode="r", use_consolidated=False)
    jobs: list[tuple[Checkpoint, int]] = []
    words_to_do = 0
    for checkpoint in checkpoints:
        index = plan.step_index[checkpoint.step]
        todo = sum(_words_to_do(root, language, index) for language in corpora)
        if todo or not all(_loss_recorded(root, language, index) for language in corpora):
            jobs.append((checkpoint, index))
            words_to_do += todo
    if on_plan is not None:
        on_plan(words_to_do)
    by_language = {language: list(corpus.files) for language, corpus in corpora.items()}
    job_args: dict[str, Any] = {
        "languages": by_language,
        "config": config,
        "device": device,
        "tokenizer_hash": tokenizer_hash,
    }
    if client is None:
        reports = [
            extract_step(location, checkpoint, index, progress=_checked(progress, lock), **job_args)
            for checkpoint, index in jobs
        ]
    else:
        reports = _run_distributed(location, jobs, client, job_args, progress, lock)
    lock.check()  # the metadata of a store this run no longer holds is its new holder's to write
    consolidate(location)
    done_steps = {r.step for r in reports}
    return ExtractReport(
        steps=tuple(reports),
        skipped=tuple(s for s in steps if s not in done_steps),
        new_steps=plan.new_steps,
        new_languages=plan.new_languages,
        words_to_do=words_to_do,
        coverage=coverage,
    )


def _checked(progress: Progress | None, lock: WriterLock) -> Progress:
    """``progress`` after each batch, once this run is known to still hold the store."""

    def report(words: int, written: int) -> None:
        lock.check()
        if progress is not None:
            progress(words, written)

    return report


def _words_to_do(root: zarr.Group, language: str, index: int) -> int:
    group = child_group(root, language_group(language))
    done = np.asarray(child_array(group, dims.DONE)[index, :], dtype=bool)
    chunk = int(str(group.attrs["chunk_words"]))
    words = int(child_array(group, dims.HIDDEN).shape[2])
    undone = np.flatnonzero(~done)
    return int(sum(min(chunk, words - int(c) * chunk) for c in undone)) if words else 0


def _loss_recorded(root: zarr.Group, language: str, index: int) -> bool:
    loss = child_array(root, f"{language_group(language)}/{dims.HELDOUT_LOSS}")
    return bool(np.isfinite(np.asarray(loss[index])))


def _run_distributed(
    location: StoreLocation,
    jobs: list[tuple[Checkpoint, int]],
    client: Any,
    job_args: dict[str, Any],
    progress: Progress | None,
    lock: WriterLock,
) -> list[StepReport]:
    """One task per checkpoint on ``client``'s cluster; ``progress`` hears of each batch as the
    workers write it (through :class:`~xalign.parallel.ProgressRelay`). The lock is checked as
    each step's task ends (the workers cannot see it)."""
    from dask.delayed import delayed

    if not is_shared(location):
        raise CheckpointError(
            "a Dask cluster needs a store its workers can reach (a directory or a bucket), not a memory store"
        )
    where = str(location) if isinstance(location, str | Path) else location

    def done(report: StepReport) -> None:
        lock.check()
        if relay is not None:
            relay.finished(report.step, report.words, 0)

    with contextlib.ExitStack() as stack:
        relay = None if progress is None else stack.enter_context(ProgressRelay(client, progress))
        tasks = [
            delayed(extract_step, pure=False)(
                where,
                checkpoint,
                index,
                progress=None if relay is None else relay.reporter(checkpoint.step),
                **job_args,
            )
            for checkpoint, index in jobs
        ]
        return compute_tasks(tasks, client=client, on_done=done)


def extract_step(
    location: StoreLocation,
    checkpoint: Checkpoint,
    index: int,
    *,
    languages: Mapping[str, Sequence[str]],
    config: ExtractConfig,
    device: str = "cpu",
    tokenizer_hash: str | None = None,
    progress: Progress | None = None,
) -> StepReport:
    """The job of one step: load its checkpoint, fill its chunks, record its health."""
    loaded = load_checkpoint(checkpoint, device=device, compute_dtype=config.compute_dtype)
    if tokenizer_hash is not None and loaded.tokenizer_hash != tokenizer_hash:
        raise CheckpointError(f"{checkpoint.label}: its tokenizer differs from the other checkpoints'")
    root = zarr.open_group(location, mode="r+", use_consolidated=False)
    _record_checkpoint(root, index, loaded.fingerprint, loaded.commit, checkpoint)
    layers = tuple(int(layer) for layer in np.asarray(child_array(root, dims.LAYER)[...]))
    pad_id = loaded.tokenizer.pad_token_id
    totals = LanguageReport(words=0, sentences=0, batches=0, bytes_written=0)
    losses: dict[str, float] = {}
    for language, files in languages.items():
        corpus = load_corpus(language, files, options=config.corpus)
        encoded = encode_corpus(corpus, loaded.tokenizer, context=config.context)
        group = child_group(root, language_group(language))
        _check_encoding(group, corpus, encoded, checkpoint)
        report = extract_language(
            loaded.model,
            group,
            index,
            encoded,
            config=config,
            layers=layers,
            pad_id=0 if pad_id is None else int(pad_id),
            device=device,
            progress=progress,
        )
        totals = totals + report
        losses[language] = _record_loss(group, index, encoded)
    return StepReport(
        step=checkpoint.step,
        words=totals.words,
        sentences=totals.sentences,
        batches=totals.batches,
        bytes_written=totals.bytes_written,
        heldout_loss=losses,
        fingerprint=loaded.fingerprint,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class LanguageReport:
    words: int
    sentences: int
    batches: int
    bytes_written: int

    def __add__(self, other: LanguageReport) -> LanguageReport:
        return LanguageReport(
            words=self.words + other.words,
            sentences=self.sentences + other.sentences,
            batches=self.batches + other.batches,
            bytes_written=self.bytes_written + other.bytes_written,
        )


def extract_language(
    model: Any,
    group: zarr.Group,
    index: int,
    encoded: EncodedCorpus,
    *,
    config: ExtractConfig,
    layers: tuple[int, ...],
    pad_id: int,
    device: str = "cpu",
    progress: Progress | None = None,
) -> LanguageReport:
    """Fill every chunk of one language group at step position ``index`` not yet done.

    Runs the planned batches that hold a needed sentence; the forward pass of each batch
    overlaps the compression and writing of the chunks the previous ones completed.
    """
    writer = ChunkWriter()
    sinks = _sinks(group, index, encoded, writer)
    needed = np.zeros(encoded.n_sentences, dtype=bool)
    for sink, ptr in sinks.values():
        needed |= needed_sentences(ptr, sink.done, sink.chunk)
    plan = plan_batches(encoded, batch_size=config.batch_size, window_words=config.chunk_words)
    measured = loss_batches(plan, config.loss_sentences)
    words = sentences = batches = reported = 0
    try:
        for batch, with_loss in zip(plan, measured, strict=True):
            if not needed[batch].any():
                continue
            out = run_batch(
                model,
                encoded,
                batch,
                layers=layers,
                pooling=config.pooling,
                pad_id=pad_id,
                max_length=config.max_length,
                stride=config.window_stride,
                device=device,
                keep_subwords=config.keep_subwords,
                with_loss=with_loss,
            )
            _deliver(out, encoded, sinks)
            batch_words = int(sum(v.shape[1] for v in out.words))
            words, sentences, batches = words + batch_words, sentences + len(batch), batches + 1
            if progress is not None:
                progress(batch_words, writer.bytes_written - reported)
                reported = writer.bytes_written
    finally:
        writer.close()
    return LanguageReport(
        words=words, sentences=sentences, batches=batches, bytes_written=writer.bytes_written
    )


def _record_checkpoint(
    root: zarr.Group, index: int, fingerprint: str, commit: str, checkpoint: Checkpoint
) -> None:
    """The step's fingerprint and commit; a changed checkpoint is refused, not mixed in."""
    stored = str(np.asarray(child_array(root, dims.FINGERPRINT)[index]))
    if stored and stored != fingerprint:
        raise CheckpointError(
            f"the weights at {checkpoint.label} (step {checkpoint.step}) differ from those this store "
            "was extracted from; use a new store or --overwrite"
        )
    child_array(root, dims.FINGERPRINT)[index] = fingerprint
    child_array(root, dims.COMMIT)[index] = commit


def _check_encoding(
    group: zarr.Group, corpus: Corpus, encoded: EncodedCorpus, checkpoint: Checkpoint
) -> None:
    stored_tokens = np.asarray(child_array(group, dims.SENTENCE_TOKENS)[...])
    if child_array(group, dims.HIDDEN).shape[2] != corpus.n_words or not np.array_equal(
        stored_tokens, encoded.sentence_lengths
    ):
        raise CheckpointError(
            f"{checkpoint.label}: the words or subwords of {corpus.language} differ from the store's "
            "(a different treebank or tokenizer)"
        )


def _sinks(
    group: zarr.Group, index: int, encoded: EncodedCorpus, writer: ChunkWriter
) -> dict[str, tuple[ChunkSink, np.ndarray]]:
    """One sink per done-flag array, with the item pointer of each sentence."""
    per_sentence = np.arange(encoded.n_sentences + 1, dtype=np.int64)
    ptrs = {dims.WORD: encoded.word_ptr, dims.SENTENCE: per_sentence, dims.SUBWORD: encoded.token_ptr}
    meta = LanguageMeta.from_attrs(group.attrs.asdict())
    grouped: dict[str, dict[str, zarr.Array[Any]]] = {}
    done_of: dict[str, str] = {}
    for name, (along, done) in ACTIVATIONS.items():
        if name in group:
            grouped.setdefault(along, {})[name] = child_array(group, name)
            done_of[along] = done
    grouped[dims.SENTENCE][dims.SENTENCE_LOSS] = child_array(group, dims.SENTENCE_LOSS)
    return {
        along: (
            ChunkSink(
                arrays=arrays,
                done=child_array(group, done_of[along]),
                step_index=index,
                size=int(ptrs[along][-1]),
                chunk=meta.chunk_size(along),
                writer=writer,
            ),
            ptrs[along],
        )
        for along, arrays in grouped.items()
    }


def _deliver(out: Any, encoded: EncodedCorpus, sinks: Mapping[str, tuple[ChunkSink, np.ndarray]]) -> None:
    for position, sentence in enumerate(out.sentences):
        s = int(sentence)
        sinks[dims.WORD][0].put(int(encoded.word_ptr[s]), {dims.HIDDEN: out.words[position]})
        sinks[dims.SENTENCE][0].put(
            s,
            {
                dims.SENTENCE_MEAN: out.sentence_mean[:, position : position + 1],
                dims.SENTENCE_LAST: out.sentence_last[:, position : position + 1],
                dims.SENTENCE_LOSS: out.loss[position : position + 1],
            },
        )
        if out.subwords is not None and dims.SUBWORD in sinks:
            sinks[dims.SUBWORD][0].put(
                int(encoded.token_ptr[s]), {dims.SUBWORD_HIDDEN: out.subwords[position]}
            )


def _record_loss(group: zarr.Group, index: int, encoded: EncodedCorpus) -> float:
    """The language's held-out loss at this step: the token-weighted mean of its sentences'."""
    if not bool(np.asarray(child_array(group, dims.SENTENCE_DONE)[index, :]).all()):
        return float("nan")
    per_sentence = np.asarray(child_array(group, dims.SENTENCE_LOSS)[index, :], dtype=np.float64)
    weights = np.maximum(encoded.sentence_lengths - 1, 0).astype(np.float64)
    valid = np.isfinite(per_sentence) & (weights > 0)
    loss = (
        float((per_sentence[valid] * weights[valid]).sum() / weights[valid].sum())
        if valid.any()
        else float("nan")
    )
    child_array(group, dims.HELDOUT_LOSS)[index] = loss
    return loss
