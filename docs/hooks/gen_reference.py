"""MkDocs hook: the CLI and configuration references, generated from the code at build time.

``reference/cli.md`` is written from the argument parser (:func:`medssl.cli.main.build_parser`) and
``reference/configuration.md`` from the typed configuration (the dataclasses of :mod:`medssl.config`):
each field's type, default, declared range and the description from its class's ``Attributes:``
docstring section. Neither page exists in ``docs/``; both are made for every build, so they cannot
drift from the code. ``tests/test_docs_reference.py`` fails when a flag or a field is undocumented.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

__all__ = [
    "CLI_PAGE",
    "CONFIG_PAGE",
    "cli_markdown",
    "config_markdown",
    "docstring_section",
    "field_descriptions",
    "method_arguments",
    "undocumented_fields",
    "undocumented_flags",
    "undocumented_method_args",
]

CLI_PAGE = "reference/cli.md"
CONFIG_PAGE = "reference/configuration.md"
_HIDDEN = (argparse._HelpAction, argparse._VersionAction)


# --- the command line -----------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each sub-command, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (*_HIDDEN, argparse._SubParsersAction))]


def _help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help as ``medssl ... -h`` prints it (``%(default)s`` and ``%%`` expanded)."""
    if not action.help:
        return ""
    return parser._get_formatter()._expand_help(action)


def undocumented_flags(parser: argparse.ArgumentParser, prefix: str = "medssl") -> list[str]:
    """Every sub-command and argument of ``parser`` (recursively) that has no help text."""
    missing = [f"{prefix} {_name(a)}" for a in _options(parser) if not (a.help or "").strip()]
    for name, help_, sub in _subparsers(parser):
        if not help_.strip():
            missing.append(f"{prefix} {name}")
        missing += undocumented_flags(sub, f"{prefix} {name}")
    return missing


def _name(action: argparse.Action) -> str:
    return ", ".join(action.option_strings) if action.option_strings else action.metavar or action.dest


