"""Importing downstream transfer scores from CSV and JSON, and every way a file can be wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from xalign import dims
from xalign.analysis.transfer_scores import TransferScoresError, read_transfer_scores
from xalign.errors import XalignError

STEPS = {0: "main", 1000: "step1000", 2000: "/ckpt/run/global_step2000"}
"""The store's step -> revision: in store order, which is not sorted by revision."""
LANGUAGES = ("en", "fr", "es")


def _csv(tmp_path: Path, text: str, name: str = "scores.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _json(tmp_path: Path, document: object, name: str = "scores.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=1))
    return path


def _read(path: Path, model: str | None = None) -> xr.DataArray:
    return read_transfer_scores(path, steps=STEPS, languages=LANGUAGES, model=model)


def _error(path: Path, model: str | None = None) -> TransferScoresError:
    with pytest.raises(TransferScoresError) as caught:
        _read(path, model)
    assert isinstance(caught.value, XalignError)
    assert isinstance(caught.value, ValueError)
    return caught.value


def test_csv_rows_land_at_their_task_step_and_language(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "task,language,step,revision,score\n"
        "xnli,fr,1000,,0.41\n"  # by step number
        "xnli,es,,main,0.35\n"  # by the store's own revision
        "xnli,fr,,global_step2000,0.52\n"  # by a revision naming the step
        "pawsx,en,,step1000,0.6\n"
        "pawsx, en ,2000,/ckpt/run/global_step2000, 0.7 \n",  # both, agreeing; spaces ignored
    )
    scores = read_transfer_scores(path, steps=STEPS, languages=LANGUAGES)
    assert scores.name == "score"
    assert scores.dims == (dims.TASK, dims.STEP, dims.LANGUAGE)
    assert list(scores[dims.TASK].values) == ["pawsx", "xnli"]
    assert list(scores[dims.STEP].values) == [0, 1000, 2000]
    assert list(scores[dims.LANGUAGE].values) == list(LANGUAGES)
    assert scores.dtype == np.float64
    expected = {
        ("xnli", 1000, "fr"): 0.41,
        ("xnli", 0, "es"): 0.35,
        ("xnli", 2000, "fr"): 0.52,
        ("pawsx", 1000, "en"): 0.6,
        ("pawsx", 2000, "en"): 0.7,
    }
    for (task, step, language), value in expected.items():
        assert float(scores.sel(task=task, step=step, language=language)) == value
    assert int(np.isfinite(scores.values).sum()) == len(expected)
    assert scores.attrs["source"] == str(path)


def test_json_lists_and_scores_objects_read_the_same(tmp_path: Path) -> None:
    rows = [
        {"task": "xnli", "language": "en", "step": 0, "score": 0.3},
        {"task": "xnli", "language": "en", "revision": "step1000", "score": "0.4"},
        {"task": "xnli", "language": "es", "step": "2000", "score": 1},
    ]
    plain = _read(_json(tmp_path, rows, "a.json"))
    wrapped = _read(_json(tmp_path, {"scores": rows}, "b.JSON"))
    assert plain.equals(wrapped)
    values = plain.sel(task="xnli").values
    expected = np.full((3, 3), np.nan)
    expected[0, 0], expected[1, 0], expected[2, 2] = 0.3, 0.4, 1.0
    np.testing.assert_array_equal(values, expected)


def test_rows_of_other_models_are_skipped_when_a_model_is_given(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "model,task,language,step,score\n"
        "pythia-70m,xnli,en,0,0.3\n"
        "pythia-160m,xnli,en,0,0.9\n"
        "pythia-160m,xnli,de,0,oops\n"  # another model's row is skipped, not checked
        ",xnli,fr,0,0.5\n",  # a row without a model is kept
    )
    mine = _read(path, model="pythia-70m")
    assert float(mine.sel(task="xnli", step=0, language="en")) == 0.3
    assert float(mine.sel(task="xnli", step=0, language="fr")) == 0.5
    assert mine.attrs["model"] == "pythia-70m"
    # Without a model every row counts: the other model's rows are then wrong.
    error = _error(path)
    assert f"{path}:3: duplicate score for task 'xnli', step 0, language 'en' (first at {path}:2)" in str(
        error
    )
    assert f"{path}:4:" in str(error)
    none = _csv(tmp_path, "model,task,language,step,score\npythia-160m,xnli,en,0,0.9\n", "none.csv")
    assert "no scores of model 'pythia-70m'; the file has pythia-160m" in str(_error(none, "pythia-70m"))


