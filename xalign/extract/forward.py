"""One forward pass over a batch of sentences: pooled word and sentence vectors, and losses.

Pooling is a sparse matrix product: a (word x batch position) matrix of pooling weights,
applied to each kept layer, costs in proportion to the subwords pooled (a dense product, or
``index_add``, is tens of times slower on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xalign.extract.config import Pooling
from xalign.extract.encode import EncodedCorpus

__all__ = ["BatchOutput", "batch_inputs", "run_batch"]


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


def _gather_plan(
    encoded: EncodedCorpus, sentences: np.ndarray, width: int, pooling: Pooling
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which flat batch positions feed which word of the batch.

    Returns (positions, owners, counts, words per sentence): row ``positions[i]`` of the
    flattened (sentence, position) axis is added into word ``owners[i]``; ``counts[w]`` is
    how many rows word ``w`` gets (0 for a word cut by truncation).
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
    positions = encoded.positions[np.repeat(starts, counts) + offsets] + sentence_of_word[owners] * width
    return positions.astype(np.int64), owners.astype(np.int64), counts, per_sentence


def batch_inputs(encoded: EncodedCorpus, sentences: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded token ids and attention mask of a batch: ``(sentence, position)``."""
    lengths = encoded.sentence_lengths[sentences]
    width = max(1, int(lengths.max(initial=0)))
    ids = np.full((len(sentences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sentences), width), dtype=np.int64)
    for b, sentence in enumerate(sentences):
        ids[b, : lengths[b]] = encoded.sentence_ids(int(sentence))
        mask[b, : lengths[b]] = 1
    return ids, mask


def run_batch(
    model: Any,
    encoded: EncodedCorpus,
    sentences: np.ndarray,
    *,
    layers: tuple[int, ...],
    pooling: Pooling,
    pad_id: int,
    device: str = "cpu",
    keep_subwords: bool = False,
    with_loss: bool = True,
) -> BatchOutput:
    """Run ``model`` on ``sentences`` (right-padded) and pool its hidden states.

    Without ``with_loss`` only the base model runs: hidden states need no language-model
    head, which on a large vocabulary is a good part of the forward pass.
    """
    import torch

    ids, mask = batch_inputs(encoded, sentences, pad_id)
    lengths = encoded.sentence_lengths[sentences]
    width = ids.shape[1]
    positions, owners, counts, per_sentence = _gather_plan(encoded, sentences, width, pooling)
    valid = np.flatnonzero(mask.reshape(-1))
    last = np.arange(len(sentences)) * width + np.maximum(lengths - 1, 0)
    with torch.inference_mode():
        ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
        runner = model if with_loss else model.base_model
        out = runner(input_ids=ids_t, attention_mask=mask_t, output_hidden_states=True, use_cache=False)
        loss = (
            _sentence_loss(out.logits, ids_t, mask_t)
            if with_loss
            else np.full(len(sentences), np.nan, dtype=np.float32)
        )
        flat_size = len(sentences) * width
        word_weights = _sparse(
            owners, positions, 1.0 / np.maximum(counts, 1)[owners], (len(counts), flat_size), device
        )
        mean_weights = _sparse(
            valid // width, valid, 1.0 / lengths[valid // width], (len(sentences), flat_size), device
        )
        last_t, valid_t = torch.from_numpy(last).to(device), torch.from_numpy(valid).to(device)
        words, means, lasts, subwords = [], [], [], []
        for layer in layers:
            state = out.hidden_states[layer]
            flat = state.reshape(-1, state.shape[-1]).float()
            words.append(torch.sparse.mm(word_weights, flat))
            means.append(torch.sparse.mm(mean_weights, flat))
            lasts.append(flat[last_t])
            if keep_subwords:
                subwords.append(flat[valid_t])
        word_vectors = torch.stack(words).cpu().numpy()
        sentence_mean = torch.stack(means).cpu().numpy()
        sentence_last = torch.stack(lasts).cpu().numpy()
        subword_vectors = torch.stack(subwords).cpu().numpy() if keep_subwords else None
    word_vectors[:, counts == 0] = np.nan
    sentence_mean[:, lengths == 0] = np.nan
    sentence_last[:, lengths == 0] = np.nan
    return BatchOutput(
        sentences=sentences,
        words=np.split(word_vectors, np.cumsum(per_sentence)[:-1], axis=1),
        sentence_mean=sentence_mean,
        sentence_last=sentence_last,
        loss=loss,
        subwords=None
        if subword_vectors is None
        else np.split(subword_vectors, np.cumsum(lengths)[:-1], axis=1),
        tokens=int(lengths.sum()),
    )


def _sparse(
    rows: np.ndarray, columns: np.ndarray, values: np.ndarray, shape: tuple[int, int], device: str
) -> Any:
    """A (rows x batch positions) pooling matrix; one sparse product pools a whole layer."""
    import torch

    indices = torch.from_numpy(np.stack([rows, columns]).astype(np.int64))
    matrix = torch.sparse_coo_tensor(
        indices, torch.from_numpy(values.astype(np.float32)), shape, check_invariants=False
    )
    return matrix.coalesce().to(device)


def _sentence_loss(logits: Any, ids: Any, mask: Any) -> np.ndarray:
    """Mean next-token cross-entropy of each sentence, over its real (unpadded) tokens.

    ``logsumexp`` minus the target's logit: the same values as ``cross_entropy`` without
    copying the (sentence, position, vocabulary) logits first.
    """
    import torch

    nll = torch.logsumexp(logits, dim=-1)[:, :-1].float()
    nll -= logits[:, :-1].gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1).float()
    valid = mask[:, 1:].float()
    count = valid.sum(dim=1)
    out: np.ndarray = ((nll * valid).sum(dim=1) / count.clamp(min=1)).cpu().numpy().astype(np.float32)
    out[count.cpu().numpy() == 0] = np.nan
    return out
