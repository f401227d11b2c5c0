"""The toy trainer: checkpoints that load like hub revisions, deterministic, reusable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from click.testing import CliRunner  # noqa: E402

from xalign.cli.toy_commands import toy_checkpoints  # noqa: E402
from xalign.errors import XalignError  # noqa: E402
from xalign.toy import (  # noqa: E402
    MANIFEST_NAME,
    TOY_MODEL_ID,
    ToyCheckpointError,
    ToyConfig,
    ToyManifest,
    read_manifest,
    train_toy_checkpoints,
)

Run = tuple[Path, ToyManifest, list[tuple[int, float]]]

TINY = ToyConfig(steps=(0, 2, 4), hidden_size=32, n_layer=2, n_head=4, vocab_size=400, languages=("en", "fr"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One tiny training run shared by the read-only tests, with what on_step saw."""
    out = tmp_path_factory.mktemp("toy") / "run"
    seen: list[tuple[int, float]] = []
    manifest = train_toy_checkpoints(out, TINY, on_step=lambda step, loss: seen.append((step, loss)))
    return out, manifest, seen


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading must not need the hub: HF_HUB_OFFLINE, as the extractor runs it."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def state_dict(path: Path) -> dict[str, Any]:
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_manifest_and_directories_are_written(tiny_run: Run) -> None:
    out, manifest, _ = tiny_run
    assert manifest.model_id == TOY_MODEL_ID
    assert manifest.checkpoints == ((0, "step_0"), (2, "step_2"), (4, "step_4"))
    assert manifest.steps == TINY.steps
    assert manifest.config == TINY.to_dict()
    assert [step for step, _ in manifest.losses] == [0, 2, 4]
    assert manifest.sentences == {"en": 450, "fr": 450}  # 10% of each language held out
    assert manifest.held_out == {"en": 50, "fr": 50}
    assert manifest.n_parameters > 0
    assert read_manifest(out) == manifest
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "step_0", "step_2", "step_4"]
    for _, path in manifest.checkpoints:
        assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
            p.name for p in (out / path).iterdir()
        }


def test_on_step_sees_every_step(tiny_run: Run) -> None:
    _, manifest, seen = tiny_run
    assert [step for step, _ in seen] == [1, 2, 3, 4]
    # on_step hears the training batch's loss; the manifest records the held-out loss
    # (test_the_recorded_loss_is_the_loss_on_the_held_out_sentences).
    assert [step for step, _ in manifest.losses] == [0, 2, 4]


