"""The family rule (README, "Layout"): shared packages import no family module and test no family name."""

from __future__ import annotations

import ast
from pathlib import Path

from aware3d.models.registry import families

PACKAGE = Path(__file__).resolve().parents[1] / "aware3d"
FAMILY_ROOT = PACKAGE / "models"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (the module ``module``, by default found from
    its place in the package), relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    here = (module or module_name(path)).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


def shared_files() -> list[Path]:
    family_dirs = [FAMILY_ROOT / name for name in families()]
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not any(d in p.parents for d in family_dirs)]


def test_shared_code_imports_no_family():
    names = sorted(families())
    assert names, "no family registered"
    offending = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {mod}"
                 for p in shared_files() for line, mod in imported_modules(p)
                 if any(mod == f"aware3d.models.{n}" or mod.startswith(f"aware3d.models.{n}.") for n in names)]
    assert not offending, "\n".join(offending)


def family_name_tests(path: Path, names: set[str]) -> list[str]:
    """Comparisons with a family name (``x == "eg3d"``, ``in ("pigan", ...)``, ``.startswith("eg3d")``)."""
    tree = ast.parse(path.read_text(), str(path))
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            consts = [c for c in [node.left, *node.comparators] for c in ast.walk(c) if isinstance(c, ast.Constant)]
            hits += [f"{path.name}:{node.lineno} compares with {c.value!r}" for c in consts if c.value in names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith")):
            hits += [f"{path.name}:{node.lineno} tests {node.func.attr}({a.value!r})" for a in node.args
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)
                     and any(a.value.startswith(n) for n in names)]
    return hits


def test_shared_code_tests_no_family_name():
    names = set(families())
    hits = [h for p in shared_files() for h in family_name_tests(p, names)]
    assert not hits, "\n".join(hits)


def test_the_checks_can_fail(tmp_path):
    """The two scanners do find what they look for."""
    sample = tmp_path / "probe.py"
    sample.write_text("from ..models.pigan import config\nif G.family == 'eg3d' or p.startswith('pigan-'):\n    pass\n")
    assert "aware3d.models.pigan.config" in [m for _, m in imported_modules(sample, "aware3d.tools.probe")]
    assert len(family_name_tests(sample, {"pigan", "eg3d"})) == 2
