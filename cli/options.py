"""Options shared by several commands, declared once so that they read the same everywhere."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

import click

__all__ = [
    "StoreParam",
    "corpus_options",
    "dataclass_options",
    "estimator_options",
    "filter_options",
    "given_settings",
    "int_list_option",
    "parameter_docs",
    "parse_treebanks",
    "preset_option",
    "refuse_arguments",
    "renamed_option",
    "storage_option",
    "store_argument",
]

F = TypeVar("F", bound=Callable[..., Any])


def corpus_options(command: F) -> F:
    """--labels, --pos, --units, --split and --seed: how words are labelled and split (CorpusOptions)."""
    for option in reversed(
        (
            click.option(
                "--labels",
                "label_scheme",
                type=click.Choice(["ud", "unimorph", "unimorph-converter"]),
                default="ud",
                show_default=True,
                help="UD features; UniMorph tags via the ud-compatibility table; or, as the reference, "
                "ud-compatibility's converter grouped into UniMorph dimensions.",
            ),
            click.option(
                "--pos/--no-pos",
                default=False,
                show_default=True,
                help="Also probe the part of speech (attribute POS), as the reference did.",
            ),
            click.option(
                "--units",
                type=click.Choice(["words", "tokens"]),
                default="words",
                show_default=True,
                help="words: UD syntactic words; tokens: surface tokens, a multiword token "
                "('du') whole with merged labels, as the reference.",
            ),
            click.option(
                "--split",
                "split_mode",
                type=click.Choice(["lemma", "own"]),
                default="lemma",
                show_default=True,
                help="lemma: the reference's seeded lemma-disjoint 80/10/10 re-split; own: the files'.",
            ),
            click.option("--seed", type=int, default=0, show_default=True, help="Seed of the lemma split."),
        )
    ):
        command = option(command)
    return command


class StoreParam(click.ParamType[str]):
    """A store's path, or its URL (``s3://bucket/x.zarr``), which is passed on as given."""

    name = "store"

    def __init__(self, *, exists: bool) -> None:
        self.path = click.Path(exists=exists, file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from xalign.store.location import is_url

        if is_url(value):
            return value
        return self.path.convert(value, param, ctx)


def store_argument(*, exists: bool = True) -> Callable[[F], F]:
    """STORE: a directory, or a URL such as ``s3://bucket/x.zarr`` (see ``--storage-option``)."""
    return click.argument("store", type=StoreParam(exists=exists))


def storage_option(command: F) -> F:
    """``--storage-option KEY=VALUE`` (repeatable): options of a store URL's filesystem, set as
    the Dask config value ``xalign.storage-options`` for the command's duration."""

    def apply(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
        import dask.config

        options: dict[str, Any] = {}
        for item in values:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
            options[key] = _option_value(text)
        if options:
            ctx.with_resource(dask.config.set({"xalign.storage-options": options}))

    return click.option(
        "--storage-option",
        multiple=True,
        metavar="KEY=VALUE",
        expose_value=False,
        callback=apply,
        help="An option of a store URL's filesystem (fsspec's, e.g. endpoint_url=http://host:8333 "
        "for s3://); repeatable. Credentials also come from the environment (AWS_ACCESS_KEY_ID ...).",
    )(command)


def _option_value(text: str) -> Any:
    """``true``/``false``, numbers and JSON objects as such; anything else as text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def int_list_option(flag: str, name: str, *, help: str) -> Callable[[F], F]:
    """A repeatable option of integers, each also a comma list: ``--step 0 --step 100`` or
    ``--step 0,100``; the command receives a tuple (empty when none is given).

    Every list of steps or layers on the command line reads this way.
    """

    def parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[int, ...]:
        numbers: list[int] = []
        for value in values:
            for part in value.split(","):
                if not part.strip():
                    continue
                try:
                    numbers.append(int(part))
                except ValueError:
                    raise click.BadParameter(
                        f"{part.strip()!r} in {value!r} is not an integer "
                        f"(e.g. {flag} 0,100 or {flag} 0 {flag} 100)",
                        ctx=ctx,
                        param=param,
                    ) from None
        return tuple(numbers)

    return click.option(
        flag, name, multiple=True, callback=parse, help=help + " Repeatable, or a comma list."
    )


def renamed_option(old: str, new: str, *, why: str = "") -> Callable[[F], F]:
    """A hidden ``old`` option that only says it is now ``new`` (a usage error, exit code 2)."""

    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            reason = f" ({why})" if why else ""
            raise click.UsageError(f"{old} is now {new}{reason}", ctx=ctx)

    return click.option(
        old,
        "old_" + old.lstrip("-").replace("-", "_"),  # its own name: "layers" may be another option's
        hidden=True,
        expose_value=False,
        callback=refuse,
        is_eager=True,
        help=f"Now {new}.",
    )


def refuse_arguments(ctx: click.Context, usage: str) -> None:
    """For a command that takes no positional argument any more: a leftover one (an old
    spelling, e.g. the output folder before it became ``--out``) is a usage error saying
    ``usage``. The command needs ``context_settings={"allow_extra_args": True}``."""
    if ctx.args:
        raise click.UsageError(f"unexpected argument {ctx.args[0]!r}: {usage}", ctx=ctx)


def preset_option(command_name: str) -> Callable[[F], F]:
    """--preset NAME: the reference's choices as this command's defaults (xalign.reference).

    Options given on the command line still win; the report lists every setting that then
    differs from the reference.
    """
    from xalign.reference import PRESETS

    def apply(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.default_map = {**(ctx.default_map or {}), **PRESETS[value].settings(command_name)}

    def decorate(command: F) -> F:
        return click.option(
            "--preset",
            type=click.Choice(list(PRESETS)),
            is_eager=True,
            expose_value=False,
            callback=apply,
            help="Set every choice to a published procedure's (wang2024: Wang et al. 2024); "
            "options given still win.",
        )(command)

    return decorate


def filter_options(command: F) -> F:
    """--min-count and --min-values: the reference's filters, from :class:`CellFilters`' fields."""
    from xalign.analysis.cells import CellFilters

    return dataclass_options(CellFilters)(command)


def dataclass_options(cls: type, *, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """One option per field of the parameters dataclass ``cls``: ``--field-name``, with the
    field's default, type and ``help`` (and ``choices``, ``min``, ``max``, and ``option``: another
    option name, e.g. ``attribute`` for a repeatable ``attributes``) from its metadata.

    The parameters are declared once, in the dataclass; the command receives each field
    under its own name. A tuple field becomes a repeatable option (none given: the default).
    """

    def decorate(command: F) -> F:
        for spec in reversed([f for f in fields(cls) if f.name not in exclude]):
            command = _option(spec.name, _default(spec), spec.metadata)(command)
        return command

    return decorate


def _default(spec: Field[Any]) -> Any:
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    raise TypeError(f"field {spec.name} has no default; a command-line option needs one")


def _option(name: str, default: Any, metadata: Mapping[str, Any], *, show: Any = True) -> Any:
    flag = "--" + metadata.get("option", name).replace("_", "-")
    kwargs: dict[str, Any] = {"help": metadata.get("help"), "show_default": show}
    if "choices" in metadata:
        kwargs["type"] = click.Choice([str(c) for c in metadata["choices"]])
    elif isinstance(default, bool):
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=default, **kwargs)
    elif isinstance(default, int):
        kwargs["type"] = click.IntRange(min=metadata.get("min"), max=metadata.get("max"))
    elif isinstance(default, float):
        kwargs["type"] = click.FloatRange(min=metadata.get("min"), max=metadata.get("max"))
    elif default is None and metadata.get("repeatable", True):
        return click.option(flag, name, multiple=True, **{**kwargs, "show_default": False})
    return click.option(flag, name, default=default, **kwargs)


def estimator_options(classes: Mapping[str, type], *, what: str) -> Callable[[F], F]:
    """One option per hyperparameter of the estimators ``classes`` (name -> class), from their
    ``__init__`` signatures and the "Parameters" sections of their docstrings.

    Every option defaults to None (not given), so the estimator keeps its own default, which
    the help text shows; :func:`given_settings` collects what was given for the one chosen.
    """

    def decorate(command: F) -> F:
        seen: dict[str, list[str]] = {}
        specs: dict[str, tuple[Any, str]] = {}
        for kind, cls in classes.items():
            docs = parameter_docs(cls)
            for parameter in inspect.signature(cls).parameters.values():
                if parameter.kind is not parameter.KEYWORD_ONLY:
                    continue
                seen.setdefault(parameter.name, []).append(kind)
                specs.setdefault(parameter.name, (parameter.default, docs.get(parameter.name, "")))
        for name in reversed(list(specs)):
            default, doc = specs[name]
            help_text = f"{', '.join(seen[name]).capitalize()} {what}: {doc} [default: {default}]"
            flag = "--" + name.replace("_", "-")
            if isinstance(default, bool):
                option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
            else:
                option = click.option(flag, name, type=type(default), default=None, help=help_text)
            command = option(command)
        return command

    return decorate


def given_settings(
    ctx: click.Context, cls: type, values: Mapping[str, Any], *, kind: str, what: str
) -> dict[str, Any]:
    """The hyperparameters of ``cls`` given on the command line; one given for another
    estimator than ``kind`` is a usage error naming it."""
    own = set(inspect.signature(cls).parameters)
    given = {k: v for k, v in values.items() if v is not None}
    foreign = sorted(set(given) - own)
    if foreign:
        names = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise click.UsageError(f"{names} do(es) not apply to the {kind} {what}", ctx=ctx)
    return given


def parameter_docs(cls: type) -> dict[str, str]:
    """Parameter name -> its text, from the numpydoc "Parameters" section of ``cls``' docstring
    (``a, b`` entries share their text)."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = lines.index("Parameters") + 2
    except ValueError:
        return {}
    docs: dict[str, str] = {}
    names: list[str] = []
    for line, underline in zip(lines[start:], [*lines[start + 1 :], ""], strict=True):
        if underline and not underline.strip("-"):
            break  # the next section's header
        if line and not line.startswith(" "):
            names = [n.split(":")[0].strip() for n in line.split(",")]
            docs.update(dict.fromkeys(names, ""))
        elif line.strip():
            for name in names:
                docs[name] = f"{docs[name]} {line.strip().replace('``', '')}".strip()
    return docs


def parse_treebanks(
    items: tuple[str, ...] | list[str], *, param_hint: str = "'--treebank'"
) -> tuple[list[str], dict[str, str]]:
    """``FILE`` or ``FILE:LANG`` items -> the files, and the languages given for some of them.

    A path that exists is a file even if it holds a colon; otherwise the text after the last
    colon is the language. A missing file or a bad code is a usage error naming the item.
    """
    from pathlib import Path

    from xalign.errors import TreebankError
    from xalign.treebank.corpus import check_language_code

    files: list[str] = []
    languages: dict[str, str] = {}
    for item in items:
        path, language = item, None
        if not Path(item).is_file() and ":" in item:
            path, _, language = item.rpartition(":")
        if not Path(path).is_file():
            raise click.BadParameter(f"file {path!r} does not exist", param_hint=param_hint)
        if language is not None:
            try:
                check_language_code(language, where=path)
            except TreebankError as exc:
                raise click.BadParameter(str(exc), param_hint=param_hint) from exc
            languages[str(Path(path))] = language
        files.append(path)
    return files, languages
