"""Helpers shared by the benchmark scripts (not a test module: pytest collects only test_*.py)."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def statement_count(source):
    """Assignment statements of emitted source (``=``, ``+=``...): one per computed value.

    ``del`` lines, the ``def`` line and the ``return`` line are not counted.
    """
    tree = ast.parse(source)
    return sum(isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
               for node in ast.walk(tree))


def table(header, rows):
    """A plain aligned text table (right-aligned except for the first column)."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
