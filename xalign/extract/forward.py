"""One forward pass over a batch of sentences: pooled word and sentence vectors, and losses.

Sentences longer than the model's window run as overlapping windows (see
:mod:`xalign.extract.windows`): every subword position is read from the one window that owns
it, so no word is cut. Everything kept is a weighted sum of hidden states at owned positions
(a word's mean, a sentence's mean, the last token, each subword), so one sparse
(output x batch position) matrix per group of windows pools a whole layer: its cost is in
proportion to the subwords pooled (a dense product, or ``index_add``, is tens of times slower
on CPU).

On CPU a batch's rows also run in groups of at most :data:`CPU_GROUP_VALUES` hidden-state
values per layer (rows x width x hidden size), each group cut to its own longest row: a
batch of sixteen sentences padded to its longest is a third padding or more, and its
elementwise ops run over tensors far beyond the CPU's caches, so one such pass costs more
than the sentences one by one. The groups are a pure function of the batch and the model's
width, so a resumed run recomputes the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xalign.extract.config import Pooling
from xalign.extract.encode import EncodedCorpus
from xalign.extract.windows import WindowRows, window_rows

__all__ = ["CPU_GROUP_VALUES", "BatchOutput", "batch_inputs", "row_groups", "run_batch"]

CPU_GROUP_VALUES = 1 << 18
"""On CPU, the most hidden-state values (rows x width x hidden size) one forward pass computes
per layer: 256 positions of a 1024-wide model (1 MiB of float32 per layer's state), which
keeps a pass's elementwise work within the caches, and is enough rows for the matrix products
to run at full speed (measured in ``benchmarks/extract.py``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchOutput:
    """Results for the sentences of one batch, in the batch's order."""

    sentences: np.ndarray
    words: list[np.ndarray]
    """Per sentence, ``(layer, word, neuron)``; NaN for a word with no subword."""
    sentence_mean: np.ndarray
    """``(layer, sentence, neuron)``"""
    sentence_last: np.ndarray
    loss: np.ndarray
    """Mean next-token loss (nats) per sentence; NaN for a sentence of one subword, or
    where the loss was not asked for."""
    subwords: list[np.ndarray] | None
    """Per sentence, ``(layer, subword, neuron)``, where subwords are kept."""
    tokens: int


def _word_plan(
    encoded: EncodedCorpus, sentences: np.ndarray, pooling: Pooling
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which sentence positions feed which word of the batch.

    Returns (batch sentence, position, owner word, counts, words per sentence): position
    ``positions[i]`` of batch sentence ``sentence[i]`` is added into word ``owners[i]``;
    ``counts[w]`` is how many positions word ``w`` gets (0 for a word with no subword).
    """
    first, last = encoded.word_ptr[sentences], encoded.word_ptr[sentences + 1]
    per_sentence = last - first
    word_ids = np.concatenate(
        [np.arange(a, b) for a, b in zip(first, last, strict=True)] or [np.zeros(0, int)]
    )
    starts, ends = encoded.position_ptr[word_ids], encoded.position_ptr[word_ids + 1]
    counts = ends - starts
    if pooling != "mean":
        starts = np.where(pooling == "first", starts, ends - 1)
        counts = np.minimum(counts, 1)
        starts = np.where(counts > 0, starts, 0)
    owners = np.repeat(np.arange(len(word_ids)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    sentence_of_word = np.repeat(np.arange(len(sentences)), per_sentence)
    positions = encoded.positions[np.repeat(starts, counts) + offsets]
    return sentence_of_word[owners], positions.astype(np.int64), owners.astype(np.int64), counts, per_sentence


def row_groups(
    rows: np.ndarray, *, most_rows: int, most_positions: int | None = None
) -> list[tuple[int, int, int]]:
    """Consecutive groups of a batch's window rows (``(row, 3)``: sentence, start, end), each
    run as one forward pass.

    Returns ``(first, last, width)`` per group: rows ``first:last``, right-padded to ``width``,
    the longest of them. A group has at most ``most_rows`` rows and, where ``most_positions``
    is given, at most that many padded positions (rows x width), unless one row alone has more.
    No rows, no group.
    """
    groups: list[tuple[int, int, int]] = []
    first, width = 0, 1
    for r, length in enumerate((rows[:, 2] - rows[:, 1]).tolist()):
        wider = max(width, length)
        taken = r - first
        if taken and (
            taken >= most_rows or (most_positions is not None and (taken + 1) * wider > most_positions)
        ):
            groups.append((first, r, width))
            first, wider = r, max(1, length)
        width = wider
    if len(rows):
        groups.append((first, len(rows), width))
    return groups


def batch_inputs(
    encoded: EncodedCorpus, sentences: np.ndarray, pad_id: int, windows: WindowRows | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded token ids and attention mask of a batch: ``(row, position)``.

    Without ``windows``, one row per sentence, whole.
    """
    if windows is None:
        lengths = encoded.sentence_lengths[sentences]
        rows = np.stack([np.arange(len(sentences)), np.zeros_like(lengths), lengths], axis=1)
        width = max(1, int(lengths.max(initial=0)))
    else:
        rows, width = windows.rows, windows.width
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, (b, start, end) in enumerate(rows.tolist()):
        ids[r, : end - start] = encoded.sentence_ids(int(sentences[b]))[start:end]
        mask[r, : end - start] = 1
    return ids, mask


@dataclass(frozen=True, kw_only=True, slots=True)
class _Pooling:
    """A sparse pooling over the row space: output ``rows[i]`` adds ``weights[i]`` x ``columns[i]``."""

    rows: np.ndarray
    columns: np.ndarray
    weights: np.ndarray
    n_outputs: int


def _pooling_plan(
    encoded: EncodedCorpus,
    sentences: np.ndarray,
    windows: WindowRows,
    *,
    pooling: Pooling,
    keep_subwords: bool,
) -> tuple[_Pooling, dict[str, slice], np.ndarray, np.ndarray]:
    """Every kept vector as weighted owned positions.

    Returns the pooling, the slice of each kind of output, word counts and words per sentence.
    """
    lengths = encoded.sentence_lengths[sentences]
    b_of, positions, owners, counts, per_sentence = _word_plan(encoded, sentences, pooling)
    column = windows.owner[windows.owner_ptr[b_of] + positions]
    parts = [(owners, column, 1.0 / np.maximum(counts, 1)[owners])]
    n_words = len(counts)
    # Sentence means over every position, the last position, and (kept) every subword.
    b_all = np.repeat(np.arange(len(sentences)), lengths)
    parts.append((n_words + b_all, windows.owner, 1.0 / lengths[b_all]))
    nonempty = np.flatnonzero(lengths > 0)
    last_columns = windows.owner[windows.owner_ptr[nonempty] + lengths[nonempty] - 1]
    parts.append((n_words + len(sentences) + nonempty, last_columns, np.ones(len(nonempty))))
    slices = {
        "words": slice(0, n_words),
        "mean": slice(n_words, n_words + len(sentences)),
        "last": slice(n_words + len(sentences), n_words + 2 * len(sentences)),
    }
    n_outputs = n_words + 2 * len(sentences)
    if keep_subwords:
        total = len(windows.owner)
        parts.append((n_outputs + np.arange(total), windows.owner, np.ones(total)))
        slices["subwords"] = slice(n_outputs, n_outputs + total)
        n_outputs += total
    plan = _Pooling(
        rows=np.concatenate([p[0] for p in parts]).astype(np.int64),
        columns=np.concatenate([p[1] for p in parts]).astype(np.int64),
        weights=np.concatenate([p[2] for p in parts]).astype(np.float32),
        n_outputs=n_outputs,
    )
    return plan, slices, counts, per_sentence


def run_batch(
    model: Any,
    encoded: EncodedCorpus,
    sentences: np.ndarray,
    *,
    layers: tuple[int, ...],
    pooling: Pooling,
    pad_id: int,
    max_length: int,
    stride: int,
    device: str = "cpu",
    keep_subwords: bool = False,
    with_loss: bool = True,
) -> BatchOutput:
    """Run ``model`` on ``sentences`` (right-padded, in windows of ``max_length``) and pool.

    Windows run in groups of at most ``len(sentences)`` rows, so a batch of long sentences
    costs no more memory at once than a batch of short ones; on CPU, also of at most
    :data:`CPU_GROUP_VALUES` hidden-state values, each group padded only to its own longest
    row (see :func:`row_groups`). Without ``with_loss`` only the base model runs: hidden
    states need no language-model head, which on a large vocabulary is a good part of the
    forward pass.
    """
    import torch

    lengths = encoded.sentence_lengths[sentences]
    windows = window_rows(lengths, max_length=max_length, stride=stride)
    ids, mask = batch_inputs(encoded, sentences, pad_id, windows)
    plan, slices, counts, per_sentence = _pooling_plan(
        encoded, sentences, windows, pooling=pooling, keep_subwords=keep_subwords
    )
    width = windows.width
    hidden_size = getattr(getattr(model, "config", None), "hidden_size", None)
    budget = None
    if str(device) == "cpu" and isinstance(hidden_size, int) and hidden_size > 0:
        budget = max(1, CPU_GROUP_VALUES // hidden_size)
    groups = row_groups(windows.rows, most_rows=max(1, len(sentences)), most_positions=budget)
    # Next-token loss: the target at position p (p >= 1) is predicted where p - 1 is owned.
    b_all = np.repeat(np.arange(len(sentences)), lengths)
    p_all = np.arange(len(b_all)) - windows.owner_ptr[b_all]
    targets = np.flatnonzero(p_all >= 1)
    predicted_at = windows.owner[targets - 1]
    target_ids = np.concatenate([encoded.sentence_ids(int(s)) for s in sentences] or [np.zeros(0, np.int64)])[
        targets
    ]
    nll = np.zeros(len(targets), dtype=np.float64)
    pooled: list[Any] = [None] * len(layers)
    with torch.inference_mode():
        runner = model if with_loss else model.base_model
        for first, last, cut in groups:
            lo, hi = first * width, last * width
            ids_t = torch.from_numpy(np.ascontiguousarray(ids[first:last, :cut])).to(device)
            mask_t = torch.from_numpy(np.ascontiguousarray(mask[first:last, :cut])).to(device)
            out = runner(input_ids=ids_t, attention_mask=mask_t, output_hidden_states=True, use_cache=False)
            here = (plan.columns >= lo) & (plan.columns < hi)
            weights = _sparse(
                plan.rows[here],
                _recut(plan.columns[here] - lo, width, cut),
                plan.weights[here],
                (plan.n_outputs, (last - first) * cut),
                device,
            )
            for i, layer in enumerate(layers):
                state = out.hidden_states[layer]
                flat = state.reshape(-1, state.shape[-1]).float()
                part = torch.sparse.mm(weights, flat)
                pooled[i] = part if pooled[i] is None else pooled[i].add_(part)
            if with_loss:
                mine = (predicted_at >= lo) & (predicted_at < hi)
                nll[mine] = _token_nll(
                    out.logits, _recut(predicted_at[mine] - lo, width, cut), target_ids[mine]
                )
        if pooled[0] is None:  # no sentence has a subword: nothing ran
            hidden = 0 if not layers else _hidden_size(model)
            stacked = np.zeros((len(layers), plan.n_outputs, hidden), dtype=np.float32)
        else:
            stacked = torch.stack(pooled).cpu().numpy()
    word_vectors = stacked[:, slices["words"]]
    sentence_mean = stacked[:, slices["mean"]]
    sentence_last = stacked[:, slices["last"]]
    word_vectors[:, counts == 0] = np.nan
    sentence_mean[:, lengths == 0] = np.nan
    sentence_last[:, lengths == 0] = np.nan
    return BatchOutput(
        sentences=sentences,
        words=np.split(word_vectors, np.cumsum(per_sentence)[:-1], axis=1),
        sentence_mean=sentence_mean,
        sentence_last=sentence_last,
        loss=_sentence_loss(nll, b_all[targets], len(sentences))
        if with_loss
        else np.full(len(sentences), np.nan, dtype=np.float32),
        subwords=None
        if not keep_subwords
        else np.split(stacked[:, slices["subwords"]], np.cumsum(lengths)[:-1], axis=1),
        tokens=int(lengths.sum()),
    )


def _hidden_size(model: Any) -> int:
    return int(model.config.hidden_size)


def _recut(flat: np.ndarray, width: int, cut: int) -> np.ndarray:
    """Flat ``row * width + position`` indices as ``row * cut + position`` (``position < cut``)."""
    if cut == width:
        return flat
    rows, positions = np.divmod(flat, width)
    out: np.ndarray = rows * cut + positions
    return out


def _sparse(
    rows: np.ndarray, columns: np.ndarray, values: np.ndarray, shape: tuple[int, int], device: str
) -> Any:
    """An (output x positions) pooling matrix; one sparse product pools a whole layer."""
    import torch

    indices = torch.from_numpy(np.stack([rows, columns]).astype(np.int64))
    matrix = torch.sparse_coo_tensor(
        indices, torch.from_numpy(values.astype(np.float32)), shape, check_invariants=False
    )
    return matrix.coalesce().to(device)


def _token_nll(logits: Any, at: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Next-token cross-entropy of ``targets`` predicted at flat positions ``at`` of ``logits``.

    ``logsumexp`` minus the target's logit: the same values as ``cross_entropy`` without
    copying the (row, position, vocabulary) logits, or any row of them, first.
    """
    import torch

    vocabulary = logits.shape[-1]
    at_t = torch.from_numpy(at).to(logits.device)
    target_t = torch.from_numpy(targets).to(logits.device)
    normaliser = torch.logsumexp(logits, dim=-1).reshape(-1)[at_t].float()
    chosen = logits.reshape(-1, vocabulary)[at_t, target_t].float()
    out: np.ndarray = (normaliser - chosen).cpu().numpy().astype(np.float64)
    return out


def _sentence_loss(nll: np.ndarray, sentence_of: np.ndarray, n_sentences: int) -> np.ndarray:
    """Mean next-token loss of each sentence over its predicted tokens; NaN with none."""
    count = np.bincount(sentence_of, minlength=n_sentences)
    total = np.bincount(sentence_of, weights=nll, minlength=n_sentences)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = (total / count).astype(np.float32)
    loss[count == 0] = np.nan
    return loss
