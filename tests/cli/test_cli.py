"""The command line: every command has help; user mistakes give one clear line, not a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
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
        [sys.executable, "-c", _WITHOUT_TORCH, "toy-checkpoints", "--out", str(tmp_path / "toy")],
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["extract", "s.zarr", "--steps", "1000"], "--steps is now --step"),
        (["extract", "s.zarr", "--layers", "0,6"], "--layers is now --layer"),
        (["toy-checkpoints", "--out", "t", "--steps", "0,1"], "--steps is now --step"),
        (["toy-checkpoints", "--out", "t", "--layers", "2"], "--layers is now --blocks"),
        (["toy-checkpoints", "runs/toy"], "the folder is given with --out"),
        (["demo", "--steps", "0,10"], "--steps is now --step"),
        (["demo", "--layers", "2"], "--layers is now --blocks"),
        (["demo", "runs/demo"], "the folder is given with --out"),
    ],
)
def test_an_old_spelling_says_what_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_step_and_layer_lists_are_repeatable_or_comma_separated() -> None:
    from xalign.cli.options import int_list_option

    seen: dict[str, tuple[int, ...]] = {}

    @click.command()
    @int_list_option("--step", "steps", help="Steps.")
    def command(steps: tuple[int, ...]) -> None:
        seen["steps"] = steps

    assert CliRunner().invoke(command, ["--step", "0,100", "--step", "200"]).exit_code == 0
    assert seen["steps"] == (0, 100, 200)
    assert CliRunner().invoke(command, []).exit_code == 0
    assert seen["steps"] == ()
    bad = CliRunner().invoke(command, ["--step", "0,ten"])
    assert bad.exit_code == 2
    assert "'ten' in '0,ten' is not an integer" in bad.output


def test_commands_are_listed_in_pipeline_order_with_short_help_that_fits() -> None:
    from xalign.cli.main import SECTIONS

    listed = [command.name for _, commands in SECTIONS for command, _ in commands]
    assert sorted(listed) == sorted(cli.commands)  # every command in one section, once
    text = run("--help").output
    positions = [text.index(f"\n  {name} ") for name in listed]
    assert positions == sorted(positions)
    assert listed.index("extract") < listed.index("probe") < listed.index("overlap") < listed.index("report")
    for line in text.split("Try it:")[1].splitlines():
        assert len(line) <= 80, line
        assert not line.endswith("..."), line


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_json(command: str) -> None:
    """Each prints a table or a summary (report and compare: what they wrote and its notes)."""
    assert "--json" in run(command, "--help").output


def test_json_output_is_one_object_with_the_results_of_the_table(synthetic_dir: Path) -> None:
    from xalign.data import pud_files

    stats = json.loads(run("treebank-stats", str(pud_files(["fr"])[0]), "--json").output)
    assert stats["languages"]["fr"]["sentences"] == 500
    assert "Number" in stats["languages"]["fr"]["kept"]
    health = json.loads(run("health", str(synthetic_dir), "--json").output)
    assert health["health"]["dims"]["step"] == 3
    valid = json.loads(run("validate", str(synthetic_dir), "--json").output)
    assert valid == {"store": str(synthetic_dir), "valid": True, "violations": [], "corrupt_chunks": None}


def test_the_latent_probe_without_torch_is_one_line_and_leaves_no_results_group(synthetic_dir: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, "probe", str(synthetic_dir), "--probe", "latent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: this command needs torch, which is not installed: pip install 'xalign[torch]' "
        "(pip install torch==2.13.0 first for its CPU build; see README)"
    ]
    assert not (synthetic_dir / "results").exists()


def test_the_default_probe_needs_no_torch() -> None:
    from xalign.analysis.gaussian import GaussianProbe
    from xalign.analysis.probing import ProbeParams

    assert isinstance(ProbeParams().probe, GaussianProbe)
    assert "[default: gaussian]" in run("probe", "--help").output


def test_a_cluster_run_says_where_its_dashboard_is_or_how_to_get_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from xalign.cli.cluster import _announce_dashboard

    class Client:
        dashboard_link = "http://127.0.0.1:8787/status"

        def __init__(self, services: dict[str, int]) -> None:
            self.services = services

        def scheduler_info(self) -> dict[str, object]:
            return {"services": self.services}

    _announce_dashboard(Client({"dashboard": 8787}), "local:2")
    _announce_dashboard(Client({}), "local:2")
    _announce_dashboard(Client({}), "tcp://10.0.0.1:8786")
    assert capsys.readouterr().err.splitlines() == [
        "dask dashboard: http://127.0.0.1:8787/status",
        "dask dashboard: none (it needs bokeh: pip install 'xalign[dashboard]')",
        "dask dashboard: none at tcp://10.0.0.1:8786 (install bokeh where its scheduler runs)",
    ]
