"""Walking the module trees that the restricted unpickler rebuilds from official pickles (as
:class:`~aware3d.io.safe_unpickle.PickledObject` records, never as modules), and checking their classes.

StyleGAN-family snapshots (EG3D, EpiGRAF) pickle ``torch.nn.Module`` subclasses, some of them "persistent"
(their source code stored beside their init arguments). An importer knows which classes it can map; any
other class means a network it would silently misread, so it is reported by its dotted path.
"""

from __future__ import annotations

from collections.abc import Iterator

from .safe_unpickle import PickledObject


def walk_modules(obj: PickledObject, prefix: str = "",
                 _path: frozenset[int] = frozenset()) -> Iterator[tuple[str, PickledObject]]:
    """(dotted path, record) for ``obj`` and every nested module record (``_modules``), depth first; a
    record reachable from itself (a damaged or hostile file) is not entered again."""
    yield prefix, obj
    path = _path | {id(obj)}
    for name, child in (obj.get("_modules") or {}).items():
        if isinstance(child, PickledObject) and id(child) not in path:
            yield from walk_modules(child, f"{prefix}{name}.", path)


def is_persistent(obj: PickledObject) -> bool:
    """Whether the record is a StyleGAN ``persistent_class`` instance (its pickle carries ``module_src``)."""
    return "module_src" in obj.extra


def unknown_classes(networks: dict[str, PickledObject], known_persistent: frozenset[str],
                    known_plain: frozenset[str]) -> list[str]:
    """One line per module record of ``networks`` (name -> root record) whose class is not known, e.g.
    ``persistent class training.networks.Foo at G_ema.synthesis.b4``."""
    bad = []
    for name, net in networks.items():
        for path, obj in walk_modules(net):
            persistent = is_persistent(obj)
            if obj.qualname not in (known_persistent if persistent else known_plain):
                kind = "persistent class" if persistent else "class"
                bad.append(f"{kind} {obj.qualname} at {name}.{path.rstrip('.') or '<root>'}")
    return bad


def unknown_classes_message(path: object, problems: list[str], known_persistent: frozenset[str],
                            known_plain: frozenset[str]) -> str:
    """The error text for :func:`unknown_classes`' findings in the file ``path``."""
    return (f"{path} contains classes this importer does not know (their code was not run):\n  - "
            + "\n  - ".join(problems)
            + f"\nknown persistent classes: {', '.join(sorted(known_persistent))}; known plain classes: "
            + ", ".join(sorted(known_plain)))


__all__ = ["is_persistent", "unknown_classes", "unknown_classes_message", "walk_modules"]
