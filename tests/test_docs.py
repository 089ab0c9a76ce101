"""Every docstring example in the package runs, each docstring in a fresh graph; so do the
examples of the documentation site's own pages, and every public function carries one."""

import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

import symgrad as sg

MODULES = sorted(m.name for m in pkgutil.walk_packages(sg.__path__, "symgrad."))


def docstring_tests():
    finder = doctest.DocTestFinder()
    for name in MODULES:
        module = importlib.import_module(name)
        for test in finder.find(module):
            if test.examples:
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", list(docstring_tests()))
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    with sg.use_graph():
        result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)


def test_every_module_is_documented():
    missing = [name for name in MODULES if not importlib.import_module(name).__doc__]
    assert not missing


# The op table writes the docstrings of the functions it makes (defop's public=, elementwise's
# unary): one line naming the NumPy or SciPy function whose values they compute, which is their
# documentation. Every other public function of sg carries a runnable example of its own.
GENERATED_DOCSTRING = re.compile(r"(Element-wise ``np\.\w+``|The op \w+), differentiable\.")


def test_every_public_function_has_an_example():
    missing = []
    for name in sg.__all__:
        function = getattr(sg, name)
        if not inspect.isroutine(function):
            continue          # classes, constants, the op table
        doc = inspect.getdoc(function) or ""
        if not GENERATED_DOCSTRING.fullmatch(doc) and ">>>" not in doc:
            missing.append(name)
    assert not missing, f"public functions without a docstring example: {missing}"


# the pages of docs/ whose examples are doctests (the others include the README or list the API)
DOC_PAGES = ["conventions.md"]
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", DOC_PAGES)
def test_documentation_page_examples(page):
    with sg.use_graph():
        result = doctest.testfile(str(DOCS / page), module_relative=False, verbose=False,
                                  optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted > 0 and result.failed == 0, f"{page}: {result}"
