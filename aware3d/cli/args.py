"""Command-line options generated from option dataclasses.

Each field becomes ``--field-name``; its help text is the attribute docstring (the string literal under
the field). Lists take several values (``--seeds 0 1 2``), booleans become ``--flag / --no-flag``; a field's
``metadata={"aliases": ("--class",)}`` adds other spellings (for names Python reserves).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin, get_type_hints


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass and its bases: {field name: the string literal right under it}."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            docs.update(field_docs(base))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return docs
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base(tp):
    """Strip Optional[...] and return (type, optional?)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of dataclass ``cls`` (positional if the field has no default)."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp, _ = _base(hints[f.name])
        origin = get_origin(tp)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = docs.get(f.name, "")
        flags = ["--" + f.name.replace("_", "-"), *f.metadata.get("aliases", ())]
        kw: dict[str, Any] = {"help": help_text, "dest": f.name}
        if tp is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, **kw)
            continue
        if origin in (list, tuple):
            inner = get_args(tp)[0] if get_args(tp) else str
            kw.update(nargs="+", type=inner)
        elif origin is Literal:
            kw.update(choices=list(get_args(tp)))
        elif tp in (int, float, str):
            kw.update(type=tp)
        if not has_default:
            kw.pop("dest")
            parser.add_argument(f.name, **kw)
        else:
            parser.add_argument(*flags, default=default, **kw)


def dataclass_from_args(cls: type, ns: argparse.Namespace):
    """Build ``cls`` from the parsed namespace (list values become tuples where the field is a tuple)."""
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = getattr(ns, f.name)
        tp, _ = _base(hints[f.name])
        if get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)
