"""One adapter from a settings dataclass to typer options, so flags are never retyped:
each field becomes `--field-name` with its default and its `metadata["help"]`."""

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
        added = [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(f.default, _flag(f.name, hints[f.name]), help=f.metadata.get("help")),
                annotation=hints[f.name],
            )
            for f in fields
        ]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name, f.default) for f in fields}
            return func(*args, config=config_cls(**values), **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper

    return decorate
