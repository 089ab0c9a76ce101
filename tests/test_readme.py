"""README.md is executed: its Python blocks run, section by section, and print what the text blocks
after them show; its console blocks print what they show; its shell lines run (install lines are
checked for their form instead); the figures its prose quotes are the ones the code printed. A block
or a line the tests do not run is marked in the README (``<!-- not run: reason -->``, naming the
command in quotes when the mark is for one line) and listed in NOT_RUN below.

The comparisons are exact. A figure that changes with a rewrite or an upgrade of NumPy or SciPy is
meant to fail here: paste the new output into the README and reread the prose around it."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from readme_blocks import README, ROOT, code_with_readme_lines, readme_blocks

BLOCKS = readme_blocks()

# What the tests do not run, as the README marks it: a command (by how it starts) or a whole block
# (by its first line). test_not_run_marks_are_the_listed_ones keeps the two in step.
NOT_RUN = {
    ("command", "python -m pytest"),
    ("command", "jupyter lab"),
    ("block", "import dask, dask.array as da"),
    ("block", "SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py "
              "--hypothesis-show-statistics"),
    ("block", "SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_rewrite_safety.py "
              "--hypothesis-show-statistics"),
    ("block", "pip install atheris                                  "
              "# optional: coverage-guided fuzzing"),
}
QUOTED_COMMAND = re.compile(r'^"([^"]+)"')
LANGUAGES = {"python", "text", "console", "bash", ""}


def command_not_run(block):
    mark = block.not_run and QUOTED_COMMAND.match(block.not_run)
    return mark[1] if mark else None


def block_not_run(block):
    return block.not_run is not None and command_not_run(block) is None


def first_line(block):
    return block.text.splitlines()[0]


def test_not_run_marks_are_the_listed_ones():
    marked = {("command", command_not_run(block)) if command_not_run(block)
              else ("block", first_line(block)) for block in BLOCKS if block.not_run}
    assert marked == NOT_RUN


def test_every_block_is_of_a_kind_the_tests_know():
    assert {block.language for block in BLOCKS} <= LANGUAGES
    for index, block in enumerate(BLOCKS):
        if block.language == "text":      # an output, shown right after the block that prints it
            assert index > 0 and BLOCKS[index - 1].language == "python", block.line
            assert not block_not_run(BLOCKS[index - 1]), block.line


# -- Python ---------------------------------------------------------------------------------------

RUNNER = textwrap.dedent("""
    import contextlib, io, json, sys
    import symgrad as sg
    namespace, printed = {"__name__": "__readme__"}, []
    for filename, code in json.load(sys.stdin):
        captured = io.StringIO()
        with sg.use_graph(), contextlib.redirect_stdout(captured):
            exec(compile(code, filename, "exec"), namespace)
        printed.append(captured.getvalue())
    sys.__stdout__.write(json.dumps(printed))
""")


def python_sections():
    sections = {}
    for block in BLOCKS:
        if block.language == "python" and not block_not_run(block):
            sections.setdefault(block.section, []).append(block)
    return sections


def readme_env(tmp_path):
    """This checkout's symgrad, a `symgrad` command that runs it, and a kernel cache of the test's
    own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "symgrad"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m symgrad.cli "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, MPLBACKEND="Agg", SYMGRAD_CACHE_DIR=str(tmp_path / "kernels"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), env["PATH"]])
    return env


@pytest.mark.parametrize("section", list(python_sections()))
def test_python_blocks_run_and_print_what_the_readme_shows(section, tmp_path):
    """A section's blocks run in order in a fresh process, sharing one namespace, each in a graph of
    its own (so one defop or one variable does not reach the next section, nor the other tests)."""
    blocks = python_sections()[section]
    payload = json.dumps([("README.md", code_with_readme_lines(block)) for block in blocks])
    done = subprocess.run([sys.executable, "-c", RUNNER], input=payload, capture_output=True,
                          text=True, cwd=tmp_path, env=readme_env(tmp_path))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    for block, output in zip(blocks, printed):
        shown = BLOCKS[BLOCKS.index(block) + 1] if block is not BLOCKS[-1] else None
        if shown is not None and shown.language == "text":
            assert output == shown.text, f"README.md:{shown.line} shows another output"


# -- the command line -----------------------------------------------------------------------------

def console_commands():
    for block in BLOCKS:
        if block.language != "console":
            continue
        command, expected = None, []
        for offset, line in enumerate(block.text.splitlines() + ["$ "]):
            if line.startswith("$ "):
                if command is not None:
                    yield pytest.param(command, "".join(expected), id=f"README.md:{start}")
                command, expected, start = line[2:], [], block.line + 1 + offset
            else:
                expected.append(line + "\n")


