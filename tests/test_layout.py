"""The library's layout: one folder per stage, imports pointing one way, units small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Stages in pipeline order: a module may import its own stage, an earlier one, or a shared base module.
STAGES = ("language", "ingest", "store", "retrieval", "generation", "answer", "pipeline", "evaluation", "app", "cli")
BASE = {"errors", "records", "fileio", "models", "settings", "questions", "options"}


def _modules():
    for path in sorted((ROOT / "rag").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        yield path, name, package, ast.parse(path.read_text(encoding="utf-8"))


def _stage(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "rag"


def _imports(name: str, package: str, tree) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            out += [target] if node.module else [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rag."):
            out.append(node.module)
    return out


def test_imports_point_one_way_through_the_stages():
    wrong = []
    for path, name, package, tree in _modules():
        here = _stage(name)
        if here not in STAGES:
            continue  # the base modules, rag/__init__ and __main__
        for target in _imports(name, package, tree):
            there = _stage(target)
            if there in BASE or there == here or there not in STAGES:
                continue
            if STAGES.index(there) > STAGES.index(here):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "a stage imports a later one: " + "; ".join(wrong)


def test_every_stage_folder_exists_and_holds_modules():
    for stage in STAGES:
        if stage == "cli":
            assert (ROOT / "rag" / f"{stage}.py").is_file()
        else:
            assert len(list((ROOT / "rag" / stage).glob("*.py"))) >= 2, stage
    top = {p.stem for p in (ROOT / "rag").glob("*.py")} - {"__init__", "__main__"}
    assert top <= BASE | {"cli"}, f"modules outside the stage folders: {sorted(top - BASE)}"


def test_no_class_over_150_lines_and_no_function_over_60():
    """Units small enough to read whole (the settings' field list aside)."""
    big = []
    for path, name, _, tree in _modules():
        for node in ast.walk(tree):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and size > 150 and node.name != "Settings":
                big.append(f"class {name}.{node.name}: {size} lines")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > 60:
                big.append(f"function {name}.{node.name}: {size} lines")
    assert not big, "; ".join(big)
