"""Create a store for an extraction, or grow an existing one by new steps and languages.

Only the driver touches metadata (creating groups, resizing along ``step``); the jobs of
each step then write chunks they alone own. Nothing here computes a hidden state.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import xarray as xr
import zarr

from xalign import dims
from xalign.extract.checkpoints import Checkpoint, ModelShape
from xalign.extract.config import ExtractConfig, config_differences
from xalign.extract.encode import EncodedCorpus
from xalign.extract.sink import ExtractionError
from xalign.store.layout import (
    ANALYSES_GROUP,
    GENERATION_ATTR,
    LANGUAGES_GROUP,
    PROVENANCE_ATTR,
    RESULTS_GROUP,
    LanguageMeta,
    empty_language_data,
    language_dataset,
    root_dataset,
)
from xalign.store.location import StoreLocation
from xalign.store.nodes import child_array
from xalign.store.write import write_language, write_root
from xalign.treebank.corpus import Corpus
from xalign.treebank.reader import treebank_name

__all__ = [
    "StorePlan",
    "check_store",
    "describe_layers",
    "file_digest",
    "language_template",
    "prepare_store",
    "provenance",
]

logger = logging.getLogger(__name__)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(
    config: ExtractConfig,
    *,
    tokenizer_source: Mapping[str, str],
    tokenizer_hash: str,
    data_files: Mapping[str, str],
) -> dict[str, Any]:
    """The root's provenance attr. ``tokenizer_source`` says where the tokenizer was read: a hub
    checkpoint's model id, revision and commit, or a local checkpoint's directory."""
    from xalign import __version__

    return {
        "model_id": config.model_id,
        "tokenizer": _describe_source(tokenizer_source),
        "tokenizer_source": dict(tokenizer_source),
        "tokenizer_hash": tokenizer_hash,
        "pooling": config.pooling,
        "context": config.context,
        "dtype": config.dtype,
        "keep_bits": config.keep_bits,
        "windowing": {
            "max_length": config.max_length,
            "stride": config.window_stride,
            "method": "sentences longer than max_length run in overlapping windows; each subword is "
            "read from the window that owns it, with at least `stride` subwords of left context",
        },
        "xalign_version": __version__,
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "data_files": dict(data_files),
    }


def _describe_source(source: Mapping[str, str]) -> str:
    if "directory" in source:
        return source["directory"]
    return f"{source['model_id']}@{source['revision']}"


def language_template(
    corpus: Corpus,
    encoded: EncodedCorpus,
    *,
    config: ExtractConfig,
    steps: Sequence[int],
    layers: Sequence[int],
    neurons: int,
) -> xr.Dataset:
    """The group of one language: labels and coordinates written, activations left lazy."""
    meta = LanguageMeta(
        language=corpus.language,
        treebanks=corpus.treebanks,
        attributes=corpus.attributes,
        label_scheme=config.corpus.label_scheme,
        split_mode=config.corpus.split_mode,
        chunk_words=config.chunk_words,
        chunk_sentences=config.chunk_sentences,
        chunk_subwords=config.chunk_subwords if config.keep_subwords else None,
        windowed_sentences=encoded.windowed_sentences(config.max_length),
        unencoded_words=len(encoded.unencoded_words),
    )
    data = empty_language_data(
        meta,
        n_steps=len(steps),
        n_layers=len(layers),
        n_words=corpus.n_words,
        n_sentences=len(corpus.sentences),
        neurons=neurons,
        dtype=config.dtype,
        n_subwords=encoded.n_subwords if config.keep_subwords else None,
        shard=config.shard,
    )
    return language_dataset(
        meta=meta,
        steps=steps,
        layers=layers,
        words=_word_columns(corpus, encoded),
        sentences={
            dims.SENTENCE_ID: [s.sent_id for s in corpus.sentences],
            dims.TEXT: [s.text for s in corpus.sentences],
            dims.SENTENCE_TOKENS: encoded.sentence_lengths,
        },
        data=data,
        subword_word=encoded.subword_word() if config.keep_subwords else None,
    )


def _word_columns(corpus: Corpus, encoded: EncodedCorpus) -> dict[str, Any]:
    columns: dict[str, list[Any]] = {
        name: []
        for name in (dims.TREEBANK, dims.SENT_ID, dims.SENTENCE_INDEX, dims.FORM, dims.LEMMA, dims.UPOS)
    }
    for index, sentence in enumerate(corpus.sentences):
        treebank = treebank_name(sentence.path)
        for word in sentence.words:
            columns[dims.TREEBANK].append(treebank)
            columns[dims.SENT_ID].append(sentence.sent_id)
            columns[dims.SENTENCE_INDEX].append(index)
            columns[dims.FORM].append(word.form)
            columns[dims.LEMMA].append(word.lemma)
            columns[dims.UPOS].append(word.upos)
    out: dict[str, Any] = dict(columns)
    out[dims.LANGUAGE] = [corpus.language] * corpus.n_words
    out[dims.SPLIT] = list(corpus.splits)
    out[dims.SUBWORDS] = encoded.subwords_per_word
    for attribute in corpus.attributes:
        out[attribute] = [labels.get(attribute, dims.NO_VALUE) for labels in corpus.labels]
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class StorePlan:
    """What an extraction will do to a store: which step is at which index."""

    step_index: dict[int, int]
    created: bool
    new_steps: tuple[int, ...]
    new_languages: tuple[str, ...]


def check_store(
    location: StoreLocation,
    *,
    config: ExtractConfig,
    checkpoints: Sequence[Checkpoint],
    shape: ModelShape,
    prov: Mapping[str, Any],
    overwrite: bool = False,
) -> None:
    """Refuse, before anything is written, an extraction that ``location`` cannot take.

    Raises
    ------
    ExtractionError
        For a layer the model lacks; unless ``overwrite``, for a path that holds something
        else than an xalign store (a file, other files, a Zarr v2 store), or a store made with
        another configuration, model, tokenizer or data, or with another revision at a step.
    """
    layers = _layers(config, shape)
    if overwrite:
        return
    _refuse_foreign(location)
    existing = _open_existing(location)
    if existing is None:
        return
    _check_compatible(existing, prov, layers, shape)
    _check_revisions(existing, checkpoints)


def prepare_store(
    location: StoreLocation,
    *,
    config: ExtractConfig,
    checkpoints: Sequence[Checkpoint],
    corpora: Mapping[str, Corpus],
    encoded: Mapping[str, EncodedCorpus],
    shape: ModelShape,
    prov: Mapping[str, Any],
    overwrite: bool = False,
) -> StorePlan:
    """Create the store, or grow it; return where each step goes.

    Call :func:`check_store` first (the extraction driver does, before it writes anything):
    this writes, and assumes the store can take the run.
    """
    layers = _layers(config, shape)
    steps = [c.step for c in checkpoints]
    existing = None if overwrite else _open_existing(location)
    if existing is None:
        try:
            write_root(
                location,
                root_dataset(
                    steps=steps, revisions=[c.label for c in checkpoints], layers=layers, provenance=prov
                ),
                overwrite=overwrite,
            )
        except (PermissionError, FileExistsError, NotADirectoryError) as exc:
            raise ExtractionError(f"cannot create a store at {location}: {exc}") from exc
        for language, corpus in corpora.items():
            template = language_template(
                corpus, encoded[language], config=config, steps=steps, layers=layers, neurons=shape.neurons
            )
            write_language(location, language, template, keep_bits=config.keep_bits, shard=config.shard)
        return StorePlan(
            step_index={s: i for i, s in enumerate(steps)},
            created=True,
            new_steps=tuple(steps),
            new_languages=tuple(corpora),
        )
    return _grow(location, existing, config, checkpoints, corpora, encoded, layers, shape, prov)


def _layers(config: ExtractConfig, shape: ModelShape) -> list[int]:
    """The hidden-state indices to keep; a layer the model lacks is refused."""
    layers = list(config.layers) if config.layers is not None else list(range(shape.hidden_states))
    bad = [layer for layer in layers if not 0 <= layer < shape.hidden_states]
    if bad:
        raise ExtractionError(
            f"layer(s) {bad} do not exist: the model has hidden states 0..{shape.hidden_states - 1}"
        )
    return layers


def describe_layers(layers: Sequence[int], *, every: bool) -> str:
    """``all layers (0-4)`` or ``layers 0, 2``: what a store or a run keeps, in words."""
    listed = ", ".join(str(layer) for layer in layers)
    if every and layers:
        return f"all layers ({layers[0]}-{layers[-1]})"
    return f"layers {listed}" if layers else "no layers"


def _refuse_foreign(location: StoreLocation) -> None:
    """A path that holds a file, other files or a Zarr v2 store is not taken over silently."""
    if not isinstance(location, str | os.PathLike):
        return
    path = Path(location)
    if path.is_file():
        raise ExtractionError(f"{path} is a file, not a store; choose another path")
    if not path.is_dir() or (path / "zarr.json").exists():
        return
    if (path / ".zgroup").exists() or (path / ".zarray").exists():
        raise ExtractionError(
            f"{path} is a Zarr v2 store, not an xalign store (Zarr v3); choose another path, "
            "or --overwrite to replace it"
        )
    if any(path.iterdir()):
        raise ExtractionError(
            f"{path} is a directory that holds other files, not an xalign store; choose another path, "
            "or --overwrite to replace it"
        )


def _open_existing(location: StoreLocation) -> zarr.Group | None:
    try:
        return zarr.open_group(location, mode="r+", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None


def _check_compatible(
    root: zarr.Group, prov: Mapping[str, Any], layers: list[int], shape: ModelShape
) -> None:
    stored = root.attrs.get(PROVENANCE_ATTR)
    if not isinstance(stored, dict) or "config" not in stored:
        raise ExtractionError(
            "the store exists but was not made by xalign extract; use --overwrite to replace it"
        )
    # Read back through ExtractConfig, so that settings added since (with their defaults)
    # compare equal to a store made before they existed.
    try:
        stored_config = ExtractConfig.from_dict(dict(stored["config"])).to_dict()
    except (TypeError, ValueError):
        stored_config = dict(stored["config"])
    wanted = dict(prov["config"])
    stored_layers = [int(layer) for layer in np.asarray(child_array(root, dims.LAYER)[...])]
    # Layers compare as the lists they resolve to, and are described in words: None means all.
    stored_every, wanted_every = stored_config.pop("layers", None) is None, wanted.pop("layers", None) is None
    differences = config_differences(stored_config, wanted)
    if stored_layers != layers and not (stored_every and wanted_every):
        differences.insert(
            0,
            f"layers: store has {describe_layers(stored_layers, every=stored_every)}, "
            f"this run asks for {describe_layers(layers, every=wanted_every)}",
        )
    if differences:
        raise ExtractionError(
            "the store was made with another configuration (use --overwrite to start over):\n  "
            + "\n  ".join(differences)
        )
    if stored.get("tokenizer_hash") != prov["tokenizer_hash"]:
        raise ExtractionError("these checkpoints' tokenizer differs from the one the store was made with")
    languages = root.get("languages")
    neurons = None
    if isinstance(languages, zarr.Group):
        for _, group in languages.groups():
            hidden = group.get(dims.HIDDEN)
            if isinstance(hidden, zarr.Array):
                neurons = hidden.shape[3]
                break
    if stored_layers != layers or (neurons is not None and neurons != shape.neurons):
        raise ExtractionError(
            f"the store was made by a different model: it has layers {stored_layers} of {neurons} neurons, "
            f"this model gives layers {layers} of {shape.neurons}"
        )
    for name, digest in prov["data_files"].items():
        if stored.get("data_files", {}).get(name, digest) != digest:
            raise ExtractionError(f"treebank file {name} has changed since the store was made")


def _stored_revisions(root: zarr.Group) -> dict[int, str]:
    steps = [int(s) for s in np.asarray(child_array(root, dims.STEP)[...])]
    return dict(zip(steps, [str(r) for r in np.asarray(child_array(root, dims.REVISION)[...])], strict=True))


def _check_revisions(root: zarr.Group, checkpoints: Sequence[Checkpoint]) -> None:
    revisions = _stored_revisions(root)
    for checkpoint in checkpoints:
        if checkpoint.step in revisions and revisions[checkpoint.step] != checkpoint.label:
            raise ExtractionError(
                f"step {checkpoint.step} is already in the store from {revisions[checkpoint.step]}, "
                f"not {checkpoint.label}"
            )


def _grow(
    location: StoreLocation,
    root: zarr.Group,
    config: ExtractConfig,
    checkpoints: Sequence[Checkpoint],
    corpora: Mapping[str, Corpus],
    encoded: Mapping[str, EncodedCorpus],
    layers: list[int],
    shape: ModelShape,
    prov: Mapping[str, Any],
) -> StorePlan:
    old_steps = [int(s) for s in np.asarray(child_array(root, dims.STEP)[...])]
    revisions = _stored_revisions(root)
    new = [c for c in checkpoints if c.step not in revisions]
    steps = old_steps + [c.step for c in new]
    if new:
        _append_steps(root, len(old_steps), new)
    languages_group = root.get("languages")
    present = set(languages_group.group_keys()) if isinstance(languages_group, zarr.Group) else set()
    added = [language for language in corpora if language not in present]
    for language in added:
        template = language_template(
            corpora[language],
            encoded[language],
            config=config,
            steps=steps,
            layers=layers,
            neurons=shape.neurons,
        )
        write_language(location, language, template, keep_bits=config.keep_bits, shard=config.shard)
    if new or added:
        # Outputs made before summarise the store as it was: they are kept (imported scores
        # too) and now read as stale until they are run again (xalign info says which).
        root.attrs[GENERATION_ATTR] = int(cast(int, root.attrs.get(GENERATION_ATTR, 0))) + 1
        if output_groups(root):
            logger.warning("the store grew: its probing runs and analyses are stale until run again")
    stored: dict[str, Any] = dict(cast(dict[str, Any], root.attrs.asdict()[PROVENANCE_ATTR]))
    stored["data_files"] = {**stored.get("data_files", {}), **prov["data_files"]}
    root.attrs[PROVENANCE_ATTR] = stored
    logger.info("growing the store by steps %s and languages %s", [c.step for c in new], added)
    return StorePlan(
        step_index={s: i for i, s in enumerate(steps)},
        created=False,
        new_steps=tuple(c.step for c in new),
        new_languages=tuple(added),
    )


def _append_steps(root: zarr.Group, old: int, new: Sequence[Checkpoint]) -> None:
    """Lengthen every array along ``step``; existing chunks are untouched."""
    total = old + len(new)
    for _, array in root.arrays():
        _resize_step(array, total)
    node = root.get(LANGUAGES_GROUP)
    groups = [group for _, group in node.groups()] if isinstance(node, zarr.Group) else []
    # Outputs too: one that runs along step spans the store's steps (so that the store opens
    # as one DataTree); the new steps read as fill values (not yet analysed) and it is stale.
    groups += output_groups(root)
    for group in groups:
        for _, array in group.arrays():
            _resize_step(array, total)
    steps = np.asarray([c.step for c in new], dtype=np.int64)
    child_array(root, dims.STEP)[old:total] = steps
    child_array(root, dims.REVISION)[old:total] = np.asarray([c.label for c in new], dtype=object)
    for group in groups:
        if dims.STEP in group:
            child_array(group, dims.STEP)[old:total] = steps


def output_groups(root: zarr.Group) -> list[zarr.Group]:
    """The groups of probing runs and analyses (``results/*``, ``analyses/*/*``)."""
    found = []
    results = root.get(RESULTS_GROUP)
    if isinstance(results, zarr.Group):
        found += [group for _, group in results.groups()]
    analyses = root.get(ANALYSES_GROUP)
    if isinstance(analyses, zarr.Group):
        found += [group for _, kind in analyses.groups() for _, group in kind.groups()]
    return found


def _resize_step(array: zarr.Array[Any], total: int) -> None:
    """Lengthen ``array`` to ``total`` along its step axis, wherever it is (none: untouched)."""
    names = tuple(getattr(array.metadata, "dimension_names", None) or ())
    if dims.STEP in names:
        axis = names.index(dims.STEP)
        array.resize((*array.shape[:axis], total, *array.shape[axis + 1 :]))
