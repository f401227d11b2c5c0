"""``xalign extract`` at the command line: progress, summary, and clear errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from xalign.cli.main import cli


def test_extract_then_info(tmp_path: Path, toy_dir: Path, treebanks: dict[str, Path]) -> None:
    store = str(tmp_path / "s.zarr")
    args = ["extract", store, "--checkpoints", str(toy_dir), "--treebank", str(treebanks["en"])]
    result = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layer", "0,2"])
    assert result.exit_code == 0, result.output
    assert "step 4:" in result.output
    assert "weights" in result.output
    again = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layer", "0,2"])
    assert "already complete, skipped: steps 0, 2, 4" in again.output
    info = CliRunner().invoke(cli, ["info", store])
    assert info.exit_code == 0, info.output
    assert "complete" in info.output
    assert "step 3, layer 2" in info.output
    changed = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layer", "0,1"])
    assert changed.exit_code == 1
    assert "another configuration" in changed.output
    assert "Traceback" not in changed.output


def test_extract_usage_errors(tmp_path: Path, toy_dir: Path) -> None:
    store = str(tmp_path / "s.zarr")
    missing = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--treebank", "nope.conllu"]
    )
    assert missing.exit_code == 2
    assert "nope.conllu" in missing.output
    assert "does not exist" in missing.output
    none = CliRunner().invoke(cli, ["extract", store])
    assert none.exit_code == 2
    assert "no checkpoints" in none.output
    bad_layer = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--language", "en", "--layer", "0,9"]
    )
    assert bad_layer.exit_code == 1
    assert "layer(s) [9] do not exist" in bad_layer.output
    local = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--language", "en", "--scheduler", "threads"]
    )
    assert local.exit_code == 2
    assert "give local:N or tcp://host:port" in local.output
    unknown = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--language", "en", "--scheduler", "gpu"]
    )
    assert unknown.exit_code == 1
    assert "unknown scheduler 'gpu'" in unknown.output
    offline = CliRunner().invoke(
        cli, ["extract", store, "--model", "bigscience/bloom-560m-intermediate", "--step", "1000"]
    )
    assert offline.exit_code == 1
    assert "global_step1000 is not in the local Hugging Face cache" in offline.output


def _listing(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (and beside it) with its bytes: what a refused run must not change."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_refused_extract_leaves_nothing_behind(
    tmp_path: Path, toy_dir: Path, treebanks: dict[str, Path]
) -> None:
    store = tmp_path / "s.zarr"
    args = ["extract", str(store), "--checkpoints", str(toy_dir), "--treebank", str(treebanks["en"])]
    assert CliRunner().invoke(cli, [*args, "--chunk-words", "64"]).exit_code == 0
    before = _listing(tmp_path)
    for change in (["--layer", "0,1"], ["--dtype", "float32"], ["--pooling", "first"]):
        refused = CliRunner().invoke(cli, [*args, "--chunk-words", "64", *change])
        assert refused.exit_code == 1, refused.output
        assert "another configuration" in refused.output
        assert "Traceback" not in refused.output
        assert _listing(tmp_path) == before  # no note, no lock, no group, nothing rewritten
    layers = CliRunner().invoke(cli, [*args, "--chunk-words", "64", "--layer", "0,1"])
    assert "layers: store has all layers (0-2), this run asks for layers 0, 1" in layers.output
    rerun = CliRunner().invoke(cli, [*args, "--chunk-words", "64"])
    assert rerun.exit_code == 0, rerun.output
    assert "undoing" not in rerun.output
    assert "already complete" in rerun.output


def test_extract_refuses_a_path_that_holds_something_else(tmp_path: Path, toy_dir: Path) -> None:
    import zarr

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2).create_array(
        "a", shape=(2,), dtype="i4"
    )
    (tmp_path / "file.zarr").write_text("not a store")
    before = _listing(tmp_path)
    for target, says, code in (
        (other, "a directory that holds other files", 1),
        (tmp_path / "v2.zarr", "a Zarr v2 store", 1),
        (tmp_path / "file.zarr", "is a file", 2),
    ):
        result = CliRunner().invoke(
            cli, ["extract", str(target), "--checkpoints", str(toy_dir), "--language", "fr"]
        )
        assert result.exit_code == code, result.output
        assert says in result.output
        assert "Traceback" not in result.output
        assert _listing(tmp_path) == before


def test_a_store_of_non_english_files_with_any_names(
    tmp_path: Path, toy_dir: Path, treebanks: dict[str, Path]
) -> None:
    """Files named any way, their language given as FILE:LANG; no English anywhere: every
    command runs, the source language is chosen from the store and said, and no traceback."""
    french, spanish = tmp_path / "french sample.conllu", tmp_path / "espanol.conllu"
    french.write_bytes(treebanks["fr"].read_bytes())
    spanish.write_bytes(treebanks["es"].read_bytes())
    store = str(tmp_path / "s.zarr")
    unnamed = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--treebank", str(french)]
    )
    assert unnamed.exit_code == 1
    assert "give its language" in unnamed.output
    assert "--treebank FILE:LANG" in unnamed.output
    bad_code = CliRunner().invoke(
        cli, ["extract", store, "--checkpoints", str(toy_dir), "--treebank", f"{french}:fr/x"]
    )
    assert bad_code.exit_code == 2
    assert "'fr/x' is not a language code" in bad_code.output
    assert not Path(store).exists()
    args = ["--treebank", f"{french}:fr", "--treebank", f"{spanish}:es", "--chunk-words", "64"]
    extracted = CliRunner().invoke(cli, ["extract", store, "--checkpoints", str(toy_dir), *args])
    assert extracted.exit_code == 0, extracted.output
    info = CliRunner().invoke(cli, ["info", store])
    assert "french sample" in info.output
    steps = [
        ["probe", store, "--probe", "gaussian", "--k", "4", "--min-count", "3"],
        ["overlap", store],
        ["transfer", store, "--min-count", "3"],
        ["finetune", store, "--epochs", "1"],
        ["correlate", store],
        ["similarity", store],
        ["report", store, "--out", str(tmp_path / "report")],
    ]
    outputs = {}
    for command in steps:
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, (command, result.output)
        assert "Traceback" not in result.output
        outputs[command[0]] = result.output
    assert "source language: es (the store has no en; choose another with --source)" in outputs["correlate"]
    assert "transfer: fine-tuned UPOS transfer (upos)" in outputs["correlate"]
    assert "step 4: UPOS accuracy on each target's test sentences" in outputs["finetune"]
    assert "reference language: es (the store has no en" in outputs["similarity"]
    assert "Correlations start from es (the source of the stored correlation" in outputs["report"]
    # Fine-tuned only from es: from fr there is no fine-tuned transfer, and the error says so.
    no_source = CliRunner().invoke(cli, ["correlate", store, "--source", "fr"])
    assert no_source.exit_code == 1
    assert "source language 'fr' has no transfer results" in no_source.output
    probe_transfer = ["--transfer", "transfer/linear", "--name", "from-fr"]
    other = CliRunner().invoke(cli, ["correlate", store, "--source", "fr", *probe_transfer])
    assert other.exit_code == 0, other.output
    assert "source language: fr\n" in other.output
    unknown = CliRunner().invoke(cli, ["correlate", store, "--source", "en"])
    assert unknown.exit_code == 1
    assert "the source language 'en' is not in the store; it has es, fr" in unknown.output
