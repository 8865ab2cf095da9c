"""One adapter from a settings dataclass to typer options, so flags are never retyped:
each field becomes `--field-name` with its default and its `metadata["help"]`.

A field's metadata may also say `argument=True` (a positional argument), `required=True`
(a usage error when missing, exit 2) or `flags=("-k",)` (its own flag names). A field with
a `default_factory` (a list) defaults to a fresh one.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer


def _flag(name: str, kind: Any) -> str:
    """`--name`, or `--name/--no-name` for a bool (a switch, not a value)."""
    flag = name.replace("_", "-")
    return f"--{flag}/--no-{flag}" if kind is bool else f"--{flag}"


def _default(f: dataclasses.Field) -> Any:
    return None if f.default is dataclasses.MISSING else f.default


def _parameter(f: dataclasses.Field, kind: Any) -> inspect.Parameter:
    """The typer parameter of one settings field."""
    meta = f.metadata
    default = ... if meta.get("required") else _default(f)
    if meta.get("argument"):
        info = typer.Argument(default, help=meta.get("help"), show_default=default is not None)
    else:
        flags = meta.get("flags") or (_flag(f.name, kind),)
        info = typer.Option(default, *flags, help=meta.get("help"))
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind)


def config_options(config_cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command taking `config: config_cls`: its fields become options.

    >>> @dataclasses.dataclass
    ... class C:
    ...     n: int = dataclasses.field(default=3, metadata={"help": "How many."})
    >>> @config_options(C)
    ... def run(config: C) -> int:
    ...     return config.n
    >>> run(n=5)
    5
    """
    hints = typing.get_type_hints(config_cls)
    fields = [f for f in dataclasses.fields(config_cls) if f.init]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func)
        resolved = typing.get_type_hints(func, include_extras=True)  # string annotations -> types
        own = [
            p.replace(annotation=resolved.get(p.name, p.annotation))
            for p in sig.parameters.values()
            if p.name != "config"
        ]
        added = [_parameter(f, hints[f.name]) for f in fields]
        # typer lists positional arguments in signature order: keep them first
        added.sort(key=lambda p: not isinstance(p.default, typer.models.ArgumentInfo))

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {}
            for f in fields:
                value = kwargs.pop(f.name, _default(f))
                if value is None and f.default_factory is not dataclasses.MISSING:
                    value = f.default_factory()
                values[f.name] = value
            return func(*args, config=config_cls(**values), **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper

    return decorate
