"""Open an activation store as a lazy, Dask-backed xarray view."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
import xarray as xr
import zarr

from xalign import dims
from xalign.errors import StoreValidationError
from xalign.store import outputs, views
from xalign.store.integrity import corrupt_chunk_error
from xalign.store.layout import LANGUAGES_GROUP, PROVENANCE_ATTR, language_group
from xalign.store.location import StoreLocation, describe_location, is_remote, resolve_location
from xalign.store.query import LabelFilter, select
from xalign.store.strings import plain_strings
from xalign.store.validate import find_violations, open_root, schema_version

__all__ = ["Store", "open_store"]

logger = logging.getLogger(__name__)


def open_store(
    location: StoreLocation, *, storage_options: dict[str, Any] | None = None, validate: bool = True
) -> Store:
    """Open the xalign store at ``location`` without loading its arrays.

    Parameters
    ----------
    location
        A directory path, a URL (``s3://bucket/x.zarr``, ``file://...``), or a Zarr v3 store
        object (e.g. ``zarr.storage.MemoryStore``).
    storage_options
        For a URL: credentials, endpoint ... of its filesystem (fsspec's, as xarray takes them);
        default: the Dask config value ``xalign.storage-options``, then the environment
        (:mod:`xalign.store.location`).
    validate
        Check the store against its schema first (reads metadata and small coordinates). In
        object storage, where each group's and array's metadata is a request, the check reads
        the consolidated metadata that extraction writes once the store is complete (one
        request); ``xalign validate`` reads every node's, as this does for a directory.

    Raises
    ------
    StoreNotFoundError
        If there is no Zarr group at ``location``.
    StoreVersionError
        If the store is not an xalign store, or was written by a newer xalign.
    StoreValidationError
        If it departs from its schema; the error lists every violation.

    Examples
    --------
    >>> store = xalign.open_store("runs/demo/toy.zarr")
    >>> store.dataset("fr").hidden.sel(step=600, layer=2)
    >>> xalign.open_store("s3://lab/bloom-560m.zarr", storage_options={"endpoint_url": "http://..."})
    """
    location = resolve_location(location, storage_options)
    root = open_root(location)
    version = schema_version(root, location)
    if validate:
        violations = find_violations(location, consolidated=is_remote(location))
        if violations:
            raise StoreValidationError(describe_location(location), violations)
    return Store(location=location, schema_version=version)


@dataclass(frozen=True, eq=False)
class Store:
    """An opened store: per-language Datasets and the whole DataTree, all lazy.

    Activations and other data variables are Dask arrays chunked as on disk; coordinates
    (labels, steps, layers) are small and are read into memory on first use, so selecting
    words by label never touches the activations.

    Pickles by location (the tree is reopened on the other side), which is what Dask needs
    to ship a store to its workers. A memory store pickles with its contents.

    Examples
    --------
    >>> store = xalign.open_store("runs/demo/toy.zarr")
    >>> store.languages, store.steps, store.layers, store.n_neurons
    >>> store.activations("fr", step=600, layer=2, where={"Number": "Plur"}).mean("word").compute()
    """

    location: StoreLocation
    schema_version: int
    _raw: xr.DataTree = field(init=False, repr=False)
    _labels: dict[str, xr.Dataset] = field(init=False, repr=False, default_factory=dict)
    _arrays: dict[str, zarr.Array[Any]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Opened without Dask: coordinates then load without a Dask computation, and data
        # variables are chunked explicitly to their on-disk chunks by `_lazy`.
        # An interrupted extraction has not consolidated its metadata yet: reading without it
        # is right there, and `xalign info` says that the store is incomplete.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated metadata")
            raw = xr.open_datatree(
                self.location,  # type: ignore[arg-type]
                engine="zarr",
                chunks=None,
                consolidated=None,
                zarr_format=3,
            )
        object.__setattr__(self, "_raw", raw)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Store, (self.location, self.schema_version))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # Without this, Dask names each task by pickling the whole opened tree, labels and
        # all: seconds per task on a real store. A store is its location.
        where: Any = str(self.location) if isinstance(self.location, str | PurePath) else id(self.location)
        return ("xalign.Store", where, self.schema_version)

    def __repr__(self) -> str:
        return (
            f"<xalign.Store {describe_location(self.location)}: {len(self.steps)} step(s), "
            f"{len(self.layers)} layer(s), languages {', '.join(self.languages)}>"
        )

    @property
    def tree(self) -> xr.DataTree:
        """The whole store as a DataTree, data variables as Dask arrays.

        Examples
        --------
        >>> store.tree["languages/fr"].dataset.hidden
        """
        return self._raw.map_over_datasets(_lazy)

    @property
    def languages(self) -> tuple[str, ...]:
        """Language codes, in store order.

        Examples
        --------
        >>> store.languages
        ('en', 'es', 'fr')
        """
        if LANGUAGES_GROUP not in self._raw.children:
            return ()
        return tuple(self._raw[LANGUAGES_GROUP].children)

    @property
    def steps(self) -> np.ndarray:
        """Step numbers of the checkpoints.

        Examples
        --------
        >>> store.steps.tolist()
        [0, 300, 600]
        """
        return np.asarray(self._raw[dims.STEP])

    @property
    def layers(self) -> np.ndarray:
        """Hidden-state indices kept (0 = the embeddings).

        Examples
        --------
        >>> store.layers.tolist()
        [0, 1, 2]
        """
        return np.asarray(self._raw[dims.LAYER])

    @property
    def revisions(self) -> dict[int, str]:
        """Step number -> the revision or path it was loaded from.

        Examples
        --------
        >>> store.revisions[1000]
        'global_step1000'
        """
        return dict(zip(self.steps.tolist(), np.asarray(self._raw[dims.REVISION]).tolist(), strict=True))

    @property
    def fingerprints(self) -> dict[int, str]:
        """Step number -> hash of the checkpoint's weights (equal hashes: duplicate checkpoints).

        Examples
        --------
        >>> len(set(store.fingerprints.values())) == len(store.steps)
        True
        """
        return dict(zip(self.steps.tolist(), np.asarray(self._raw[dims.FINGERPRINT]).tolist(), strict=True))

    @property
    def provenance(self) -> dict[str, Any]:
        """How the store was made (model, tokenizer, pooling, dtype, data hashes ...).

        Examples
        --------
        >>> store.provenance["pooling"]
        'mean'
        """
        return dict(self._raw.attrs[PROVENANCE_ATTR])

    @property
    def n_neurons(self) -> int:
        """Width of the hidden states (the size of ``neuron``); 0 for a store without languages.

        Examples
        --------
        >>> store.n_neurons
        1024
        """
        for language in self.languages:
            return int(self._node(language)[dims.HIDDEN].sizes[dims.NEURON])
        return 0

    def attributes(self, language: str) -> tuple[str, ...]:
        """Attribute label coordinates of ``language``.

        Examples
        --------
        >>> store.attributes("fr")
        ('Gender', 'Number', 'Person', 'Tense', 'upos')
        """
        return tuple(self._node(language).attrs["attributes"])

    def dataset(self, language: str) -> xr.Dataset:
        """The lazy Dataset of one language, with the root's per-step coordinates.

        Examples
        --------
        >>> store.dataset("fr").heldout_loss.to_pandas()
        """
        ds = _lazy(self._node(language).to_dataset(inherit=True))
        per_step = self._raw.to_dataset(inherit=False).coords
        return ds.assign_coords(
            {name: per_step[name] for name in per_step if per_step[name].dims == (dims.STEP,)}
        )

    def labels(self, language: str) -> xr.Dataset:
        """The per-word coordinates of ``language`` (labels, split, subword counts), in memory.

        Read once per opened store: the tasks of a grid that share a store (see
        :func:`xalign.store.cache.task_store`) share them too.

        Examples
        --------
        >>> store.labels("fr")["Number"].to_pandas().value_counts()
        """
        cached = self._labels.get(language)
        if cached is None:
            ds = self.dataset(language)
            coords = ds.drop_vars(list(ds.data_vars))
            cached = coords.drop_dims([d for d in coords.dims if d not in (dims.WORD, dims.STEP, dims.LAYER)])
            self._labels[language] = cached
        return cached

    def words(self, languages: Sequence[str] | None = None) -> xr.Dataset:
        """Word-level variables and labels of several languages along one ``word`` dim (lazy).

        See :func:`xalign.store.views.words`.

        Examples
        --------
        >>> store.words(["fr", "es"]).hidden.sel(step=1000, layer=12).groupby("language").mean("word")
        """
        return views.words(self, languages)

    def parallel(
        self, vector: views.SentenceVector = "mean", languages: Sequence[str] | None = None
    ) -> xr.DataArray:
        """Sentence vectors with dims (language, step, layer, sentence, neuron) for shared sentence ids.

        See :func:`xalign.store.views.parallel`.

        Examples
        --------
        >>> store.parallel("mean", ["en", "fr"]).sel(step=1000, layer=12)
        """
        return views.parallel(self, vector, languages)

    def results(self, name: str = "probe") -> xr.Dataset:
        """The probing run ``results/<name>``, lazily (its attrs: ``parameters``, ``stale``).

        Examples
        --------
        >>> store.results("probe")["test_mi"].sel(rank=9).mean("attribute").plot(col="layer")
        """
        return outputs.open_output_dataset(self.location, outputs.results_path(name))

    def analysis(self, kind: str, name: str) -> xr.Dataset:
        """The stored analysis ``analyses/<kind>/<name>``, lazily (its attrs: ``parameters``, ``stale``).

        Examples
        --------
        >>> store.analysis("overlap", "probe")["overlap"].sel(step=1000, layer=1, attribute="Number").plot()
        """
        return outputs.open_output_dataset(self.location, outputs.analysis_path(kind, name))

    def outputs(self) -> list[outputs.OutputInfo]:
        """Every stored probing run and analysis, each with whether the store grew since it was made.

        Examples
        --------
        >>> [o.path for o in store.outputs() if o.stale]
        """
        return outputs.list_outputs(self.location)

    def activations(
        self,
        language: str,
        *,
        step: int | Collection[int] | None = None,
        layer: int | Collection[int] | None = None,
        split: str | Collection[str] | None = None,
        where: LabelFilter | None = None,
    ) -> xr.DataArray:
        """Lazy hidden states of ``language`` at the given steps and layers, for matching words.

        Examples
        --------
        >>> store.activations("fr", step=1000, layer=12, split="train", where={"Number": "Plur"})
        """
        selected = select(self.dataset(language), step=step, layer=layer, split=split, where=where)
        return selected[dims.HIDDEN]

    def slab(self, language: str, *, step: int, layer: int, context: str = "") -> np.ndarray:
        """The (word, neuron) hidden states of one (step, layer) of ``language``, read now.

        Read synchronously (it is meant for the inside of a Dask task: one task, one slab).

        Raises
        ------
        CorruptChunkError
            If a chunk of the slab fails its checksum or does not decode: names the array,
            each damaged chunk and its file (``context`` says what was being done), where
            zarr's own error names neither.

        Examples
        --------
        >>> store.slab("fr", step=600, layer=2).shape      # (word, neuron), float16
        (11812, 128)
        """
        at = {dims.STEP: self._position(self.steps, step, dims.STEP)}
        at[dims.LAYER] = self._position(self.layers, layer, dims.LAYER)
        array = self._hidden_array(language)
        try:
            # Straight from Zarr: building the lazy Dataset of the language for one slab cost a
            # small task most of its time.
            slab = np.asarray(array[at[dims.STEP], at[dims.LAYER]])
        except (ValueError, RuntimeError) as error:
            corrupt = corrupt_chunk_error(
                self.location,
                f"{language_group(language)}/{dims.HIDDEN}",
                error,
                select={0: at[dims.STEP], 1: at[dims.LAYER]},
                context=context or f"reading step {step}, layer {layer} of {language}",
            )
            if corrupt is None:
                raise
            raise corrupt from error
        return slab

    def _hidden_array(self, language: str) -> zarr.Array[Any]:
        """The Zarr array of ``language``'s hidden states (dims step, layer, word, neuron), opened once."""
        cached = self._arrays.get(language)
        if cached is None:
            self._node(language)  # a clear KeyError for a language the store lacks
            path = f"{language_group(language)}/{dims.HIDDEN}"
            cached = zarr.open_array(self.location, path=path, mode="r")
            self._arrays[language] = cached
        return cached

    @staticmethod
    def _position(values: np.ndarray, value: int, dim: str) -> int:
        found = np.flatnonzero(values == value)
        if not len(found):
            raise KeyError(f"no {dim} {value} in the store; it has {', '.join(map(str, values.tolist()))}")
        return int(found[0])

    def _node(self, language: str) -> xr.DataTree:
        if language not in self.languages:
            raise KeyError(f"no language {language!r} in the store; it has {', '.join(self.languages)}")
        node = self._raw[language_group(language)]
        assert isinstance(node, xr.DataTree)
        return node


def _lazy(ds: xr.Dataset) -> xr.Dataset:
    """Data variables as Dask arrays in their on-disk chunks; coordinates in memory."""
    chunked = {
        name: var.chunk(var.encoding.get("preferred_chunks") or dict(var.sizes))
        for name, var in ds.data_vars.items()
    }
    return plain_strings(ds.assign(chunked).assign_coords(ds.coords.to_dataset().load().coords))
