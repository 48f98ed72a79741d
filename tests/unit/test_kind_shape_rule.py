"""The job model's one rule, kept true by a scan of the source: no code outside the kinds
(gateway/jobs/kinds/) and the shapes (gateway/jobs/shapes/) asks which kind or shape a job is. They
are asked through their hooks instead (gateway/jobs/kinds/base.py, gateway/jobs/shapes/base.py).

Caught: a comparison with a kind's or shape's name (``job.kind == "sweep"``, ``kind in
("notebook", ...)``, a ``match`` on one), ``hasattr`` on a kind or shape, ``isinstance``
with a kind or shape class, and a template that branches on one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gateway.jobs.kinds import KINDS
from gateway.jobs.shapes import SHAPES

REPO = Path(__file__).resolve().parents[2]
OWNERS = (REPO / "gateway" / "kinds", REPO / "gateway" / "shapes")
# "sweep" was a kind until the shapes came (schema 4 migrates it); keep it out for good.
NAMES = set(KINDS) | set(SHAPES) | {"sweep"}
SOURCE_DIRS = ("gateway", "containers", "spool")
TEMPLATE_BRANCH = re.compile(r"\{%-?\s*(?:el)?if\b[^%]*\b(kind|shape|array|render_id|sweep|"
                             + "|".join(sorted(NAMES)) + r")\b")


def _sources() -> list[Path]:
    files = [REPO / "cli.py"]
    for folder in SOURCE_DIRS:
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if not any(owner in f.parents for owner in OWNERS)]


def _names_in(node: ast.AST) -> set[str]:
    found = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str) \
                and inner.value in NAMES:
            found.add(inner.value)
    return found


def _is_kind_or_shape(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return bool(re.search(r"(^|[._])(kind|shape)$", text))


def violations_in(path: Path) -> list[str]:
    """Every place in ``path`` that asks which kind or shape a job is."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(op, ast.Constant | ast.Tuple | ast.List | ast.Set)
                   and _names_in(op) for op in operands):
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Match) and any(_names_in(case.pattern)
                                                 for case in node.cases):
            found.append(f"{where}: match on {ast.unparse(node.subject)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "hasattr" and node.args and _is_kind_or_shape(node.args[0]):
                found.append(f"{where}: {ast.unparse(node)}")
            if node.func.id == "isinstance" and len(node.args) == 2 and re.search(
                    r"(Kind|Shape)\b", ast.unparse(node.args[1])):
                found.append(f"{where}: {ast.unparse(node)}")
    return found


def template_violations() -> list[str]:
    """Template lines that branch on a kind or a shape."""
    found = []
    for path in sorted((REPO / "templates").rglob("*.j2")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TEMPLATE_BRANCH.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return found


def test_nothing_outside_kinds_and_shapes_asks_which_one_a_job_is():
    found = [v for path in _sources() for v in violations_in(path)] + template_violations()
    assert not found, "ask the kind or shape through a hook instead:\n" + "\n".join(found)


def test_the_scan_catches_what_it_is_for(tmp_path):
    """The scan is no test that cannot fail: each way of asking is caught."""
    sample = REPO / "gateway" / "_scan_sample.py"
    cases = ['if job.kind == "sweep": pass', 'x = job.shape != "array"',
             'y = kind in ("notebook", "headless")', 'z = hasattr(kind, "container_command")',
             'w = isinstance(k, NotebookKind)',
             'match job.kind:\n    case "training":\n        pass']
    try:
        for case in cases:
            sample.write_text(case + "\n")
            assert violations_in(sample), case
        sample.write_text('if store.kind == "algo": pass\nif app_name == "x": pass\n')
        assert not violations_in(sample)
    finally:
        sample.unlink(missing_ok=True)
    assert TEMPLATE_BRANCH.search("{% if array %}") and TEMPLATE_BRANCH.search(
        "{% elif render_id %}") and not TEMPLATE_BRANCH.search("{% if algo_path %}")
