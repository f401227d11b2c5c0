"""The command line: every command has help; user mistakes give one clear line, not a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner, Result

from xalign import __version__
from xalign.cli.main import cli
from xalign.store.write import consolidate


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_info_shows_the_store(synthetic_dir: Path) -> None:
    result = run("info", str(synthetic_dir))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "schema    v2" in out
    assert "complete" in out
    assert "step 3, layer 3, neuron 32, word 1800" in out
    for line in ("synthetic_step1000", "en_synthetic", "Number", "xalign/synthetic"):
        assert line in out
    assert "DUPLICATE" not in out


def test_info_flags_duplicate_checkpoints(synthetic_dir: Path) -> None:
    root = zarr.open_group(str(synthetic_dir), mode="r+", use_consolidated=False)
    root["fingerprint"][...] = np.array(["aaa", "bbb", "aaa"], dtype=object)
    consolidate(str(synthetic_dir))
    out = run("info", str(synthetic_dir)).output
    assert "DUPLICATE weights of step 2000" in out
    assert "DUPLICATE weights of step 0" in out


def test_info_as_json(synthetic_dir: Path) -> None:
    result = run("info", str(synthetic_dir), "--json")
    summary = json.loads(result.output)
    assert [lang["language"] for lang in summary["languages"]] == ["en", "es", "fr"]
    assert summary["languages"][0]["words"] == 600
    assert sum(summary["languages"][0]["words_per_split"].values()) == 600


def test_info_on_something_else_is_one_clear_line(tmp_path: Path) -> None:
    result = run("info", str(tmp_path / "nothing.zarr"))
    assert result.exit_code == 1
    assert "no xalign store at" in result.output
    assert "Traceback" not in result.output


def test_validate(synthetic_dir: Path) -> None:
    result = run("validate", str(synthetic_dir))
    assert result.exit_code == 0
    assert "valid" in result.output
    group = zarr.open_group(str(synthetic_dir), mode="r+", use_consolidated=False)
    del group["languages/fr/lemma"]
    group["languages/en"].attrs["chunk_words"] = "many"
    result = run("validate", str(synthetic_dir))
    assert result.exit_code == 1
    assert "languages/fr/lemma: required array is missing" in result.output
    assert "languages/en/@chunk_words: should be of type int" in result.output
    assert "2 schema violation(s)" in result.output


def test_treebank_stats_on_the_embedded_sample() -> None:
    result = run("treebank-stats")
    assert result.exit_code == 0, result.output
    for language in ("en", "fr", "es", "pt", "zh", "id", "ar", "hi"):
        assert f"{language}  {language}_pud: 500 sentences" in result.output
    assert "kept: Gender (Fem, Masc); Number (Plur, Sing)" in result.output


def test_treebank_stats_options(tmp_path: Path) -> None:
    from xalign.data import pud_files

    (fr,) = pud_files(["fr"])
    result = run("treebank-stats", str(fr), "--labels", "unimorph", "--attribute", "Number", "--all")
    assert result.exit_code == 0, result.output
    assert "Number     PL" in result.output
    assert "Gender" not in result.output
    strict = run("treebank-stats", str(fr), "--min-count", "100000")
    assert "kept: none" in strict.output
    reference = run("treebank-stats", str(fr), "--labels", "unimorph-converter", "--pos", "--units", "tokens")
    assert reference.exit_code == 0, reference.output
    assert "11923 words" in reference.output  # surface tokens: "du" is one, not "de" + "le"
    assert "POS        V.PTCP" in reference.output


def test_treebank_stats_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "xx_bad-ud-test.conllu"
    bad.write_text(
        "# sent_id = 1\n# text = a b\n1\ta\ta\tNOUN\t_\t_\t0\troot\t_\t_\n2\tb\tb\n\n", encoding="utf-8"
    )
    result = run("treebank-stats", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:4" in result.output
    assert "Traceback" not in result.output


def test_treebank_stats_takes_any_file_name_with_its_language(tmp_path: Path) -> None:
    from xalign.data import pud_files

    (hi,) = pud_files(["hi"])
    renamed = tmp_path / "hindi sample.conllu"
    renamed.write_bytes(hi.read_bytes())
    unnamed = run("treebank-stats", str(renamed))
    assert unnamed.exit_code == 1
    assert "give its language (xalign: --treebank FILE:LANG" in unnamed.output
    named = run("treebank-stats", f"{renamed}:hi")
    assert named.exit_code == 0, named.output
    assert "hi  hindi sample: 500 sentences" in named.output
    missing = run("treebank-stats", f"{tmp_path / 'nope.conllu'}:hi")
    assert missing.exit_code == 2
    assert "nope.conllu' does not exist" in missing.output
    own = run("treebank-stats", f"{renamed}:hi", "--split", "own")
    assert own.exit_code == 1
    assert "re-split by lemma instead (xalign: --split lemma, the default)" in own.output
    assert "mode=" not in own.output


def test_every_option_of_extract_has_help_text() -> None:
    import click

    from xalign.cli.extract_commands import extract

    bare = [p.name for p in extract.params if isinstance(p, click.Option) and not p.help]
    assert bare == []


_WITHOUT_TORCH = """
import importlib.abc
import sys


class NoTorch(importlib.abc.MetaPathFinder):  # as if torch were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
from xalign.cli.main import main
sys.argv = ["xalign", *sys.argv[1:]]
main()
"""


def test_without_torch_a_command_that_needs_it_says_so_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, "toy-checkpoints", str(tmp_path / "toy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "Error: this command needs torch, which is not installed: pip install 'xalign[torch]' "
        "(pip install torch==2.13.0 first for its CPU build; see README)"
    ]
    assert not (tmp_path / "toy").exists()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures the xalign logger: put it back for the tests that follow."""
    import logging

    logger = logging.getLogger("xalign")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.mark.usefixtures("restore_logging")
def test_log_level_options_route_library_logs_to_stderr(tmp_path: Path) -> None:
    import logging

    from xalign.data import pud_files

    (fr,) = pud_files(["fr"])
    runner = CliRunner()
    assert runner.invoke(cli, ["-v", "treebank-stats", str(fr)]).exit_code == 0
    assert logging.getLogger("xalign").level == logging.INFO
    assert runner.invoke(cli, ["-vv", "treebank-stats", str(fr)]).exit_code == 0
    assert logging.getLogger("xalign").level == logging.DEBUG
    assert runner.invoke(cli, ["-q", "treebank-stats", str(fr)]).exit_code == 0
    assert logging.getLogger("xalign").level == logging.ERROR
    result = runner.invoke(cli, ["--log-level", "info", "treebank-stats", str(fr)])
    assert result.exit_code == 0
    handlers = [h for h in logging.getLogger("xalign").handlers if getattr(h, "_xalign_cli", False)]
    assert len(handlers) == 1  # replaced, not stacked, on every invocation
    assert runner.invoke(cli, ["--log-level", "nope", "info", "x"]).exit_code == 2


@pytest.mark.usefixtures("restore_logging")
def test_library_logs_reach_stderr_at_the_level_asked(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from xalign.cli.main import _configure_logging

    _configure_logging(logging.INFO)
    logging.getLogger("xalign.extract.run").info("growing the store")
    logging.getLogger("xalign.extract.run").debug("a detail")
    _configure_logging(logging.WARNING)
    logging.getLogger("xalign.extract.run").info("not shown")
    err = capsys.readouterr().err
    assert err.splitlines() == ["INFO xalign.extract.run: growing the store"]