def test_a_step_or_revision_matching_no_checkpoint_is_named(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "task,language,step,revision,score\nxnli,en,1500,,0.1\nxnli,en,,step3000,0.2\nxnli,en,,,0.3\n",
    )
    error = _error(path)
    message = str(error)
    assert f"{path}:2: step '1500' matches no step or revision of the store (steps 0, 1000, 2000)" in message
    assert f"{path}:3: revision 'step3000' matches no step or revision" in message
    assert f"{path}:4: no step or revision" in message
    assert len(error.problems) == 3
    assert message.startswith(f"{path}: 3 problems in transfer scores:")


def test_a_step_and_revision_that_disagree_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "task,language,step,revision,score\nxnli,en,0,step1000,0.1\n")
    assert str(_error(path)) == (f"{path}:2: step '0' and revision 'step1000' name different steps (0, 1000)")


def test_a_language_not_in_the_store_is_named(tmp_path: Path) -> None:
    path = _json(tmp_path, [{"task": "xnli", "language": "de", "step": 0, "score": 0.1}])
    assert str(_error(path)) == f"{path}: item 0: language 'de' is not in the store (it has en, fr, es)"


@pytest.mark.parametrize(
    ("score", "shown"), [("'high'", "'high'"), ("null", "None"), ("true", "True"), ('"nan"', "'nan'")]
)
def test_a_score_that_is_not_a_number_is_named(tmp_path: Path, score: str, shown: str) -> None:
    path = tmp_path / "scores.json"
    path.write_text(
        '[{"task": "xnli", "language": "en", "step": 0, "score": 0.5},\n'
        f' {{"task": "xnli", "language": "fr", "step": 0, "score": {score.replace(chr(39), chr(34))}}}]'
    )
    message = str(_error(path))
    assert message.startswith(f"{path}: item 1: score {shown} is not a")
    assert "number" in message


def test_a_non_numeric_csv_score_is_named_with_its_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, "task,language,step,score\nxnli,en,0,0.5\nxnli,fr,0,n/a\n")
    assert str(_error(path)) == f"{path}:3: score 'n/a' is not a number"


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, "task,lang,score\nxnli,en,0.5\n")
    message = str(_error(path))
    assert message.startswith(f"{path}:1: missing column(s) language, step or revision")
    assert "'lang'" in message
    item = _json(tmp_path, [{"task": "xnli", "language": "en", "step": 0, "score": 1}, {"task": "xnli"}])
    assert str(_error(item)) == f"{item}: item 1: missing language, score, step or revision"


def test_duplicates_are_found_however_the_step_is_named(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "task,language,step,revision,score\nxnli,en,1000,,0.1\nxnli,fr,1000,,0.2\nxnli,en,,step1000,0.3\n",
    )
    assert str(_error(path)) == (
        f"{path}:4: duplicate score for task 'xnli', step 1000, language 'en' (first at {path}:2)"
    )


def test_several_bad_rows_are_reported_together(tmp_path: Path) -> None:
    good = "xnli,en,0,0.5\n"
    bad = "".join(f"xnli,de,{i},x\n" for i in range(25))
    path = _csv(tmp_path, "task,language,step,score\n" + good + bad)
    error = _error(path)
    assert len(error.problems) == 25
    message = str(error)
    assert message.startswith(f"{path}: 25 problems in transfer scores:")
    assert f"{path}:3: language 'de' is not in the store" in message
    assert "score 'x' is not a number" in message
    assert "step '1' matches no step or revision" in message.splitlines()[2]
    assert len(re.findall(rf"{re.escape(str(path))}:\d+:", message)) == 20
    assert message.endswith("... and 5 more")


def test_unreadable_files_are_refused_with_their_name(tmp_path: Path) -> None:
    other = _csv(tmp_path, "task,language,step,score\n", "scores.tsv")
    assert "unknown scores format '.tsv'" in str(_error(other))
    broken = _csv(tmp_path, '[{"task": "xnli",\n "score": }]', "broken.json")
    assert str(_error(broken)).startswith(f"{broken}:2: not valid JSON")
    assert "expected a list of scores" in str(_error(_json(tmp_path, {"rows": []})))
    items = _json(tmp_path, [["xnli", "en", 0, 0.5]], "items.json")
    assert str(_error(items)) == f"{items}: item 0: expected an object, got ['xnli', 'en', 0, 0.5]"
    assert str(_error(tmp_path / "absent.csv")).startswith(f"{tmp_path / 'absent.csv'}: cannot read")
    empty = _csv(tmp_path, "task,language,step,score\n", "empty.csv")
    assert str(_error(empty)) == f"{empty}: no scores"


