"""The structure of the seti_nb package, read from its source: which module imports which, on which level each
stands, cycles, imports inside functions, and the longest modules and functions.

    .venv/bin/python tools/structure.py [PACKAGE_FOLDER]     (default: this checkout's seti_nb/)

A module's level is one above the highest module it imports (level 1 imports nothing of the package); an import
inside a function counts like one at the top. `tests/test_structure.py` keeps the targets.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "seti_nb"


def _imported(node: ast.AST, module: str) -> set[str]:
    """Package modules named by one import statement of `module`."""
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        if node.module:
            return {node.module.split(".")[0]}
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seti_nb."):
        return {node.module.split(".")[1]}
    if isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("seti_nb.")}
    return set()


def read_package(package: Path = PACKAGE) -> dict:
    """{module: {"lines", "imports", "inner_imports", "functions": {name: lines}}} for every module."""
    modules = {}
    for path in sorted(package.glob("*.py")):
        name, tree = path.stem, ast.parse(path.read_text())
        imports, inner = set(), 0
        for node in ast.walk(tree):
            imports |= _imported(node, name)
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            inner += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(function))
        functions = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        modules[name] = {"lines": len(path.read_text().splitlines()), "imports": imports - {name, "__init__"},
                         "inner_imports": inner, "functions": functions}
    return modules


def cycles(modules: dict) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, found, counter = {}, {}, [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        for w in modules[v]["imports"]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in modules:
        if v not in index:
            visit(v)
    return found


def levels(modules: dict) -> dict[str, int]:
    """Level of every module (cycles cut: a module already on the path counts as level 0)."""
    known: dict[str, int] = {}

    def level(v, path=()):
        if v in path:
            return 0
        if v not in known:
            known[v] = 1 + max((level(w, (*path, v)) for w in modules[v]["imports"]), default=0)
        return known[v]

    return {v: level(v) for v in modules}


def main() -> None:
    modules = read_package(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE)
    lv = levels(modules)
    edges = sum(len(m["imports"]) for m in modules.values())
    print(f"{len(modules)} modules on {max(lv.values())} levels, {edges} import edges, "
          f"{len(cycles(modules))} cycles {cycles(modules)}, "
          f"{sum(m['inner_imports'] for m in modules.values())} imports inside functions")
    for name in sorted(modules, key=lambda m: (-lv[m], m)):
        m = modules[name]
        longest = max(m["functions"].items(), key=lambda kv: kv[1], default=("-", 0))
        print(f"  level {lv[name]}  {name:<12} {m['lines']:>4} lines  longest function {longest[0]} ({longest[1]})"
              f"  inner imports {m['inner_imports']:>2}  imports {', '.join(sorted(m['imports'])) or '-'}")


if __name__ == "__main__":
    main()