def _cell(text: str) -> str:
    """One Markdown table cell: Sphinx roles (``:func:`x` ``) as code, no pipes or newlines."""
    text = re.sub(r":(?:func|class|mod|meth|attr):`~?([^`]+)`", r"`\1`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    if action.choices:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    kind = getattr(action.type, "__name__", "text") if action.type else "text"
    return {"int": "integer", "float": "number", "str": "text"}.get(kind, kind)


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return f"`{action.default}`"


def _arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | value | default | description |", "|---|---|---|---|"]
    for a in _options(parser):
        name = ", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.metavar or a.dest}`"
        if not a.option_strings and a.nargs == "?":
            name += " (optional)"
        rows.append(f"| {name} | {_value(a)} | {_default(a)} | {_cell(_help_text(parser, a))} |")
    return rows


def cli_markdown(parser: argparse.ArgumentParser) -> str:
    """The CLI reference page: global options, then each sub-command's usage and arguments."""
    lines = [
        "# Command-line reference",
        "",
        "Generated from the argument parser of the installed medssl (`medssl.cli.main.build_parser`) at every "
        "documentation build. `medssl COMMAND -h` prints the same.",
        "",
        parser.description or "",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        *_arguments_table(parser),
        "",
    ]
    if parser.epilog:
        lines += [parser.epilog.strip(), ""]
    for name, help_, sub in _subparsers(parser):
        lines += [f"## `medssl {name}`", "", _cell(help_[:1].upper() + help_[1:]) + ".", ""]
        lines += ["```text", sub.format_usage().strip(), "```", ""]
        if _options(sub):
            lines += [*_arguments_table(sub), ""]
    return "\n".join(lines)


# --- the typed configuration ----------------------------------------------------------------------


def docstring_section(obj: Any, section: str = "Attributes") -> dict[str, str]:
    """``{name: description}`` of one Google-style section (``Attributes:``, ``Args:``) of ``obj``'s docstring.

    The convention, which the API reference renders too::

        Attributes:
            name: one sentence or more,
                continued on indented lines.
    """
    out: dict[str, str] = {}
    current = None
    inside = False
    for line in (inspect.getdoc(obj) or "").splitlines():
        if line.strip() == f"{section}:":
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            break  # the next section
        m = re.match(r"^ {4}(\w+)(?: \(.*?\))?: (.*)$", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def field_descriptions(cls: type) -> dict[str, str]:
    """Field descriptions of dataclass ``cls``: the ``Attributes:`` section of its docstring."""
    return docstring_section(cls, "Attributes")


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    if hint is type(None):
        return "None"
    if hint is typing.Any:
        return "any"
    return getattr(hint, "__name__", str(hint))


def _range(f: dataclasses.Field[Any]) -> str:
    if "range" in f.metadata:
        text = str(f.metadata["range"])
        return f"{text} ({f.metadata['why']})" if f.metadata.get("why") else text
    if "check" in f.metadata:
        return "checked"
    return ""


def _fields(cfg: Any, prefix: str = "") -> list[tuple[str, Any, Any, dataclasses.Field[Any], type]]:
    """``(dotted name, type hint, default, field, owning class)`` of every leaf field of ``cfg``."""
    cls = type(cfg)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        value = getattr(cfg, f.name)
        if _is_section(hints[f.name]):
            out += _fields(value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", hints[f.name], value, f, cls))
    return out


def undocumented_fields(*configs: type) -> list[str]:
    """``Class.field`` of every field (nested sections included) that its class does not describe."""
    missing = {
        f"{owner.__name__}.{f.name}"
        for top in configs
        for *_, f, owner in _fields(top())
        if not field_descriptions(owner).get(f.name, "").strip()
    }
    for top in configs:  # the sections themselves (``data``, ``optim``...) are fields too
        missing |= {
            f"{top.__name__}.{f.name}"
            for f in dataclasses.fields(top)
            if not field_descriptions(top).get(f.name, "").strip()
        }
    return sorted(missing)


def _default_text(value: Any) -> str:
    if value is None:
        return "None (see description)"
    return f"`{value!r}`" if not isinstance(value, str) else f'`"{value}"`'


def _config_table(cfg: Any) -> list[str]:
    rows = ["| setting | type | default | range | description |", "|---|---|---|---|---|"]
    for name, hint, default, f, owner in _fields(cfg):
        desc = field_descriptions(owner).get(f.name, "")
        rows.append(
            f"| `{name}` | {_cell(_type_name(hint))} | {_cell(_default_text(default))} | {_cell(_range(f))} | "
            f"{_cell(desc)} |"
        )
    return rows


def config_markdown(configs: dict[str, type]) -> str:
    """The configuration reference page: one table per command's configuration class."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the typed configuration (`medssl.config`) at every documentation build: every setting "
        "with its type, its default for that command, the range it must lie in and its description. Set one "
        "with `--set key=value`, in a YAML file given to `--config`, or on the Python objects; values are "
        "checked when the configuration is built, whichever way they come (defaults < `--config` file < flags "
        "< `--set`). Defaults shown as None are filled at run time, as their description says (for fine-tuning, "
        "mostly from the recipe). `checked` means a value is checked by a rule other than a numeric range "
        "(its description says which values are allowed). The resolved values of a run are in its "
        "`config.yaml`. After the two commands' tables: SuperCL's superpixel options (`superpixels`) and each "
        "method's own arguments (`method_args`).",
        "",
    ]
    for command, cls in configs.items():
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        lines += [f"## `{command}`: `{cls.__name__}`", "", _cell(summary), "", *_config_table(cls()), ""]
    return "\n".join(lines)


# --- method arguments and superpixel options ------------------------------------------------------


def method_arguments(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, description)`` of each ``method_args`` key of a method class.

    The keys are its constructor's arguments (the backbone excepted); descriptions come from the
    ``Args:`` section of the class's or its ``__init__``'s docstring, inherited from a base class.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(docstring_section(klass, "Args"))
        docs.update(docstring_section(klass.__init__, "Args"))
    hints = typing.get_type_hints(cls.__init__)
    out = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "backbone") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        out.append((name, _type_name(hints.get(name, typing.Any)), default, docs.get(name, "")))
    return out


def _methods() -> list[tuple[str, type]]:
    from medssl.methods.catalog import list_methods
    from medssl.registry import METHODS

    return [(info.name, METHODS.get(info.name)) for info in list_methods()]


def undocumented_method_args() -> list[str]:
    """``method.argument`` of every method argument without a description."""
    return [f"{name}.{arg}" for name, cls in _methods() for arg, _t, _d, desc in method_arguments(cls) if not desc]


def _method_sections() -> list[str]:
    lines = [
        "## `method_args`: the methods' own arguments",
        "",
        "`medssl pretrain --method NAME --set method_args.KEY=VALUE` (or `method_args:` in a `--config` file); "
        "a key that is not an argument of the method is refused, naming those it has.",
        "",
    ]
    for name, cls in _methods():
        lines += [f"### `{name}`", "", "| argument | type | default | description |", "|---|---|---|---|"]
        for arg, type_, default, desc in method_arguments(cls):
            lines.append(f"| `{arg}` | {_cell(type_)} | {_cell(_default_text(default))} | {_cell(desc)} |")
        lines.append("")
    return lines


def _superpixel_section() -> list[str]:
    from medssl.data.superpixels import SuperpixelConfig

    lines = [
        "## `superpixels`: SuperCL's superpixel maps",
        "",
        "`--set superpixels.KEY=VALUE` (SuperCL only). `cell_size` and `view_size` are set by pre-training from "
        "the network's depth and the view size unless given.",
        "",
        *_config_table(SuperpixelConfig())[:2],
    ]
    rows = _config_table(SuperpixelConfig())[2:]
    return lines + [row.replace("| `", "| `superpixels.", 1) for row in rows] + [""]


# --- the MkDocs hook ------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    """Document the checkout's own source: put ``src/`` first on the import path."""
    src = str(Path(config.config_file_path).parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def _pages() -> dict[str, str]:
    from medssl.cli.main import build_parser
    from medssl.config import FinetuneConfig, PretrainConfig

    return {
        CLI_PAGE: cli_markdown(build_parser()),
        CONFIG_PAGE: "\n".join(
            [
                config_markdown({"medssl pretrain": PretrainConfig, "medssl finetune": FinetuneConfig}),
                *_superpixel_section(),
                *_method_sections(),
            ]
        ),
    }


def on_files(files: Any, config: Any) -> Any:
    """Add the generated pages to the site (MkDocs calls this once per build)."""
    from mkdocs.structure.files import File

    for path, text in _pages().items():
        files.append(File.generated(config, path, content=text))
    return files
