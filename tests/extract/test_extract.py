"""Extraction end to end on tiny toy checkpoints: values, resume, growth, errors."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tests.extract.conftest import small_config
from xalign import dims, open_store
from xalign.extract import Checkpoint, CheckpointError, ExtractionError, extract_store
from xalign.testing import assert_stores_equal, assert_valid_store
from xalign.treebank.corpus import CorpusOptions


def _reference(checkpoint: Checkpoint, text: str, spans: list[tuple[int, int]]) -> dict[str, Any]:
    """One sentence through the model alone, pooled by a plain loop: the one-shot computation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint.source)
    model = AutoModelForCausalLM.from_pretrained(checkpoint.source).eval()
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([encoded["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    states = torch.stack(out.hidden_states)[:, 0].numpy()  # (layer, token, neuron)
    words = []
    for start, end in spans:
        chosen = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if a < end and b > start and a < b]
        words.append(states[:, chosen].mean(axis=1))
    loss = torch.nn.functional.cross_entropy(out.logits[0, :-1], ids[0, 1:]).item()
    return {
        "words": np.stack(words, axis=1),
        "mean": states.mean(axis=1),
        "last": states[:, -1],
        "loss": loss,
    }


def test_streamed_store_equals_one_shot_computation(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    from xalign.treebank.reader import read_conllu

    location = str(tmp_path / "s.zarr")
    report = extract_store(location, checkpoints, [treebanks["en"], treebanks["fr"]], small_config())
    assert [r.step for r in report.steps] == [0, 2, 4]
    assert_valid_store(location)
    store = open_store(location)
    assert store.languages == ("en", "fr")
    fr = store.dataset("fr").sel(step=2).load()
    sentences = list(read_conllu(treebanks["fr"]))
    word = 0
    for index in (0, 7, 23):
        sentence = sentences[index]
        ref = _reference(checkpoints[1], sentence.text, [w.span for w in sentence.words])
        word = int(np.flatnonzero(fr[dims.SENTENCE_INDEX].values == index)[0])
        got = fr[dims.HIDDEN].values[:, word : word + len(sentence.words)].astype(np.float32)
        np.testing.assert_allclose(got, ref["words"], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(fr[dims.SENTENCE_MEAN].values[:, index], ref["mean"], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(fr[dims.SENTENCE_LAST].values[:, index], ref["last"], rtol=2e-3, atol=2e-3)
        assert float(fr[dims.SENTENCE_LOSS].values[index]) == pytest.approx(ref["loss"], rel=1e-4)
    assert np.isfinite(fr[dims.HIDDEN].values).all()
    assert fr[dims.DONE].values.all()
    losses = store.dataset("en")[dims.HELDOUT_LOSS].values
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]  # training lowered the loss
    fingerprints = store.fingerprints
    assert len(set(fingerprints.values())) == 3


def test_loss_on_a_sample_leaves_the_vectors_unchanged(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    full, sampled = str(tmp_path / "full.zarr"), str(tmp_path / "sampled.zarr")
    extract_store(full, checkpoints[1:2], [treebanks["fr"]], small_config(loss_sentences=None))
    extract_store(sampled, checkpoints[1:2], [treebanks["fr"]], small_config(loss_sentences=3))
    a, b = (open_store(s).dataset("fr").isel(step=0).load() for s in (full, sampled))
    # The base model gives the same hidden states as the full model, without the LM head.
    np.testing.assert_array_equal(a[dims.HIDDEN].values, b[dims.HIDDEN].values)
    measured = np.isfinite(b[dims.SENTENCE_LOSS].values)
    assert measured.sum() == 4  # the first planned batch (of 4 sentences) covers the 3 asked for
    np.testing.assert_array_equal(
        a[dims.SENTENCE_LOSS].values[measured], b[dims.SENTENCE_LOSS].values[measured]
    )
    assert np.isfinite(b[dims.HELDOUT_LOSS].values).all()


def test_rerun_skips_what_is_done(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    location = str(tmp_path / "s.zarr")
    extract_store(location, checkpoints[:1], [treebanks["en"]], small_config())
    again = extract_store(location, checkpoints[:1], [treebanks["en"]], small_config())
    assert again.steps == ()
    assert again.skipped == (0,)


_CHILD = """
import sys
from pathlib import Path
from xalign.extract import ExtractConfig, extract_store, from_directory
_, checkpoints = from_directory(sys.argv[2])
config = ExtractConfig(
    model_id="xalign/toy-bloom", chunk_words=64, chunk_sentences=8, chunk_subwords=128, batch_size=4
)
extract_store(sys.argv[1], checkpoints, sys.argv[3:], config)
"""


def _chunk_files(location: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(location / "languages"))


def test_sigkill_at_random_points_then_resume_gives_an_identical_store(
    tmp_path: Path, toy_dir: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    files = [str(treebanks["en"]), str(treebanks["fr"])]
    reference = tmp_path / "reference.zarr"
    extract_store(str(reference), checkpoints, files, small_config())
    total = _chunk_files(reference)
    rng = np.random.default_rng(0)
    for attempt in range(2):
        location = tmp_path / f"killed{attempt}.zarr"
        kill_after = int(rng.integers(total // 4, 3 * total // 4))
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_CHILD), str(location), str(toy_dir), *files],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if location.exists() and _chunk_files(location) >= kill_after:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        child.wait()
        assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        extract_store(str(location), checkpoints, files, small_config())
        assert_stores_equal(reference, location)


def test_a_different_configuration_is_refused(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    location = str(tmp_path / "s.zarr")
    extract_store(location, checkpoints[:1], [treebanks["en"]], small_config())
    with pytest.raises(ExtractionError, match=r"another configuration(.|\n)*pooling: store has 'mean'"):
        extract_store(location, checkpoints[:1], [treebanks["en"]], small_config(pooling="first"))
    extract_store(location, checkpoints[:1], [treebanks["en"]], small_config(pooling="first"), overwrite=True)
    assert open_store(location).provenance["pooling"] == "first"


def test_a_store_made_before_the_surface_and_pos_options_still_resumes(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    import zarr

    location = str(tmp_path / "s.zarr")
    extract_store(location, checkpoints[:1], [treebanks["en"]], small_config())
    root = zarr.open_group(location, mode="r+")
    provenance = dict(root.attrs["provenance"])
    config = dict(provenance["config"])
    config["corpus"] = {k: v for k, v in config["corpus"].items() if k not in ("pos", "units")}
    root.attrs["provenance"] = {**provenance, "config": config}
    again = extract_store(location, checkpoints[:1], [treebanks["en"]], small_config())
    assert again.skipped == (0,)
    tokens = small_config(corpus=CorpusOptions(units="tokens"))
    with pytest.raises(ExtractionError, match=r"corpus.units: store has 'words', this run asks for 'tokens'"):
        extract_store(location, checkpoints[:1], [treebanks["en"]], tokens)


def test_growing_by_a_step_and_a_language_equals_extracting_at_once(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    import xalign
    from xalign.cli.main import cli

    grown, at_once = str(tmp_path / "grown.zarr"), str(tmp_path / "at_once.zarr")
    extract_store(grown, checkpoints[:2], [treebanks["en"]], small_config())
    store = xalign.open_store(grown)
    params = {"probe": "gaussian", "k": 2, "min_count": 2}
    xalign.persist(xalign.probe(store, attributes=["Number"], layers=[1], **params), store)
    xalign.persist(xalign.overlap(store), store)
    xalign.persist(xalign.transfer(store, min_count=2, attributes=["Number"]), store)
    scores = tmp_path / "scores.csv"
    scores.write_text("step,language,task,score\n0,en,xnli,0.4\n2,en,xnli,0.5\n")
    xalign.persist(xalign.import_transfer_scores(store, scores), store)
    # Grown by a step alone: a probing run again does only the new step's slab.
    extract_store(grown, checkpoints[:3], [treebanks["en"]], small_config())
    store = xalign.open_store(grown)
    assert [o.path for o in store.outputs() if o.stale] == [
        "results/probe",
        *(f"analyses/{p}" for p in ("overlap/probe", "transfer/linear")),
    ]
    step_only = xalign.persist(xalign.probe(store, attributes=["Number"], layers=[1], **params), store)
    assert step_only.report is not None
    assert step_only.report.slabs_run == 1
    report = extract_store(grown, checkpoints, [treebanks["en"], treebanks["es"]], small_config())
    assert report.new_steps == ()
    assert report.new_languages == ("es",)
    assert_valid_store(grown)
    store = xalign.open_store(grown)
    tree = store.tree  # every output kept, still aligned with the grown steps
    for path in ("results/probe", "analyses/overlap/probe", "analyses/transfer/linear"):
        assert tree[path]["step"].values.tolist() == [0, 2, 4], path
    assert np.isnan(tree["analyses/overlap/probe"]["overlap"].sel(step=4).values).all()  # not yet
    assert (
        store.analysis("transfer_scores", "scores")["score"].sel(task="xnli", step=2, language="en").values
        == 0.5
    )
    stale = {o.path for o in store.outputs() if o.stale}
    assert stale == {"results/probe", "analyses/overlap/probe", "analyses/transfer/linear"}  # not imports
    info = CliRunner().invoke(cli, ["info", grown])
    assert "probe: 0/" not in info.output
    assert "overlap: probe (stale: the store grew since" in info.output
    # Running it again brings it up to date: over every slab, as the store grew by a language.
    again = xalign.persist(xalign.probe(store, attributes=["Number"], layers=[1], **params), store)
    assert again.report is not None
    assert again.report.slabs_run == 3 * 2
    assert not again.result.attrs["stale"]
    redone = xalign.persist(xalign.overlap(store), store)
    assert redone.written
    assert not redone.result.attrs["stale"]
    shutil.rmtree(Path(grown) / "results")  # to compare the rest with a store made at once
    shutil.rmtree(Path(grown) / "analyses")
    extract_store(at_once, checkpoints, [treebanks["en"], treebanks["es"]], small_config())
    assert_stores_equal(at_once, grown, ignore_attrs=("provenance", "generation"))


def test_subwords_and_rounded_mantissas(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    exact, rounded = str(tmp_path / "exact.zarr"), str(tmp_path / "rounded.zarr")
    extract_store(exact, checkpoints[:1], [treebanks["fr"]], small_config(keep_subwords=True))
    extract_store(rounded, checkpoints[:1], [treebanks["fr"]], small_config(keep_subwords=True, keep_bits=4))
    ds = open_store(exact).dataset("fr").isel(step=0).load()
    owner = ds[dims.SUBWORD_WORD].values
    word = 5
    rows = ds[dims.SUBWORD_HIDDEN].values[:, owner == word].astype(np.float32)
    np.testing.assert_allclose(
        rows.mean(axis=1), ds[dims.HIDDEN].values[:, word].astype(np.float32), atol=2e-3
    )
    lossy = open_store(rounded).dataset("fr").isel(step=0)[dims.HIDDEN].values.astype(np.float32)
    exact_values = ds[dims.HIDDEN].values.astype(np.float32)
    relative = np.abs(lossy - exact_values) / np.maximum(np.abs(exact_values), 1e-3)
    assert 0 < relative.max() <= 2**-4
    sizes = [zarr.open_group(s, mode="r")["languages/fr/hidden"].nbytes_stored() for s in (exact, rounded)]  # type: ignore[union-attr]
    assert sizes[1] < sizes[0]


def test_unknown_or_missing_checkpoints_are_clear_errors(tmp_path: Path, treebanks: dict[str, Path]) -> None:
    hub = Checkpoint(step=1000, source="bigscience/bloom-560m-intermediate", revision="global_step1000")
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        extract_store(str(tmp_path / "s.zarr"), [hub], [treebanks["en"]], small_config())
    missing = Checkpoint(step=0, source=str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="no checkpoint directory at"):
        extract_store(str(tmp_path / "s.zarr"), [missing], [treebanks["en"]], small_config())


def test_unwritable_store_is_a_clear_error(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ExtractionError, match="cannot create a store at"):
        extract_store(str(blocker / "s.zarr"), checkpoints[:1], [treebanks["en"]], small_config())


def test_a_store_of_another_model_is_refused(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    from xalign.toy import ToyConfig, train_toy_checkpoints

    other = tmp_path / "wide"
    train_toy_checkpoints(
        other,
        ToyConfig(
            steps=(0,), hidden_size=48, n_layer=2, n_head=2, vocab_size=400, languages=("en", "fr", "es")
        ),
    )
    location = str(tmp_path / "s.zarr")
    extract_store(location, checkpoints[:1], [treebanks["en"]], small_config())
    wide = Checkpoint(step=8, source=str(other / "step_0"))
    with pytest.raises(ExtractionError, match=r"made by a different model.*32.*48"):
        extract_store(location, [wide], [treebanks["en"]], small_config())


def test_disk_full_mid_run_is_clear_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    location, reference = str(tmp_path / "s.zarr"), str(tmp_path / "ref.zarr")
    extract_store(reference, checkpoints[:1], [treebanks["fr"]], small_config())
    original = zarr.Array.__setitem__
    writes = {"n": 0}

    def full_disk(self: zarr.Array[Any], key: Any, value: Any) -> None:
        if self.path.endswith("hidden"):
            writes["n"] += 1
            if writes["n"] > 5:
                raise OSError(errno.ENOSPC, "No space left on device")
        original(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", full_disk)
    with pytest.raises(ExtractionError, match="out of disk space"):
        extract_store(location, checkpoints[:1], [treebanks["fr"]], small_config())
    monkeypatch.setattr(zarr.Array, "__setitem__", original)
    extract_store(location, checkpoints[:1], [treebanks["fr"]], small_config())
    assert_stores_equal(reference, location)


def test_extraction_on_a_local_dask_cluster_equals_the_sequential_run(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    sequential, parallel = str(tmp_path / "seq.zarr"), str(tmp_path / "par.zarr")
    files = [treebanks["en"], treebanks["fr"]]
    extract_store(sequential, checkpoints, files, small_config())
    from xalign.cli.cluster import compute_on

    with compute_on("local:2") as where:
        report = extract_store(parallel, checkpoints, files, small_config(), client=where["client"])
    assert sorted(r.step for r in report.steps) == [0, 2, 4]
    assert_stores_equal(sequential, parallel)


def test_extraction_with_another_number_of_torch_threads_agrees_within_one_float16_ulp(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    """A Dask worker runs torch with one thread, a run here with all cores: matrix kernels may
    then sum in another order, and a value on a float16 rounding boundary round the other way.
    The README promises at most one float16 ulp (in practice: identical on this CPU)."""
    import torch

    before = torch.get_num_threads()
    stores = {threads: str(tmp_path / f"threads{threads}.zarr") for threads in (1, 2)}
    try:
        for threads, location in stores.items():
            torch.set_num_threads(threads)
            extract_store(location, checkpoints[1:], [treebanks["fr"]], small_config())
    finally:
        torch.set_num_threads(before)
    assert_stores_equal(stores[1], stores[2], ulps=1)


def long_sentence_treebank(language: str, words: int, out: Path, name: str | None = None) -> Path:
    """One sentence of ``words`` words, made of the embedded PUD sentences of ``language`` run together."""
    from xalign.data import pud_files

    (source,) = pud_files([language])
    rows = []
    for line in source.read_text(encoding="utf-8").splitlines():
        columns = line.split("\t")
        if len(columns) == 10 and columns[0].isdigit() and len(rows) < words:
            rows.append(columns)
    lines = ["# sent_id = long-1", "# text = " + " ".join(r[1] for r in rows)]
    for i, r in enumerate(rows):
        head, relation = ("0", "root") if i == 0 else ("1", "dep")
        lines.append("\t".join([str(i + 1), r[1], r[2], r[3], r[4], r[5], head, relation, "_", "_"]))
    path = out / (name or source.name)
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def test_a_sentence_longer_than_the_window_gets_every_word(
    tmp_path: Path, checkpoints: list[Checkpoint]
) -> None:
    """400 words at --max-length 64: every word has a finite vector; the words of the first
    window equal a run whose window holds the whole sentence (a causal model's first window
    sees what the whole pass sees); later words, seen with >= stride subwords of left
    context, stay close to it."""
    treebank = long_sentence_treebank("en", 400, tmp_path)
    windowed, whole = str(tmp_path / "windowed.zarr"), str(tmp_path / "whole.zarr")
    report = extract_store(
        windowed, checkpoints[2:], [treebank], small_config(max_length=64, stride=48, keep_subwords=True)
    )
    extract_store(whole, checkpoints[2:], [treebank], small_config(max_length=4096))
    coverage = report.coverage["en"]
    assert coverage.windowed_sentences == 1
    assert coverage.unencoded_words == 0
    assert coverage.longest > 64 * 4  # many windows
    a, b = open_store(windowed).dataset("en"), open_store(whole).dataset("en")
    assert a.attrs["windowed_sentences"] == 1
    assert b.attrs["windowed_sentences"] == 0
    assert a.attrs["unencoded_words"] == 0
    assert open_store(windowed).provenance["windowing"]["stride"] == 48
    got = a[dims.HIDDEN].isel(step=0).values.astype(np.float32)
    want = b[dims.HIDDEN].isel(step=0).values.astype(np.float32)
    assert got.shape[1] == 400
    assert np.isfinite(got).all()
    # Every subword is kept once, and the loss covers the whole sentence.
    subwords = a[dims.SUBWORD_HIDDEN].isel(step=0).values
    assert subwords.shape[1] == int(a[dims.SENTENCE_TOKENS].values[0]) == coverage.longest
    assert np.isfinite(subwords).all()
    assert float(a[dims.SENTENCE_LOSS].values[0, 0]) == pytest.approx(
        float(b[dims.SENTENCE_LOSS].values[0, 0]), rel=0.02
    )
    # Words whose subwords all lie in the first window (positions < 64).
    from xalign.extract.checkpoints import load_checkpoint
    from xalign.extract.encode import encode_corpus
    from xalign.treebank.corpus import load_corpora

    (corpus,) = load_corpora([treebank]).values()
    encoded = encode_corpus(corpus, load_checkpoint(checkpoints[2]).tokenizer)
    last_position = np.array([p.max() for p in encoded.word_positions_of(0)])
    first_window = last_position < 64
    assert first_window.sum() > 10
    np.testing.assert_allclose(got[:, first_window], want[:, first_window], rtol=2e-3, atol=2e-3)
    later = ~first_window
    cosine = (got[:, later] * want[:, later]).sum(-1) / (
        np.linalg.norm(got[:, later], axis=-1) * np.linalg.norm(want[:, later], axis=-1)
    )
    assert cosine.min() > 0.999
    assert np.abs(got[:, later] - want[:, later]).max() < 0.02 * np.abs(want).max()


def test_the_ulp_tolerance_counts_representable_values_between(tmp_path: Path) -> None:
    import numpy as np
    import zarr

    from xalign.testing import ulp_distance

    one = np.float16(1)
    up = np.nextafter(one, np.float16(2))
    values = np.array([one, -0.0, np.nan, 0.5], dtype=np.float16)
    moved = np.array([up, 0.0, np.nan, 0.5], dtype=np.float16)
    assert ulp_distance(values, moved).tolist() == [1, 0, 0, 0]
    assert ulp_distance(np.float32([-1e-45]), np.float32([1e-45])).tolist() == [2]
    stores = []
    for name, data in (("a", values), ("b", moved), ("c", np.nextafter(moved, np.float16(2)))):
        zarr.open_group(str(tmp_path / name), mode="w").create_array("x", data=data)
        stores.append(str(tmp_path / name))
    assert_stores_equal(stores[0], stores[1], ulps=1)
    with pytest.raises(AssertionError, match="values differ"):
        assert_stores_equal(stores[0], stores[1])
    with pytest.raises(AssertionError, match="up to 2 ulps"):
        assert_stores_equal(stores[0], stores[2], ulps=1)


def test_a_hub_download_fetches_the_config_tokenizer_and_one_weight_format() -> None:
    from fnmatch import fnmatch

    from xalign.extract.checkpoints import needed_files

    def fetched(files: list[str]) -> list[str]:
        return [f for f in files if any(fnmatch(f, pattern) for pattern in needed_files(files))]

    common = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    others = ["flax_model.msgpack", "tf_model.h5", "onnx/model.onnx", "README.md", ".gitattributes"]
    both = [*common, *others, "model.safetensors", "pytorch_model.bin"]
    assert fetched(both) == [*common, "model.safetensors"]
    bin_only = [*common, *others, "pytorch_model.bin"]
    assert fetched(bin_only) == [*common, "pytorch_model.bin"]
    sharded = [*common, "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert fetched([*sharded, "model.safetensors.index.json"]) == [*sharded, "model.safetensors.index.json"]
    # Another copy of the weights, or an adapter's, is not the model's: .bin it is.
    assert fetched([*bin_only, "consolidated.safetensors", "adapter/model.safetensors"]) == [
        *common,
        "pytorch_model.bin",
    ]
    sentencepiece = ["config.json", "tokenizer.model", "spiece.model", "vocab.txt", "pytorch_model.bin"]
    assert fetched(sentencepiece) == sentencepiece


@pytest.mark.parametrize("offline", [False, True])
def test_a_hub_listing_that_fails_falls_back_to_both_weight_formats(
    monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    from xalign.extract.checkpoints import _wanted_files, needed_files

    listed: list[tuple[str, str | None]] = []

    def unreachable(self: object, repo_id: str, *, revision: str | None = None, **_: object) -> list[str]:
        listed.append((repo_id, revision))
        raise RuntimeError("a connection error of whichever HTTP library huggingface_hub uses")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", unreachable)
    checkpoint = Checkpoint(step=1, source="org/model", revision="global_step1")
    patterns = _wanted_files(checkpoint)
    assert set(needed_files(["model.safetensors"])) | set(needed_files(["pytorch_model.bin"])) == set(
        patterns
    )
    assert listed == ([] if offline else [("org/model", "global_step1")])


def test_a_hub_listing_picks_the_weight_format(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    from xalign.extract.checkpoints import _wanted_files, needed_files

    files = ["config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda *args, **kwargs: files)
    patterns = _wanted_files(Checkpoint(step=1, source="org/model", revision="main"))
    assert patterns == needed_files(files)
    assert not any(p.endswith(".bin") for p in patterns)


def test_a_local_checkpoint_is_recorded_by_its_directory(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    import xalign

    location = str(tmp_path / "s.zarr")
    extract_store(location, checkpoints[:1], [treebanks["en"]], small_config(layers=(0,)))
    provenance = xalign.open_store(location).provenance
    assert provenance["tokenizer"] == checkpoints[0].source
    assert provenance["tokenizer_source"] == {"directory": checkpoints[0].source}