@pytest.mark.usefixtures("offline")
def test_checkpoints_load_like_hub_revisions(tiny_run: Run) -> None:
    out, manifest, _ = tiny_run
    for _, path in manifest.checkpoints:
        model = transformers.AutoModelForCausalLM.from_pretrained(out / path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(out / path)
        assert model.config.model_type == "bloom"
        assert model.config.n_layer == TINY.n_layer
        assert model.config.vocab_size == len(tokenizer)
        batch = tokenizer(["The cat sleeps.", "Les chats dorment."], padding=True, return_tensors="pt")
        with torch.no_grad():
            output = model(**batch, output_hidden_states=True)
        assert len(output.hidden_states) == TINY.n_layer + 1
        assert output.hidden_states[0].shape == (*batch["input_ids"].shape, TINY.hidden_size)
        assert torch.isfinite(output.hidden_states[-1]).all()


@pytest.mark.usefixtures("offline")
def test_tokenizer_gives_offsets_and_pads(tiny_run: Run) -> None:
    out, _, _ = tiny_run
    tokenizer = transformers.AutoTokenizer.from_pretrained(out / "step_4")
    assert tokenizer.pad_token == "<pad>"
    assert tokenizer.pad_token_id is not None
    assert tokenizer.eos_token == "</s>"
    text = "Les chats dorment bien."
    encoded = tokenizer(text, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    assert len(offsets) == len(encoded["input_ids"]) > 0
    # No special tokens are added (as with BLOOM's tokenizer); offsets tile the words, spaces excluded.
    assert all(end > start for start, end in offsets)
    assert "".join(text[start:end] for start, end in offsets) == text.replace(" ", "")
    assert tokenizer.decode(encoded["input_ids"]) == text
    padded = tokenizer(["a", "a b c d"], padding=True)
    assert padded["input_ids"][0][-1] == tokenizer.pad_token_id
    assert padded["attention_mask"][0][-1] == 0


def test_training_moves_the_weights_and_lowers_the_loss(
    tiny_run: Run,
) -> None:
    out, manifest, _ = tiny_run
    first, last = state_dict(out / "step_0"), state_dict(out / "step_4")
    assert not all(torch.equal(first[k], last[k]) for k in first)
    losses = [loss for _, loss in manifest.losses]
    assert losses[-1] < losses[0]
    # At initialisation the loss is about that of a uniform guess.
    assert losses[0] == pytest.approx(torch.log(torch.tensor(TINY.vocab_size)).item(), rel=0.05)


def test_two_runs_give_identical_weights(tiny_run: Run, tmp_path: Path) -> None:
    out, manifest, _ = tiny_run
    again = train_toy_checkpoints(tmp_path / "again", TINY)
    assert again.losses == manifest.losses
    for step in (0, 4):
        first, second = state_dict(out / f"step_{step}"), state_dict(tmp_path / "again" / f"step_{step}")
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)
    assert (out / "step_4" / "tokenizer.json").read_bytes() == (
        tmp_path / "again" / "step_4" / "tokenizer.json"
    ).read_bytes()


def test_another_seed_gives_other_weights(tmp_path: Path) -> None:
    config = ToyConfig(steps=(0,), hidden_size=32, n_layer=2, vocab_size=300, languages=("en",))
    train_toy_checkpoints(tmp_path / "a", config)
    train_toy_checkpoints(tmp_path / "b", ToyConfig(**{**config.to_dict(), "seed": 1, "languages": ("en",)}))
    a, b = state_dict(tmp_path / "a" / "step_0"), state_dict(tmp_path / "b" / "step_0")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_caller_rng_is_left_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_toy_checkpoints(
        tmp_path / "run", ToyConfig(steps=(0,), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    )
    assert torch.equal(torch.rand(3), expected)


def test_rerun_reuses_a_finished_run(tiny_run: Run) -> None:
    out, manifest, _ = tiny_run
    stamp = (out / "step_4" / "model.safetensors").stat().st_mtime_ns
    seen: list[int] = []
    assert train_toy_checkpoints(out, TINY, on_step=lambda step, loss: seen.append(step)) == manifest
    assert seen == []
    assert (out / "step_4" / "model.safetensors").stat().st_mtime_ns == stamp


def test_conflicting_rerun_raises_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    small = ToyConfig(steps=(0, 1), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    train_toy_checkpoints(out, small)
    other = ToyConfig(steps=(0, 2), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    with pytest.raises(ToyCheckpointError, match=r"another config \(steps: \[0, 1\] there, \[0, 2\] asked\)"):
        train_toy_checkpoints(out, other)
    manifest = train_toy_checkpoints(out, other, overwrite=True)
    assert manifest.steps == (0, 2)
    assert read_manifest(out) == manifest
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "step_0", "step_2"]


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    config = ToyConfig(steps=(0,), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    with pytest.raises(XalignError, match="holds no toy checkpoints"):
        train_toy_checkpoints(tmp_path, config)
    # Overwriting deletes only what a toy run writes.
    train_toy_checkpoints(tmp_path, config, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ToyCheckpointError, match="not a directory"):
        train_toy_checkpoints(tmp_path / "notes.txt", config)


def test_interrupted_run_of_the_same_config_is_redone(tmp_path: Path) -> None:
    config = ToyConfig(steps=(0, 1), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    out = tmp_path / "run"
    expected = train_toy_checkpoints(tmp_path / "reference", config)
    # What a kill after the first checkpoint leaves behind.
    out.mkdir()
    (out / ".toy-in-progress.json").write_text(json.dumps({"config": config.to_dict()}))
    (out / "step_0").mkdir()
    (out / ".step_1.partial").mkdir()
    other = ToyConfig(steps=(0, 3), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    with pytest.raises(ToyCheckpointError, match="unfinished toy run of another config"):
        train_toy_checkpoints(out, other)
    assert train_toy_checkpoints(out, config).losses == expected.losses
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "step_0", "step_1"]


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ToyCheckpointError, match="no toy-checkpoint manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{")
    with pytest.raises(ToyCheckpointError, match="unreadable"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ToyCheckpointError, match="format version 99"):
        read_manifest(tmp_path)


def test_manifest_round_trip(tiny_run: Run) -> None:
    _, manifest, _ = tiny_run
    assert ToyManifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    assert ToyConfig.from_dict(manifest.config) == TINY


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": ()}, "non-empty"),
        ({"steps": (0, 5, 5)}, "strictly increasing"),
        ({"steps": (-1, 2)}, ">= 0"),
        ({"hidden_size": 30}, "must divide hidden_size"),
        ({"vocab_size": 100}, "vocab_size must be >= 260"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"max_length": 1}, "max_length"),
        ({"languages": ("en", "xx")}, "PUD languages"),
        ({"languages": ()}, "PUD languages"),
    ],
)
def test_invalid_config_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ToyCheckpointError, match=message):
        ToyConfig(**changes)  # type: ignore[arg-type]