def workdir(tmp_path):
    """Where shell lines run: a copy of examples/, so that nothing is written into the checkout."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.mark.parametrize("command, expected", list(console_commands()))
def test_console_blocks_print_what_they_show(command, expected, tmp_path):
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          cwd=workdir(tmp_path), env=readme_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


def test_the_prose_names_the_textbook_values():
    console = next(block for block in BLOCKS if block.language == "console")
    printed = dict(re.findall(r"^(value|d/d\w) = (\S+)$", console.text, re.M))
    claim = re.search(r"\(value (\S+), gradients (\S+), (\S+), (\S+)\)", README.read_text())
    assert claim, "the sentence after the first command moved"
    assert list(claim.groups()) == [printed[name] for name in ["value", "d/dx", "d/dy", "d/dz"]]


# -- shell lines ----------------------------------------------------------------------------------

def shell_lines():
    """Each command of the bash blocks, split at `&&`, with the README line it is on; an install
    command is checked for its form (test_install_lines_work_from_a_clone), not run."""
    for block in BLOCKS:
        if block.language != "bash" or block_not_run(block):
            continue
        skipped = command_not_run(block)
        for offset, line in enumerate(block.text.splitlines()):
            for command in line.split(" && "):
                if command.startswith("pip install"):
                    continue
                if skipped and command.startswith(skipped):
                    continue
                yield pytest.param(command, id=f"README.md:{block.line + 1 + offset}")


def output_pattern(command):
    """A trailing comment that starts with `{` is the output, `...` standing for any digits."""
    comment = re.search(r"\s#\s(\{.*)$", command)
    if not comment:
        return None
    return "".join(".*?" if part == "..." else re.escape(part)
                   for part in re.split(r"(\.\.\.)", comment[1].strip()))


@pytest.mark.parametrize("command", list(shell_lines()))
def test_shell_lines_run(command, tmp_path):
    if re.search(r"\|\s*dot\b", command) and not shutil.which("dot"):
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it)")
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True,
                          text=True, cwd=workdir(tmp_path), env=readme_env(tmp_path))
    assert done.returncode == 0, done.stderr
    pattern = output_pattern(command)
    if pattern:
        assert re.fullmatch(pattern, done.stdout.strip()), done.stdout


def test_the_shell_lines_that_run_are_the_expected_ones():
    """The split at `&&`, pip's lines and the marks leave these commands (a check of the checks)."""
    commands = [param.values[0].split(" #")[0].strip() for param in shell_lines()]
    assert commands[0] == 'symgrad grad "(x + y) * max(y, z)" --at x=-2,y=5,z=-4'
    assert any(command.startswith("jupyter nbconvert --to notebook --execute")
               for command in commands)
    assert not [command for command in commands
                if command.startswith(("pip", "python -m pytest", "jupyter lab"))]


# -- install lines and system packages ------------------------------------------------------------

def test_install_lines_work_from_a_clone():
    """symgrad is not on a package index: its extras are installed from a clone with
    pip install -e ".[extra]", and each extra named exists in pyproject.toml."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installs = [install.split(" && ")[0].split(" #")[0]
                for install in re.findall(r"pip install[^`\n]*", README.read_text())]
    assert len(installs) >= 5, installs
    for install in installs:
        assert "symgrad" not in install, install
        if " -e " in install:
            named = re.match(r'pip install -e "\.\[([\w,-]+)\]"', install)
            assert named, install
            assert set(named[1].split(",")) <= set(extras), install


def test_graphviz_is_named_as_a_system_package():
    text = README.read_text()
    assert "apt-get install graphviz" in text and "brew install graphviz" in text
    assert re.search(r"^system_package dot graphviz$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_dev_can_open_and_execute_the_notebooks():
    tomllib = pytest.importorskip("tomllib")
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    names = {re.match(r"[\w-]+", requirement)[0] for requirement in dev}
    assert {"jupyterlab", "nbconvert"} <= names


# -- the layout -----------------------------------------------------------------------------------

def test_the_layout_names_paths_that_exist():
    layout = next(block for block in BLOCKS if block.language == "" and block.section == "Layout")
    paths = [line.split()[0] for line in layout.text.splitlines() if line[:1].strip()]
    assert len(paths) >= 5
    assert [path for path in paths if not (ROOT / path).exists()] == []


# -- figures in the prose -------------------------------------------------------------------------

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def paragraph_after(block):
    lines = README.read_text().splitlines()[block.line + block.text.count("\n") + 1:]
    lines = lines[next(index for index, line in enumerate(lines) if line.strip()):]
    return "\n".join(lines[:next((i for i, line in enumerate(lines) if not line.strip()), None)])


@pytest.mark.parametrize("output", [block for block in BLOCKS if block.language == "text"],
                         ids=lambda block: f"README.md:{block.line}")
def test_figures_quoted_after_an_output_are_in_it(output):
    """Every number in the paragraph after an output (outside `code`) is one the output shows, so
    the prose cannot quote figures the code no longer produces."""
    prose = re.sub(r"`[^`]*`", "", paragraph_after(output))
    quoted = NUMBER.findall(prose)
    assert quoted, "no figures after the output: is it the paragraph that quotes it?"
    shown = set(NUMBER.findall(output.text))
    assert [figure for figure in quoted if figure not in shown] == []
