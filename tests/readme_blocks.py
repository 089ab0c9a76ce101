"""The fenced blocks of README.md, with the section each sits in and the mark of a block the tests
do not run (``<!-- not run: reason -->`` on the line before it), for tests/test_readme.py and
tests/test_dask_cluster.py."""

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN_MARK = re.compile(r"^<!-- not run: (.+) -->$")


@dataclass(frozen=True)
class Block:
    line: int            # of the opening fence, counted from 1
    language: str        # the fence's info string: python, console, bash, text, or ""
    text: str
    section: str         # the "## " heading above it ("" before the first)
    not_run: str | None  # the reason given by a <!-- not run: ... --> line just before it


def readme_blocks(path=README):
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, section, index = [], "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        opening = FENCE.match(line)
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{index + 1}: a code block that is never closed")
        previous = next((lines[k] for k in range(index - 1, -1, -1) if lines[k].strip()), "")
        mark = NOT_RUN_MARK.match(previous.strip())
        text = "".join(f"{body}\n" for body in lines[index + 1:end])
        blocks.append(Block(index + 1, opening[1], text, section, mark[1] if mark else None))
        index = end + 1
    return blocks


def code_with_readme_lines(block):
    """The block's code, preceded by blank lines so that tracebacks give README.md's line numbers."""
    return "\n" * block.line + block.text