def _harness(revision: str | None, results: dict[str, object]) -> dict[str, object]:
    """An lm-evaluation-harness results document, as harness 0.4 writes it."""
    args = "pretrained=bigscience/bloom-560m-intermediate" + (f",revision={revision}" if revision else "")
    return {
        "results": results,
        "configs": {task: {"task": task} for task in results},
        "config": {"model": "hf", "model_args": args, "batch_size": 8},
        "n-shot": dict.fromkeys(results, 0),
    }


def test_lm_evaluation_harness_results_one_file_per_revision(tmp_path: Path) -> None:
    first = _json(
        tmp_path,
        _harness(
            "step1000",
            {
                "xnli_en": {"alias": "xnli_en", "acc,none": 0.52, "acc_stderr,none": 0.01},
                "xnli_fr": {"alias": "xnli_fr", "acc,none": 0.44, "acc_stderr,none": 0.01},
                "xnli_de": {"alias": "xnli_de", "acc,none": 0.40},  # not in the store
            },
        ),
        "step1000.json",
    )
    second = _json(
        tmp_path,
        _harness("global_step2000", {"xnli_fr": {"acc": 0.47}, "pawsx_es": {"acc,none": 0.55}}),
        "step2000.json",
    )
    scores = read_transfer_scores([first, second], steps=STEPS, languages=LANGUAGES)
    assert scores.sel(task="xnli", step=1000, language="fr").item() == pytest.approx(0.44)
    assert scores.sel(task="xnli", step=2000, language="fr").item() == pytest.approx(0.47)  # harness 0.3 keys
    assert scores.sel(task="pawsx", step=2000, language="es").item() == pytest.approx(0.55)
    assert np.isnan(scores.sel(task="xnli", step=0, language="en").item())
    assert scores.attrs["skipped"] == "step1000.json: xnli_de"
    assert "step1000.json, " in scores.attrs["source"]
    # The model named in model_args is the rows' model: the model filter applies.
    with pytest.raises(TransferScoresError, match="no scores of model 'other'; the file has bigscience/"):
        read_transfer_scores(first, steps=STEPS, languages=LANGUAGES, model="other")


def test_lm_evaluation_harness_problems_are_named_by_file_and_line(tmp_path: Path) -> None:
    path = _json(tmp_path, _harness(None, {"xnli_en": {"acc,none": 0.5}, "xnli_fr": {"perplexity": 3.0}}))
    error = _error(path)
    lines = path.read_text().splitlines()
    en = next(i for i, line in enumerate(lines, start=1) if '"xnli_en":' in line)
    fr = next(i for i, line in enumerate(lines, start=1) if '"xnli_fr":' in line)
    assert f"{path}:{en}: config.model_args names no revision=" in error.problems
    assert f"{path}:{fr}: config.model_args names no revision=" in error.problems
    unknown = _json(tmp_path, _harness("step999", {"xnli_en": {"acc,none": 0.5}}), "other.json")
    assert re.search(r"other\.json:\d+: revision 'step999' matches no step", str(_error(unknown)))
    no_metric = _json(tmp_path, _harness("step1000", {"xnli_en": {"perplexity": 3.0}}), "nometric.json")
    assert "no acc, f1, exact_match among its metrics" in str(_error(no_metric))


def test_wide_tables_one_column_per_language(tmp_path: Path) -> None:
    path = _csv(tmp_path, "step,en,fr,es\n0,0.9,0.3,\n1000,0.92,0.41,0.5\n", "udpos.csv")
    scores = _read(path)
    assert scores[dims.TASK].values.tolist() == ["udpos"]  # the file's stem
    assert scores.sel(step=1000, language="fr").item() == pytest.approx(0.41)
    assert np.isnan(scores.sel(step=0, language="es").item())  # an empty cell is no score
    tasks = _csv(tmp_path, "revision,task,en,fr\nstep1000,xnli,0.5,0.4\nstep1000,pawsx,0.6,0.5\n", "t.csv")
    assert _read(tasks)[dims.TASK].values.tolist() == ["pawsx", "xnli"]
    bad = _csv(tmp_path, "step,en,xx\n0,0.9,0.3\n1000,high,0.2\n", "bad.csv")
    problems = _error(bad).problems
    assert any(p.startswith(f"{bad}:2 (column xx): language 'xx' is not in the store") for p in problems)
    assert any(p.startswith(f"{bad}:3 (column en): score 'high' is not a number") for p in problems)
