"""The package's structure (`tools/structure.py` prints it): one room per concern, no import circle, modules and
functions short enough to read."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import structure

MODULES = structure.read_package()


def test_no_import_circle():
    assert structure.cycles(MODULES) == []


def test_the_cache_imports_nothing_that_uses_it():
    users = {name for name, m in MODULES.items() if "cache" in m["imports"]}
    assert not MODULES["cache"]["imports"] & users


def test_modules_and_functions_stay_short():
    assert {name: m["lines"] for name, m in MODULES.items() if m["lines"] > 400} == {}
    assert {f"{name}.{f}": n for name, m in MODULES.items() for f, n in m["functions"].items() if n > 50} == {}