def test_default_config_matches_the_documented_run() -> None:
    config = ToyConfig()
    assert config.steps[0] == 0
    assert (config.hidden_size, config.n_layer, config.n_head, config.vocab_size) == (128, 4, 4, 8000)
    assert (config.batch_size, config.learning_rate) == (32, 2e-3)
    assert len(config.languages) == 8


def test_cli_trains_then_reuses(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    args = [
        "--out",
        str(out),
        "--step",
        "0,1,2",
        "--hidden-size",
        "32",
        "--blocks",
        "1",
        "--vocab-size",
        "300",
    ]
    result = CliRunner().invoke(toy_checkpoints, args)
    assert result.exit_code == 0, result.output
    assert "3 checkpoints of xalign/toy-bloom" in result.output
    for step in (0, 1, 2):
        assert str(out / f"step_{step}") in result.output
    assert read_manifest(out).steps == (0, 1, 2)
    again = CliRunner().invoke(toy_checkpoints, args)
    assert again.exit_code == 0, again.output
    assert "reused" in again.output


def test_cli_rejects_bad_steps(tmp_path: Path) -> None:
    result = CliRunner().invoke(toy_checkpoints, ["--out", str(tmp_path), "--step", "0,ten"])
    assert result.exit_code == 2
    assert "'ten' in '0,ten' is not an integer" in result.output


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(toy_checkpoints, ["--help"])
    assert result.exit_code == 0
    assert "Example:\n    xalign toy-checkpoints --out runs/toy" in result.output


def test_the_cli_module_imports_without_torch() -> None:
    code = "import sys, xalign.cli.toy_commands; print('xalign.toy' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_held_out_sentences_are_never_trained_on_and_fixed_by_the_seed() -> None:
    from xalign.toy import HELD_OUT_FRACTION, _load_texts, split_held_out

    texts = _load_texts(("en", "fr"))
    training, held_out = split_held_out(texts, seed=0)
    again, same = split_held_out(texts, seed=0)
    _, other = split_held_out(texts, seed=1)
    for language in ("en", "fr"):
        assert not set(training[language]) & set(held_out[language])
        assert sorted(training[language] + held_out[language]) == sorted(texts[language])
        assert len(held_out[language]) == round(HELD_OUT_FRACTION * len(texts[language]))
        assert (training[language], held_out[language]) == (again[language], same[language])
        assert held_out[language] != other[language]


def test_the_recorded_loss_is_the_loss_on_the_held_out_sentences(tiny_run: Run, offline: None) -> None:
    import torch.nn.functional as F

    from xalign.toy import _load_texts, split_held_out

    out, manifest, _ = tiny_run
    _, held_out = split_held_out(_load_texts(TINY.languages), seed=TINY.seed)
    assert manifest.held_out == {language: len(held_out[language]) for language in TINY.languages}
    assert manifest.sentences == {language: 500 - manifest.held_out[language] for language in TINY.languages}
    step, recorded = manifest.losses[-1]
    model = transformers.AutoModelForCausalLM.from_pretrained(out / f"step_{step}").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out / f"step_{step}")
    total, tokens = 0.0, 0
    with torch.no_grad():
        for language in TINY.languages:
            for text in held_out[language]:  # one sentence at a time: no padding to get wrong
                encoded = [*tokenizer(text, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
                ids = torch.tensor([encoded[: TINY.max_length]])
                logits = model(input_ids=ids).logits[0, :-1]
                total += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
                tokens += ids.shape[1] - 1
    assert recorded == pytest.approx(total / tokens, rel=1e-4)


def test_a_manifest_without_held_out_counts_reads_but_is_not_reused(tmp_path: Path) -> None:
    config = ToyConfig(steps=(0,), hidden_size=32, n_layer=1, vocab_size=300, languages=("en",))
    out = tmp_path / "run"
    manifest = train_toy_checkpoints(out, config)
    # What a toy run wrote before sentences were held out: no "held_out", losses on training text.
    old = manifest.to_dict()
    del old["held_out"]
    (out / MANIFEST_NAME).write_text(json.dumps(old))
    assert read_manifest(out).held_out == {}
    assert read_manifest(out).sentences == manifest.sentences
    with pytest.raises(ToyCheckpointError, match="from before xalign held some out"):
        train_toy_checkpoints(out, config)
    assert train_toy_checkpoints(out, config, overwrite=True) == manifest
