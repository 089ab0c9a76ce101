"""The formula parser and the SymPy bridge.

Hostile text must raise ParseError and execute nothing; valid text must mean what NumPy means.
"""

import ast
import builtins
import contextlib
import importlib
import math
import os
import sys
import unicodedata

import numpy as np
import pytest
import scipy.special
import sympy

import symgrad as sg
from audit_guard import Refused, guarded

RNG = np.random.default_rng(20240601)
parse_module = importlib.import_module("symgrad.parse")     # sg.parse is the function

# -- hostile input ---------------------------------------------------------------------------------

MARKER = "pwned"          # every payload that could write a file writes this, relative to the cwd
LIMIT = parse_module.MAX_LENGTH
TEN_MB = 10_000_000

# Grouped by what they try; each must be a ParseError under the default limits (see the tests
# below for which limit refuses the huge ones). The 10 MB texts are built here, not stored.
HOSTILE_BY_KIND = {
    "code injection": {
        "import call": f"__import__('os').system('touch {MARKER}')",
        "import bare": "__import__",
        "import no strings": "__import__(os)",
        "import statement": f"import os; os.system('touch {MARKER}')",
        "from import": "from os import system",
        "exec": f"exec('open(\"{MARKER}\", \"w\")')",
        "eval": "eval('1 + 1')",
        "exec no strings": "exec(x)",
        "eval name": "eval(x)",
        "compile": "compile('1', 'f', 'eval')",
        "open": f"open('{MARKER}', 'w')",
        "getattr": "getattr(x, 'T')",
        "getattr of an import": "getattr(__import__('os'), 'system')('id')",
        "globals": "globals()",
        "vars": "vars()",
        "breakpoint": "breakpoint()",
        "input": "input()",
        "print": "print(x)",
        "subprocess": "__import__('subprocess').Popen(['id'])",
        "os.system spelled": "system(x)",
        "method of a name": "os.system(x)",
        "numpy's os": "np.os.system('id')",
        "numpy's builtins": "np.__builtins__['__import__']('os')",
        "payload after a valid formula": f"x + 1; __import__('os').system('touch {MARKER}')",
        "sympify-style payload": "x + __import__('os').system('id')",
        "unknown function": "foo(x)",
    },
    "dunder and attribute access": {
        "dunder attribute": "x.__class__",
        "dunder chain": "x.__class__.__bases__[0].__subclasses__()",
        "dunder on tuple": "(1, 2).__class__",
        "dunder on number": "(1).__class__",
        "dunder on call": "sin(x).__class__",
        "dunder on list": "[x].__class__",
        "dunder name": "__builtins__",
        "dunder subscript": "__builtins__['eval']",
        "dunder in axis": "sum(x, axis=__import__)",
        "dunder in index": "v[__import__]",
        "dunder keyword": "sum(v, __class__=0)",
        "dunder method": "v.__len__()",
        "globals of a method": "v.sum.__globals__",
        "dunder after T": "x.T.__class__",
        "attribute real": "x.real",
        "attribute shape": "v.shape",
        "attribute graph": "x.graph",
        "private attribute": "x._graph",
        "attribute of method": "v.sum.__call__()",
        "attribute of T": "v.T.__doc__",
        "unknown method": "v.astype(x)",
        "mro": "x.mro()",
        "attribute of None": "None.__class__",
    },
    "lambdas": {
        "lambda": "lambda: 0",
        "called lambda": "(lambda q: q)(1)",
        "lambda default": "lambda q=__import__('os'): q",
        "lambda argument": "sum(lambda: 0)",
        "nested lambda": "(lambda: lambda: 0)()()",
    },
    "comprehensions": {
        "list comprehension": "[i for i in v]",
        "generator": "sum(i for i in v)",
        "dict comprehension": "{i: i for i in v}",
        "set comprehension": "{i for i in v}",
        "set": "{1, 2}",
        "nested comprehension": "[[j for j in i] for i in v]",
        "async comprehension": "[i async for i in v]",
    },
    "strings and f-strings": {
        "f-string": "f'{x}'",
        "f-string import": f"f\"{{__import__('os').system('touch {MARKER}')}}\"",
        "f-string format spec": "f'{x:{__import__(\"os\").system(\"id\")}}'",
        "string": "'abc'",
        "double-quoted string": "\"abc\" + x",
        "triple-quoted string": "'''x'''",
        "bytes": "b'x'",
        "raw string": "r'x'",
        "unicode prefix": "u'x'",
        "hex escape in a string": "'\\x5f\\x5fimport\\x5f\\x5f'",
        "octal escape in a string": "'\\137\\137class\\137\\137'",
        "unicode escape outside a string": "\\u0078 + 1",
        "named escape outside a string": "\\N{LATIN SMALL LETTER X}",
        "implicit concatenation": "'a' 'b'",
    },
    "walrus": {
        "walrus": "(y := 3)",
        "walrus bare": "y := 3",
        "walrus unspaced": "(y:=3)",
        "walrus in a call": "sin(y := x)",
        "walrus in an index": "v[(i := 0)]",
        "walrus keyword": "sum(v, axis:=0)",
        "walrus in a comprehension": "[y := i for i in v]",
    },
    "statements": {
        "assignment": "x = 1",
        "augmented assignment": "x += 1",
        "annotated assignment": "x: int = 1",
        "del": "del x",
        "semicolon": "x; y",
        "two lines": "x\ny",
        "if statement": "if x: y",
        "conditional expression": "x if y else z",
        "for loop": "for i in v: pass",
        "while loop": "while True: pass",
        "with": "with open('f') as g: g",
        "try": "try: x\nexcept: y",
        "def": "def f(): return 1",
        "class": "class A: pass",
        "return": "return x",
        "pass": "pass",
        "global": "global x",
        "nonlocal": "nonlocal x",
        "raise": "raise SystemExit",
        "assert": "assert x",
        "match": "match x:\n case 1: y",
        "type alias": "type X = int",
        "print statement": "print x",
        "not": "not x",
        "and": "x and y",
        "or": "x or y",
        "is": "x is None",
        "in": "x in v",
    },
    "yield, await and async": {
        "yield": "yield x",
        "yield from": "yield from v",
        "await": "await x",
        "await in a call": "sin(await x)",
        "async def": "async def f(): pass",
        "async with": "async with x: y",
        "async for": "async for i in v: pass",
    },
    "decorators": {
        "decorator": "@decorator\ndef f(): pass",
        "decorator payload": f"@__import__('os').system('touch {MARKER}')\ndef f(): pass",
        "bare at": "@x",
        "double at": "x @ @y",
    },
    "starred and keyword tricks": {
        "star args": "sin(*v)",
        "double star kwargs": "v.sum(**x)",
        "star in a list": "[*v]",
        "double star dict": "sin(**{'x': 1})",
        "keyword-only marker": "sum(v, *, axis=0)",
        "positional-only marker": "sum(v, /, axis=0)",
        "keyword named by a keyword": "sum(v, lambda=1)",
        "keyword named True": "sum(v, True=1)",
        "keyword repeated": "sum(v, axis=0, axis=1)",
        "keyword then positional": "sum(axis=0, v)",
        "keyword twice by position": "leaky_relu(x, 0.1, alpha=0.2)",
        "unknown keyword": "sum(v, out=v)",
        "non-literal keyword": "sum(v, axis=axis)",
        "non-literal reshape": "reshape(v, x)",
    },
    "comments and continuations": {
        "comment": "x # comment",
        "comment hiding a payload": "x # ); __import__('os').system('id')",
        "comment then a line": "x #\n+ __import__('os')",
        "shebang": "#!/bin/sh\nx",
        "encoding cookie": "# -*- coding: rot13 -*-\nk",
        "type comment": "x  # type: ignore",
        "backslash continuation": "x \\\n+ y",
        "continuation then payload": "x \\\n; import os",
        "trailing backslash": "x\\",
    },
    "unicode look-alikes": {
        "fullwidth x": "\uff58 + 1",
        "fullwidth sin": "\uff53\uff49\uff4e(x)",
        "fullwidth eval": "\uff45\uff56\uff41\uff4c('1')",
        "fullwidth plus": "x \uff0b y",
        "fullwidth parentheses": "sin\uff08x\uff09",
        "fullwidth digit": "x * \uff13",
        "fullwidth low lines (NFKC dunder)": "x._\uff3fclass\uff3f\uff3f",
        "fullwidth dunder name (NFKC)": "_\uff3fimport\uff3f\uff3f",
        "cyrillic y": "x + \u0443",
        "cyrillic exp": "\u0435\u0445\u0440(x)",
        "greek omicron": "\u03bf + x",
        "mathematical bold x": "\U0001d431 + 1",
        "mathematical italic x": "\U0001d465 * 2",
        "mathematical digit": "x * \U0001d7d1",
        "arabic-indic digit": "x * \u0663",
        "thai digit after a digit": "1\u0e51",
        "superscript two": "x\u00b2",
        "ligature fi (NFKC)": "\ufb01",
        "long s (NFKC sum)": "\u017fum(v)",
        "script e (NFKC exp)": "\u212fxp(x)",
        "kelvin sign": "\u212a + 1",
        "minus sign": "x \u2212 1",
        "division slash": "x \u2215 y",
        "asterisk operator": "x \u2217 y",
        "greek question mark": "x\u037e y",
        "combining accent": "x\u0301 + 1",
        "non-breaking space": "x\u00a0+ 1",
        "ideographic space": "x\u3000+ 1",
    },
    "invisible and bidi characters": {
        "zero-width space": "x\u200b+ 1",
        "zero-width joiner": "x\u200d+ 1",
        "zero-width non-joiner in a name": "s\u200cin(x)",
        "word joiner": "x\u2060",
        "byte order mark": "\ufeffx + 1",
        "soft hyphen": "x\u00ad+ 1",
        "right-to-left override": "x + \u202e1",
        "override hiding a payload": "x\u202e ) '__import__' (\u202c",
        "left-to-right embedding": "\u202ax",
        "right-to-left isolate": "\u2067x\u2069",
        "line separator": "x\u2028+ y",
        "paragraph separator": "x\u2029+ y",
        "next line": "x\u0085+ y",
    },
    "control characters": {
        "bell": "x\x07 + 1",
        "escape sequence": "x\x1b[31m",
        "terminal title": "x\x1b]0;pwned\x07",
        "clear screen": "\x1b[2J x",
        "C1 control sequence introducer": "x\x9b31m",
        "backspace": "x\x08",
        "delete": "x\x7f",
        "form feed": "x\x0c+ y",
        "vertical tab": "x\x0b+ y",
        "carriage return hiding a payload": "__import__('os')\rx",
        "CR LF between expressions": "x\r\ny",
        "file separator": "x\x1c+ y",
        "record separator": "x\x1e+ y",
    },
    "NUL bytes": {
        "NUL byte": "x\x00",
        "lone NUL": "\x00",
        "NUL first": "\x00x",
        "NUL in a name": "x\x00y",
        "NUL in a number": "1\x002",
        "NUL in a call": "sin(\x00x)",
        "NUL before a payload": "x + 1\x00; import os",
        "a thousand NULs": "\x00" * 1000,
    },
    "10 MB strings": {
        "10 MB of digits": "1" * TEN_MB,
        "10 MB flat sum": "x+" * (TEN_MB // 2) + "x",
        "10 MB of NUL": "\x00" * TEN_MB,
        "10 MB of non-ASCII": "\u00e9" * TEN_MB,
        "10 MB of spaces then a payload": " " * TEN_MB + "__import__('os')",
        "one character over the limit": "x" * (LIMIT + 1),
    },
    "deep nesting": {
        "100000-deep parentheses": "(" * 100_000 + "x" + ")" * 100_000,
        "100000 unary minus": "-" * 100_000 + "x",
        "49999-deep parentheses": "(" * 49_999 + "x" + ")" * 49_999,
        "99999 unary minus": "-" * 99_999 + "x",
        "99999 unclosed parentheses": "(" * 99_999 + "x",
        "99999 unclosed lists": "[" * 99_999 + "x",
        "33333-deep indexing": "v[" * 33_333 + "0" + "]" * 33_333,
        "19999-deep calls": "sin(" * 19_999 + "x" + ")" * 19_999,
        "33333-high power tower": "2**" * 33_333 + "2",
        "12499-deep max": "max(x, " * 12_499 + "x" + ")" * 12_499,
        "14285-deep method arguments": "v.sum(" * 14_285 + ")" * 14_285,
        "19999-deep tuples": "(x, " * 19_999 + "x" + ")" * 19_999,
    },
    "huge numbers": {
        "1000-digit integer": "9" * 1000,
        "301-digit integer": "1" + "0" * 300,
        "99990-digit integer": "9" * 99_990,
        "million-digit float": "1." + "0" * 1_000_000,
        "401-digit float": "1" + "0" * 400 + ".0 * x",
        "exponent past float": "1e999999",
        "signed exponent past float": "1e+999999",
        "negative exponent past float": "-1e400",
        "5000-digit exponent": "1e" + "9" * 5000,
        "huge axis": "sum(v, axis=" + "9" * 1000 + ")",
        "huge index": "v[" + "9" * 1000 + "]",
        "huge slice step": "v[::" + "9" * 1000 + "]",
        "huge reshape": "v.reshape(" + "9" * 1000 + ")",
        "huge slope": "leaky_relu(x, 1e999)",
        "huge clip bounds": "clip(x, -1e400, 1e400)",
    },
    "absurd exponents": {
        "power of an overflowing literal": "2**1e999",
        "variable to an overflowing power": "x**1e999",
        "negative overflowing power": "x ** -1e400",
        "power of a 301-digit integer": "10**" + "9" * 301,
        "tower ending in an overflow": "10**10**10**1e400",
        "exp of an overflowing literal": "exp(1e999)",
        "pow function": "pow(10, 10**10)",
        "caret power": "x ^ 2",
        "double caret": "10^^10",
    },
    "other syntax": {
        "call of a parenthesis": "(x)(y)",
        "call of a call": "sin(x)(y)",
        "call of an index": "v[0](1)",
        "call of a number": "1(2)",
        "call of a method result": "v.sum()(1)",
        "floor division": "x // 2",
        "percent formatting": "'%s' % x",
        "bitwise and": "x & y",
        "shift": "x << 1",
        "invert": "~x",
        "backtick": "`x`",
        "dollar": "$x",
        "hex literal": "0x10",
        "binary literal": "0b101",
        "complex literal": "1j",
        "digit separators": "1_000",
        "two dots": "1.2.3",
        "dangling exponent": "1e",
        "chained comparison": "0 < x < 1",
        "empty": "",
        "blank": "   \t ",
        "unfinished": "sin(x) + ",
        "float index": "v[1.5]",
        "variable index": "v[x]",
        "slice of four parts": "v[1:2:3:4]",
        "ellipsis as a value": "... + x",
        "list as a value": "[x, y] + 1",
    },
}

HOSTILE = {f"{kind}: {name}": text for kind, entries in HOSTILE_BY_KIND.items()
           for name, text in entries.items()}

# Modules whose import by name would be the first step of an escape, even when already loaded.
DANGEROUS_MODULES = {"os", "posix", "subprocess", "shutil", "socket", "ctypes", "importlib",
                     "pty", "builtins", "sys", "io", "pathlib", "pickle", "marshal", "code"}
ATTRIBUTE_DOORS = ("getattr", "hasattr", "setattr", "delattr")


@contextlib.contextmanager
def nothing_may_run(monkeypatch):
    """Record everything that executes, imports or reaches into an object by name in the block.

    The audit hook of audit_guard sees and refuses exec, compile, open, os.system, subprocess,
    sockets, ctypes, the loading of a module and the reads of code and frame attributes. Two doors
    raise no audit event, so spies watch them: ``__import__`` of a module already loaded, and
    attribute access by name from symgrad's code (getattr and friends). Yields the list of what
    was seen.
    """
    calls = []
    watching = [False]          # monkeypatch itself uses getattr and setattr around the block
    real_import = builtins.__import__

    def watched_import(name, globals=None, locals=None, fromlist=(), level=0):
        if watching[0] and level == 0 and name.split(".")[0] in DANGEROUS_MODULES:
            calls.append(f"import {name}")
        return real_import(name, globals, locals, fromlist, level)

    def spy(door):
        real = getattr(builtins, door)

        def look(obj, name, *rest):
            # libraries look up fixed names of their own (contextlib reads __doc__); a name from
            # the formula could only be looked up by symgrad
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if watching[0] and caller.split(".")[0] == "symgrad":
                calls.append(f"{door} {name}")
            return real(obj, name, *rest)
        return look

    loaded = set(sys.modules)
    with monkeypatch.context() as patch:
        patch.setattr(builtins, "__import__", watched_import)
        for door in ATTRIBUTE_DOORS:
            patch.setattr(builtins, door, spy(door))
        try:
            with guarded() as events:
                watching[0] = True
                yield calls
        finally:
            watching[0] = False
    calls.extend(f"audit {event}" for event in events)
    calls.extend(f"loaded {m}" for m in sorted(set(sys.modules) - loaded))


@pytest.fixture
def shaped_variables():
    """A vector, so that payloads reach the grammar rather than a shape error."""
    return sg.var("v", shape=(3,))


def refusal(text, monkeypatch):
    """The exception sg.parse raises for ``text`` (None if it returns), and what ran meanwhile."""
    outcome = None
    with nothing_may_run(monkeypatch) as calls:
        try:
            sg.parse(text)
        except BaseException as error:          # noqa: BLE001 (judged by the caller)
            outcome = error
    return outcome, calls


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_is_refused_and_nothing_runs(text, monkeypatch, tmp_path, shaped_variables):
    monkeypatch.chdir(tmp_path)
    graph = sg.default_graph()
    before = (graph.number_of_nodes(), graph.number_of_edges(), dict(graph.variables))
    outcome, calls = refusal(text, monkeypatch)
    assert calls == []
    assert list(tmp_path.iterdir()) == []
    assert isinstance(outcome, sg.ParseError), f"{type(outcome).__name__}: {outcome}"
    assert isinstance(outcome, ValueError) and isinstance(outcome, sg.SymgradError)
    assert (graph.number_of_nodes(), graph.number_of_edges(), dict(graph.variables)) == before


def test_the_guards_see_what_they_watch(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    import ctypes
    import socket
    import subprocess
    fresh = "tabnanny"
    assert fresh not in sys.modules
    attempts = {
        "eval": lambda: eval("1"),
        "exec": lambda: exec("pass"),
        "open": lambda: open(MARKER, "w"),
        "os.system": lambda: os.system(f"touch {MARKER}"),
        "subprocess": lambda: subprocess.Popen(["touch", MARKER]),
        "socket": lambda: socket.socket(),
        "ctypes": lambda: ctypes.string_at(id(0), 1),
        "code object": lambda: (lambda: 0).__code__,
        "fresh import": lambda: __import__(fresh),
    }
    with nothing_may_run(monkeypatch) as calls:
        refused = []
        for name, attempt in attempts.items():
            try:
                attempt()
            except Refused:
                refused.append(name)
        __import__("os")
        sg.parse("v.sum()", shapes={"v": (3,)})    # the parser's one getattr, of a whitelisted name
    assert refused == list(attempts)
    assert list(tmp_path.iterdir()) == []
    assert "import os" in calls and "getattr sum" in calls
    for event in ["audit compile", "audit open", "audit os.system", "audit subprocess.Popen",
                  "audit socket.__new__", "audit ctypes.string_at", "audit object.__getattr__",
                  "audit import"]:
        assert event in calls
    assert fresh not in sys.modules


def test_the_hostile_corpus_is_big_enough_and_covers_every_kind():
    assert len(set(HOSTILE.values())) == len(HOSTILE) >= 100
    assert all(len(entries) >= 4 for entries in HOSTILE_BY_KIND.values())
    for kind in ["code injection", "dunder and attribute access", "lambdas", "comprehensions",
                 "strings and f-strings", "walrus", "statements", "yield, await and async",
                 "decorators", "starred and keyword tricks", "comments and continuations",
                 "unicode look-alikes", "invisible and bidi characters", "control characters",
                 "NUL bytes", "10 MB strings", "deep nesting", "huge numbers", "absurd exponents"]:
        assert kind in HOSTILE_BY_KIND


# The size of every refusal is bounded without timing anything: a text over the limit is refused
# before it is tokenized, a deep one where the nesting passes the depth limit, a character outside
# the alphabet by the tokenizer where it stands, a long literal before it is converted.

def tokenizer_calls(monkeypatch):
    calls = []
    real = parse_module.tokenize
    monkeypatch.setattr(parse_module, "tokenize",
                        lambda text: calls.append(len(text)) or real(text))
    return calls


OVER_LIMIT = {name: text for name, text in HOSTILE.items() if len(text) > LIMIT}


@pytest.mark.parametrize("text", list(OVER_LIMIT.values()), ids=list(OVER_LIMIT))
def test_text_over_the_length_limit_is_refused_before_tokenizing(text, monkeypatch):
    calls = tokenizer_calls(monkeypatch)
    with pytest.raises(sg.ParseError, match=f"more than the limit of {LIMIT}") as info:
        sg.parse(text)
    assert calls == []
    assert info.value.position is None


def test_the_corpus_has_texts_of_ten_megabytes():
    assert sum(len(text) >= TEN_MB for text in OVER_LIMIT.values()) >= 4


DEEP = {name: text for name, text in HOSTILE_BY_KIND["deep nesting"].items() if len(text) <= LIMIT}


@pytest.mark.parametrize("text", list(DEEP.values()), ids=list(DEEP))
def test_deep_text_is_refused_where_it_passes_the_depth_limit(text, shaped_variables):
    with pytest.raises(sg.ParseError, match="nests deeper than 100 levels") as info:
        sg.parse(text)
    # the descent stopped after ~100 levels, however deep the text goes
    assert info.value.position < 10 * parse_module.MAX_DEPTH


# quotes open strings, whose own characters are checked where they stand as well
ALPHABET = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
               "+-*/%@()[],:.=<>! \t\r\n'\"")


def first_foreign(text):
    return next((i for i, char in enumerate(text) if char not in ALPHABET), None)


FOREIGN = {name: text for name, text in HOSTILE.items()
           if len(text) <= LIMIT and first_foreign(text) is not None}


@pytest.mark.parametrize("text", list(FOREIGN.values()), ids=list(FOREIGN))
def test_a_character_outside_the_alphabet_is_refused_where_it_stands(text, shaped_variables):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text)
    # tokenizing comes before any parsing, so nothing after the character was read as grammar
    assert info.value.position == first_foreign(text)


LOOKALIKES = HOSTILE_BY_KIND["unicode look-alikes"]


def python_reads(text):
    try:
        ast.parse(text, mode="eval")        # parsing only, to show what Python would make of it
    except SyntaxError:
        return False
    return True


def test_lookalikes_that_python_would_normalise_are_refused_not_normalised(shaped_variables):
    normalised = {name: unicodedata.normalize("NFKC", text) for name, text in LOOKALIKES.items()}
    # Python's own parser reads these as ASCII names (it applies NFKC to identifiers)
    read_by_python = [name for name, text in LOOKALIKES.items()
                      if normalised[name] != text and normalised[name].isascii()
                      and python_reads(text)]
    assert {"fullwidth sin", "fullwidth low lines (NFKC dunder)", "long s (NFKC sum)",
            "mathematical bold x"} <= set(read_by_python)
    assert normalised["fullwidth low lines (NFKC dunder)"] == "x.__class__"
    for name in read_by_python:
        with pytest.raises(sg.ParseError, match="ASCII"):
            sg.parse(LOOKALIKES[name])
    # and the ASCII spelling is an ordinary formula, so the refusal is about the characters
    assert sg.parse(normalised["long s (NFKC sum)"]).shape == ()
    assert sg.parse(normalised["fullwidth sin"]).shape == ()


@pytest.mark.parametrize("text", ["x * \uff13", "x * \u0663", "1\u0e51", "\U0001d7d1",
                                  "v[\uff10]", "1.\uff15", "1e\u0665"])
def test_non_ascii_digits_are_not_numbers(text, shaped_variables):
    # regression: the tokenizer's \d matched any Unicode digit, and int() and float() accept them,
    # so '1๑' was read as 11 and 'x * ３' as x * 3
    with pytest.raises(sg.ParseError, match="ASCII"):
        sg.parse(text)


def test_error_messages_echo_only_printable_text():
    for text in ["x\x1b]0;pwned\x07 + $", "x\u202e + $", "x\x00 $"]:
        with pytest.raises(sg.ParseError) as info:
            sg.parse(text)
        message = str(info.value)
        assert message.isascii() and "\x1b" not in message and "\u202e" not in message
        assert "\n" not in message
    with pytest.raises(sg.ParseError) as info:
        sg.parse("x + $y")
    assert "\n" in str(info.value)           # printable text still gets its caret


@pytest.mark.parametrize("text,value", [
    ("10**10**10**10", math.inf), ("9**9**9**9**9", math.inf), ("2**1e308", math.inf),
    ("10**400", math.inf), ("-(2**1024)", -math.inf), ("10**-400", 0.0), ("(-8)**(1/3)", math.nan),
])
def test_absurd_powers_of_short_literals_are_float_arithmetic(text, value):
    # literals are floats, so a tower folds to inf at once: no giant integer is ever computed
    e = sg.parse(text)
    assert e.op == "const" and e.dtype == "float64"
    result = float(sg.compile(e)())
    assert result == value or (math.isnan(value) and math.isnan(result))


@pytest.mark.parametrize("text", [
    "(" * 100_000 + "x" + ")" * 100_000,
    "-" * 100_000 + "x",
    "-" * 100_000 + "1",
    "+-" * 50_000 + "x",
    "x" + "**x" * 50_000,
    "2**" * 50_000 + "2",
    "[" * 100_000 + "x" + "]" * 100_000,
    "v[" * 100_000 + "0" + "]" * 100_000,
    "sin(" * 100_000 + "x" + ")" * 100_000,
    "max(x, " * 100_000 + "x" + ")" * 100_000,
    "v.sum(" * 100_000 + ")" * 100_000,
    "(x, " * 100_000 + "x" + ")" * 100_000,
    "sum(v, axis=" * 100_000 + "0" + ")" * 100_000,
    "-(" * 100_000 + "x" + ")" * 100_000,
], ids=["parens", "minus", "minus literal", "plus minus", "power tower", "literal tower", "lists",
        "indexing", "calls", "max calls", "method arguments", "tuples", "keyword values",
        "minus parens"])
def test_100000_deep_nesting_is_a_parse_error_even_without_the_length_limit(text,
                                                                            shaped_variables):
    with pytest.raises(sg.ParseError, match="nests deeper than"):
        sg.parse(text, max_length=10 ** 7)


def test_long_flat_formulas_are_fine_without_the_length_limit():
    e = sg.parse("x + " * 10_000 + "x", max_length=10 ** 6)
    assert sg.compile(e)(0.5) == pytest.approx(5_000.5)


def test_the_length_limit_comes_first_and_can_be_raised():
    with pytest.raises(sg.ParseError, match="limit"):
        sg.parse("x + 1", max_length=3)
    assert sg.parse("x + 1", max_length=5).shape == ()


def test_integer_literals_are_limited_to_300_digits():
    with pytest.raises(sg.ParseError, match="too long"):
        sg.parse("9" * 301 + " * x")
    with pytest.raises(sg.ParseError, match="too long"):
        sg.parse("1" * 5000, max_length=10 ** 6)     # past Python's own int-from-str guard
    assert float(sg.compile(sg.parse("1" + "0" * 299))()) == 1e299


@pytest.mark.parametrize("text", ["1e400 * x", "1" + "0" * 400 + ".0 * x"],
                         ids=["exponent", "digits"])
def test_huge_float_literals_are_refused(text):
    with pytest.raises(sg.ParseError):
        sg.parse(text)


@pytest.mark.parametrize("text", ["[1]", "[x, y] + 1", "max(x, [1])"])
def test_a_list_is_not_a_value(text):
    with pytest.raises(sg.ParseError):
        sg.parse(text)


@pytest.mark.parametrize("text", ["v[]", "v[,]"])
def test_an_empty_subscript_is_refused(text, shaped_variables):
    with pytest.raises(sg.ParseError):
        sg.parse(text)


def test_grammar_errors_are_parse_errors_even_after_a_shape_error():
    with pytest.raises(sg.ParseError):
        sg.parse("x[0](1)")                      # x is a scalar: x[0] fails before '(1)' is read


def test_non_string_input_is_a_parse_error():
    for value in (None, 1.5, b"x + 1", ["x"]):
        with pytest.raises(sg.ParseError):
            sg.parse(value)


def test_shapes_must_name_variables():
    with pytest.raises(sg.SymgradError):
        sg.parse("x", shapes={"not a name": (2,)})


def test_valid_formulas_execute_nothing_either(monkeypatch):
    with nothing_may_run(monkeypatch) as calls:
        e = sg.parse("sum(tanh(W @ v + b)) * max(x, 0) - mean(W.T, axis=0, keepdims=True)[0, 1]",
                     shapes={"W": (2, 3), "v": (3,), "b": (2,)})
    assert calls == []
    assert e.shape == ()


# -- nesting within max_depth ----------------------------------------------------------------------

NESTINGS = {
    "parens": ("(", ")"),
    "unary minus": ("-", ""),
    "power tower": ("2**", ""),
    "calls": ("sin(", ")"),
    "elementwise max": ("maximum(x, ", ")"),
}
def nesting_params():
    return list(NESTINGS)


@pytest.mark.parametrize("kind", nesting_params())
def test_nesting_up_to_max_depth_parses(kind):
    opening, closing = NESTINGS[kind]
    depth = 100                                   # parse()'s default max_depth
    e = sg.parse(opening * depth + "x" + closing * depth)
    assert e.shape == ()


@pytest.mark.parametrize("kind", nesting_params())
def test_nesting_past_max_depth_is_refused_at_a_position(kind):
    opening, closing = NESTINGS[kind]
    depth = 150
    text = opening * depth + "x" + closing * depth
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text, max_depth=120)
    assert info.value.position is not None
    assert "deeper than 120" in str(info.value)


# -- valid formulas mean what NumPy means ----------------------------------------------------------

SHAPES = {"A": (3, 4), "B": (4, 2), "v": (4,), "M": (2, 3, 4), "c": (3,)}


def random_values():
    values = {name: RNG.normal(size=shape) for name, shape in SHAPES.items()}
    values.update({name: float(RNG.uniform(0.5, 2.0)) * RNG.choice([-1, 1])
                   for name in ("x", "y", "z")})
    values["p"] = float(RNG.uniform(0.5, 2.0))      # a positive scalar
    return values


def softmax(a, axis=-1):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def logsumexp(a, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))


FORMULAS = [
    # precedence and associativity
    ("-x**2", lambda d: -(d["x"] ** 2)),
    ("-2**2", lambda d: -4.0),
    ("2**-1", lambda d: 0.5),
    ("p**-x", lambda d: d["p"] ** -d["x"]),
    ("p**2**0.5", lambda d: d["p"] ** (2 ** 0.5)),
    ("(p**2)**0.5", lambda d: (d["p"] ** 2) ** 0.5),
    ("x - y - z", lambda d: d["x"] - d["y"] - d["z"]),
    ("x - (y - z)", lambda d: d["x"] - (d["y"] - d["z"])),
    ("x / y / z", lambda d: d["x"] / d["y"] / d["z"]),
    ("x / y * z", lambda d: d["x"] / d["y"] * d["z"]),
    ("x + y * z", lambda d: d["x"] + d["y"] * d["z"]),
    ("-x * -y", lambda d: d["x"] * d["y"]),
    ("x*-y", lambda d: -d["x"] * d["y"]),
    ("+x", lambda d: d["x"]),
    ("--x", lambda d: d["x"]),
    ("2 * x + 3 < y", lambda d: 2 * d["x"] + 3 < d["y"]),
    ("x <= y", lambda d: d["x"] <= d["y"]),
    ("x >= y", lambda d: d["x"] >= d["y"]),
    ("x > y", lambda d: d["x"] > d["y"]),
    ("x == x", lambda d: True),
    ("x != y", lambda d: d["x"] != d["y"]),
    ("(x < y) * 2 + (x > y)", lambda d: (d["x"] < d["y"]) * 2 + (d["x"] > d["y"])),
    ("v > 0", lambda d: d["v"] > 0),
    # literals and constants
    (".5 * x + 5. + 1e-3 + 2E2", lambda d: 0.5 * d["x"] + 5 + 1e-3 + 200),
    ("pi * x + E", lambda d: math.pi * d["x"] + math.e),
    ("007 + x", lambda d: 7 + d["x"]),
    # functions
    ("sin(x) * cos(y) + tan(z)", lambda d: np.sin(d["x"]) * np.cos(d["y"]) + np.tan(d["z"])),
    ("exp(x) + log(p) + log1p(p) + expm1(x)",
     lambda d: np.exp(d["x"]) + np.log(d["p"]) + np.log1p(d["p"]) + np.expm1(d["x"])),
    ("sqrt(p) + tanh(x) + abs(y) + sign(z)",
     lambda d: np.sqrt(d["p"]) + np.tanh(d["x"]) + abs(d["y"]) + np.sign(d["z"])),
    ("sigmoid(v) + relu(v) + softplus(v)",
     lambda d: 1 / (1 + np.exp(-d["v"])) + np.maximum(d["v"], 0) + np.log1p(np.exp(d["v"]))),
    ("leaky_relu(v, 0.2)", lambda d: np.where(d["v"] > 0, d["v"], 0.2 * d["v"])),
    ("leaky_relu(v, alpha=0.3)", lambda d: np.where(d["v"] > 0, d["v"], 0.3 * d["v"])),
    ("where(v > 0, v, 0.1 * v)", lambda d: np.where(d["v"] > 0, d["v"], 0.1 * d["v"])),
    ("clip(v, -0.5, 0.5)", lambda d: np.clip(d["v"], -0.5, 0.5)),
    ("stop_gradient(x) * y", lambda d: d["x"] * d["y"]),
    ("maximum(x, y) - minimum(A, v)",
     lambda d: np.maximum(d["x"], d["y"]) - np.minimum(d["A"], d["v"])),
    # max and min: two arguments element-wise, one argument a reduction
    ("max(x, y)", lambda d: max(d["x"], d["y"])),
    ("min(x, y)", lambda d: min(d["x"], d["y"])),
    ("max(A, v)", lambda d: np.maximum(d["A"], d["v"])),
    ("min(A, 0)", lambda d: np.minimum(d["A"], 0)),
    ("max(A)", lambda d: np.max(d["A"])),
    ("min(A)", lambda d: np.min(d["A"])),
    ("max(A, axis=0)", lambda d: np.max(d["A"], axis=0)),
    ("max(A, axis=1, keepdims=True)", lambda d: np.max(d["A"], axis=1, keepdims=True)),
    ("min(M, axis=(0, 2))", lambda d: np.min(d["M"], axis=(0, 2))),
    ("max(x)", lambda d: d["x"]),
    # reductions with keyword arguments
    ("sum(A)", lambda d: np.sum(d["A"])),
    ("sum(A, axis=0)", lambda d: np.sum(d["A"], axis=0)),
    ("sum(A, 1)", lambda d: np.sum(d["A"], axis=1)),
    ("sum(A, axis=-1, keepdims=True)", lambda d: np.sum(d["A"], axis=-1, keepdims=True)),
    ("sum(M, axis=(0, 1))", lambda d: np.sum(d["M"], axis=(0, 1))),
    ("mean(M, axis=1, keepdims=True)", lambda d: np.mean(d["M"], axis=1, keepdims=True)),
    ("logsumexp(A, axis=1)", lambda d: logsumexp(d["A"], axis=1)),
    ("logsumexp(A)", lambda d: logsumexp(d["A"])),
    ("softmax(v)", lambda d: softmax(d["v"])),
    ("softmax(A, axis=0)", lambda d: softmax(d["A"], axis=0)),
    ("log_softmax(A, axis=1)", lambda d: np.log(softmax(d["A"], axis=1))),
    # methods and attributes
    ("A.T", lambda d: d["A"].T),
    ("M.T", lambda d: d["M"].T),
    ("A.sum()", lambda d: d["A"].sum()),
    ("A.sum(axis=1)", lambda d: d["A"].sum(axis=1)),
    ("A.mean(0, keepdims=True)", lambda d: d["A"].mean(0, keepdims=True)),
    ("A.max()", lambda d: d["A"].max()),
    ("A.min(axis=1)", lambda d: d["A"].min(axis=1)),
    ("A.reshape(4, 3)", lambda d: d["A"].reshape(4, 3)),
    ("A.reshape((2, 6))", lambda d: d["A"].reshape((2, 6))),
    ("A.reshape(-1)", lambda d: d["A"].reshape(-1)),
    ("A.transpose()", lambda d: d["A"].transpose()),
    ("M.transpose(1, 0, 2)", lambda d: d["M"].transpose(1, 0, 2)),
    ("A.T.sum(axis=0).max()", lambda d: d["A"].T.sum(axis=0).max()),
    # linear algebra and shape functions
    ("A @ B", lambda d: d["A"] @ d["B"]),
    ("A @ v", lambda d: d["A"] @ d["v"]),
    ("v @ v", lambda d: d["v"] @ d["v"]),
    ("c @ A @ B", lambda d: d["c"] @ d["A"] @ d["B"]),
    ("A.T @ c", lambda d: d["A"].T @ d["c"]),
    ("matmul(A, B) + dot(v, v)", lambda d: d["A"] @ d["B"] + d["v"] @ d["v"]),
    ("sum(tanh(A @ v))", lambda d: np.sum(np.tanh(d["A"] @ d["v"]))),
    ("transpose(M, axes=(2, 0, 1))", lambda d: np.transpose(d["M"], (2, 0, 1))),
    ("reshape(A, (6, 2))", lambda d: np.reshape(d["A"], (6, 2))),
    ("concatenate([A, A * 2], axis=0)", lambda d: np.concatenate([d["A"], d["A"] * 2], axis=0)),
    ("concatenate([v, c], axis=0)", lambda d: np.concatenate([d["v"], d["c"]])),
    # indexing and slicing
    ("A[1]", lambda d: d["A"][1]),
    ("A[-1, -2]", lambda d: d["A"][-1, -2]),
    ("A[:, 2]", lambda d: d["A"][:, 2]),
    ("A[1:, ::2]", lambda d: d["A"][1:, ::2]),
    ("A[::-1]", lambda d: d["A"][::-1]),
    ("v[1:3]", lambda d: d["v"][1:3]),
    ("v[:-1] - v[1:]", lambda d: d["v"][:-1] - d["v"][1:]),
    ("A[None]", lambda d: d["A"][None]),
    ("v[:, None] * v[None, :]", lambda d: d["v"][:, None] * d["v"][None, :]),
    ("A[..., 0]", lambda d: d["A"][..., 0]),
    ("M[0, :, 1:3]", lambda d: d["M"][0, :, 1:3]),
    ("M[1][2][3]", lambda d: d["M"][1][2][3]),
    ("A[1, :][2]", lambda d: d["A"][1, :][2]),
    # broadcasting
    ("A + v", lambda d: d["A"] + d["v"]),
    ("M * v - x", lambda d: d["M"] * d["v"] - d["x"]),
    # % is NumPy's remainder (the divisor's sign), at the precedence and associativity of * and /
    ("A % 0.7", lambda d: np.remainder(d["A"], 0.7)),
    ("-x % p", lambda d: np.remainder(-d["x"], d["p"])),
    ("x + y % p", lambda d: d["x"] + np.remainder(d["y"], d["p"])),
    ("x * y % p", lambda d: np.remainder(d["x"] * d["y"], d["p"])),
    ("x % p * y", lambda d: np.remainder(d["x"], d["p"]) * d["y"]),
    ("x ** 2 % p", lambda d: np.remainder(d["x"] ** 2, d["p"])),
    ("x % p % 0.3", lambda d: np.remainder(np.remainder(d["x"], d["p"]), 0.3)),
    # strings, tuples and lists as static arguments
    ('einsum("ij,j->i", A, v)', lambda d: np.einsum("ij,j->i", d["A"], d["v"])),
    ("einsum('bij, bjk -> bik', M, M.transpose(0, 2, 1))",
     lambda d: np.einsum("bij,bjk->bik", d["M"], d["M"].transpose(0, 2, 1))),
    ('einsum("ii", A[:, :3], optimize=True)', lambda d: np.trace(d["A"][:, :3])),
    ('einsum("...j->...", M)', lambda d: np.einsum("...j->...", d["M"])),
    ('pad(v, 2, mode="reflect")', lambda d: np.pad(d["v"], 2, mode="reflect")),
    ("pad(A, [[1, 0], [0, 2]], mode='edge')",
     lambda d: np.pad(d["A"], [[1, 0], [0, 2]], mode="edge")),
    ("pad(A, ((1, 1), (2, 0)), 'wrap')", lambda d: np.pad(d["A"], ((1, 1), (2, 0)), "wrap")),
    ("pad(v, (1, 2), constant_values=0.5)", lambda d: np.pad(d["v"], (1, 2), constant_values=0.5)),
    ('gelu(v, approximate="tanh")',
     lambda d: 0.5 * d["v"] * (1 + np.tanh(np.sqrt(2 / np.pi) * (d["v"] + 0.044715 * d["v"] ** 3)))),
    ("gelu(v)", lambda d: d["v"] * scipy.special.ndtr(d["v"])),
    ('norm(A, ord="fro")', lambda d: np.linalg.norm(d["A"], ord="fro")),
    ("norm(A, ord=inf)", lambda d: np.linalg.norm(d["A"], ord=np.inf)),
    ("norm(M, ord=1, axis=(1, 2), keepdims=True)",
     lambda d: np.linalg.norm(d["M"], ord=1, axis=(1, 2), keepdims=True)),
    ("tensordot(A, A, axes=([0, 1], [0, 1]))",
     lambda d: np.tensordot(d["A"], d["A"], axes=([0, 1], [0, 1]))),
    ("erf(v) + erfc(x)", lambda d: scipy.special.erf(d["v"]) + scipy.special.erfc(d["x"])),
    ("logsumexp(M, axis=(0, 2), keepdims=True)",
     lambda d: scipy.special.logsumexp(d["M"], axis=(0, 2), keepdims=True)),
    ("logsumexp(A, axis=1, b=v[:3, None] ** 2)",
     lambda d: scipy.special.logsumexp(d["A"], axis=1, b=d["v"][:3, None] ** 2)),
    ("std(A, axis=0, ddof=1)", lambda d: np.std(d["A"], axis=0, ddof=1)),
    ("select([v < 0, v > 1], [v, v * v], default=2)",
     lambda d: np.select([d["v"] < 0, d["v"] > 1], [d["v"], d["v"] * d["v"]], default=2)),
    ("array([[x, y], [y, 2]])", lambda d: np.array([[d["x"], d["y"]], [d["y"], 2.0]])),
    ("stack([v, v * 2], axis=1)", lambda d: np.stack([d["v"], d["v"] * 2], axis=1)),
    ("transpose(M, [2, 0, 1])", lambda d: np.transpose(d["M"], [2, 0, 1])),
]


@pytest.mark.parametrize("text,reference", FORMULAS, ids=[t for t, _ in FORMULAS])
def test_formula_values_match_numpy(text, reference):
    e = sg.parse(text, shapes=SHAPES)
    names = list(e.variables)
    fn = sg.compile(e)
    for _ in range(3):
        values = random_values()
        got = np.asarray(fn(*[values[n] for n in names]))
        expected = np.asarray(reference(values))
        assert got.shape == expected.shape == tuple(e.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_comparisons_are_boolean():
    assert sg.parse("x < y").dtype == "bool"
    assert sg.compile(sg.parse("x < y"))(1.0, 2.0).dtype == bool


def test_shapes_argument_sets_variable_shapes():
    e = sg.parse("tanh(W @ v)", shapes={"W": (4, 3), "v": (3,)})
    assert e.shape == (4,)
    assert e.variables["W"].shape == (4, 3)
    # a variable already in the graph keeps its shape when the formula names it again
    assert sg.parse("v * 2").shape == (3,)
    # names not in shapes are scalars
    assert sg.parse("q").shape == ()


def test_symbolic_dimensions_from_shapes():
    e = sg.parse("mean(X @ w, axis=0)", shapes={"X": ("n", 3), "w": (3, 2)})
    assert e.shape == (2,)
    fn = sg.compile(e)
    w = RNG.normal(size=(3, 2))
    for n in (1, 5):
        X = RNG.normal(size=(n, 3))
        np.testing.assert_allclose(fn(X, w), np.mean(X @ w, axis=0), rtol=1e-12)


def test_keyword_and_positional_arguments_agree():
    v = sg.var("A", shape=(3, 4))
    assert sg.parse("sum(A, axis=1)").node == sg.parse("sum(A, 1)").node == v.sum(axis=1).node
    assert sg.parse("A.sum(axis=0, keepdims=True)").node == v.sum(axis=0, keepdims=True).node
    assert sg.parse("leaky_relu(A, alpha=0.1)").node == sg.parse("leaky_relu(A, 0.1)").node
    assert sg.parse("where(condition=A > 0, x=A, y=0)").shape == (3, 4)


@pytest.mark.parametrize("text,message", [
    ("sin()", "missing"),
    ("sin(x, y)", "at most"),
    ("sum(x, foo=1)", "no argument"),
    ("sin(x, x=1)", "twice"),
    ("sum(x, axis=0, axis=0)", "repeated"),
    ("sum(axis=0, x)", "positional argument after a keyword"),
    ("max(x, y, z)", "literal"),
])
def test_bad_arguments_are_parse_errors(text, message):
    with pytest.raises(sg.ParseError, match=message):
        sg.parse(text)


def test_the_formula_is_the_same_expression_as_the_operators_build():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    assert sg.parse("(x + y) * max(y, z)").node == ((x + y) * sg.maximum(y, z)).node
    assert sg.parse("-x**2").node == (-(x ** 2)).node


# -- positions -------------------------------------------------------------------------------------

POSITIONS = [
    ("x + $y", 4),
    ("x ^ 2", 2),
    ("x; y", 1),
    ("x + \u0443", 4),
    ("x\x00", 1),
    ("sin(x) + foo(y)", 9),
    ("x.__class__", 2),
    ("sin(x).real", 7),
    ("0 < x < 1", 6),
    ("x = 1", 2),
    ("(y := 3)", 3),
    ("(x + y", 6),
    ("x + ", 4),
    ("x y", 2),
    ("lambda: 0", 0),
    ("x + __import__", 4),
    ("(x)(y)", 3),
    ("v[1.5]", 2),
    ("'abc' + x", 0),
    ("x +* y", 3),
]


@pytest.mark.parametrize("text,column", POSITIONS, ids=[t for t, _ in POSITIONS])
def test_parse_errors_point_at_the_offending_column(text, column, shaped_variables):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text)
    assert info.value.position == column
    assert f"column {column + 1}" in str(info.value)


def test_short_formulas_get_a_caret_under_the_problem():
    with pytest.raises(sg.ParseError) as info:
        sg.parse("x + $y")
    lines = str(info.value).splitlines()
    assert lines[-2].strip() == "x + $y"
    assert lines[-1].index("^") - lines[-2].index("x") == 4


@pytest.mark.parametrize("text,column", [("sum(x, axis=y)", 12), ("reshape(v, x) + 1", 11)])
def test_non_literal_argument_errors_point_at_the_argument(text, column, shaped_variables):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text)
    assert info.value.position == column


# -- strings ---------------------------------------------------------------------------------------

STRING_POSITIONS = [
    ('"ij" + v', 0, "only allowed as an argument"),
    ("sin('x')", 4, "only allowed as an argument"),
    ("clip(v, 'a', 1)", 8, "only allowed as an argument"),
    ("v['a']", 2, "integer literal"),
    ("-'a'", 1, "only allowed as an argument"),
    ("'a'.sum()", 0, "only allowed as an argument"),
    ("concatenate(['a', v])", 13, "only allowed as an argument"),
    ("einsum('i', v, 'i')", 15, "only allowed as an argument"),
    ("einsum('i\\n', v)", 9, "escapes"),
    ("einsum('i\n', v)", 9, "in a string"),
    ("einsum('i;j', v)", 9, "in a string"),
    ("einsum('{i}', v)", 8, "in a string"),
    ("einsum('i%j', v)", 9, "in a string"),
    ("einsum('i\"', v)", 9, "in a string"),
    ("einsum(\"i'\", v)", 9, "in a string"),
    ("einsum('\u0456', v)", 8, "in a string"),
    ("einsum('i, v)", 12, "in a string"),
    ("einsum(v, 'i", 10, "unterminated"),
    ("einsum(" + "'" * 3 + "i" + "'" * 3 + ", v)", 7, "triple-quoted"),
    ("einsum(r'i', v)", 7, "prefixes"),
    ("f'{x}'", 2, "in a string"),
    ("b'x'", 0, "prefixes"),
    ("einsum('i' 'i', v)", 11, "between arguments"),
    ("einsum('" + "i" * 101 + "', v)", 7, "at most 100"),
]


@pytest.mark.parametrize("text,column,message", STRING_POSITIONS,
                         ids=[t[:40] for t, _, _ in STRING_POSITIONS])
def test_a_string_outside_a_static_argument_or_outside_its_alphabet_is_refused_where_it_stands(
        text, column, message, shaped_variables):
    graph = sg.default_graph()
    before = graph.number_of_nodes()
    with pytest.raises(sg.ParseError, match=message) as info:
        sg.parse(text)
    assert info.value.position == column
    assert graph.number_of_nodes() == before


def test_a_string_of_100_characters_is_one_argument():
    subscripts = "i" + " " * 98 + "i"
    assert sg.parse(f"einsum('{subscripts}', A)", shapes={"A": (3, 3)}).shape == ()


@pytest.mark.parametrize("text,message", [
    ('pad(v, 1, mode="nope")', "mode must be one of"),
    ('gelu(v, approximate="tan")', "approximate must be"),
    ('norm(A, ord="inf")', "invalid order"),
    ('one_hot(v, "3")', "num_classes"),
    ("einsum()", "missing subscripts"),
    ("einsum(A, v)", "must be a literal"),
    ("einsum('ij', A, operands=A)", "no argument 'operands'"),
    ("pad(v, [[1, v]])", "must be a literal"),
])
def test_a_static_string_or_list_is_checked_by_its_function(text, message):
    with pytest.raises(sg.ParseError, match=message):
        sg.parse(text, shapes={"v": (4,), "A": (3, 4)})


def test_strings_and_percent_in_a_formula_execute_nothing(monkeypatch):
    with nothing_may_run(monkeypatch) as calls:
        e = sg.parse("sum(einsum('ij,j->i', W, v) % 2) + norm(W, ord='fro')",
                     shapes={"W": (2, 3), "v": (3,)})
    assert calls == []
    assert e.shape == ()


# -- every public function has a formula form ------------------------------------------------------


class Var(str):
    """A variable's name in CALLS: written as itself in the formula, the variable in the direct
    call."""


A, B, V3, V4, LABELS, MASK = Var("A"), Var("B"), Var("c"), Var("v"), Var("labels"), Var("mask")
SQUARE, CUBE, IMAGES, FILTERS = Var("S"), Var("T"), Var("images"), Var("filters")

# The arguments of the public functions that need more than `v` for each operand and their
# defaults: (positional, keywords). A new public function whose defaults do not fit needs an
# entry here; one that cannot be a formula goes in NOT_FORMULAS.
CALLS = {
    "append": ((A, A), {"axis": 0}),
    "argpartition": ((A, 1), {"axis": 1}),
    "array": (([[Var("x"), Var("y")], [Var("y"), 1.5]],), {}),
    "array_split": ((V4, 3), {}),
    "astype": ((V4, "float32"), {}),
    "average": ((A,), {"axis": 1, "weights": V4}),
    "avg_pool": ((IMAGES, 2), {"stride": 1, "padding": 1}),
    "broadcast_to": ((V4, (3, 4)), {}),
    "cholesky": ((SQUARE,), {"upper": True}),
    "column_stack": (([V4, V4],), {}),
    "concatenate": (([A, A],), {"axis": 1}),
    "conv": ((IMAGES, FILTERS, V3), {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}),
    "cross": ((V3, V3), {}),
    "cumprod": ((A,), {"axis": 1}),
    "cumsum": ((A,), {"axis": -1}),
    "det": ((SQUARE,), {}),
    "eigvalsh": ((SQUARE,), {"UPLO": "U"}),
    "expm": ((SQUARE,), {}),
    "diagonal": ((A,), {"offset": 1}),
    "diff": ((A,), {"n": 2, "axis": 1}),
    "dsplit": ((CUBE, 2), {}),
    "dstack": (([A, A],), {}),
    "einsum": (("ij,jk->ik", A, B), {"optimize": True}),
    "elu": ((V4,), {"alpha": 0.5}),
    "expand_dims": ((V4,), {"axis": (0, 2)}),
    "flip": ((A,), {"axis": 1}),
    "fliplr": ((A,), {}),
    "flipud": ((A,), {}),
    "gelu": ((V4,), {"approximate": "tanh"}),
    "gradient": ((V4, 0.5), {"edge_order": 2}),
    "hsplit": ((A, 2), {}),
    "hstack": (([V4, V3],), {}),
    "inv": ((SQUARE,), {}),
    "iv": ((0.5, V4), {}),
    "ive": ((1.5, V4), {}),
    "jn": ((2, V4), {}),
    "jv": ((0.5, V4), {}),
    "leaky_relu": ((V4,), {"alpha": 0.2}),
    "log_softmax": ((A,), {"axis": 0}),
    "logsumexp": ((A,), {"axis": 1, "keepdims": True, "b": V4}),
    "lstsq": ((A, V3), {}),
    "matmul": ((A, B), {}),
    "matrix_power": ((SQUARE, 3), {}),
    "max": ((A,), {"axis": (0, 1), "keepdims": True}),
    "max_pool": ((IMAGES, (2, 3)), {"stride": 1}),
    "mean": ((A,), {"axis": -1}),
    "min": ((A,), {"axis": 0}),
    "moveaxis": ((A, 0, 1), {}),
    "multi_dot": (([V3, A, B],), {}),
    "multigammaln": ((V4, 3), {}),
    "nan_to_num": ((V4,), {"nan": 1.0, "posinf": 2.0, "neginf": -2.0}),
    "norm": ((A,), {"ord": "fro"}),
    "one_hot": ((LABELS, 5), {}),
    "pad": ((A, [[1, 0], [2, 1]]), {"mode": "reflect"}),
    "partition": ((A, 2), {"axis": 0}),
    "percentile": ((A, 30.0), {"axis": 1, "keepdims": True}),
    "pinv": ((A,), {}),
    "polygamma": ((1, V4), {}),
    "prod": ((A,), {"axis": 0, "keepdims": True}),
    "ptp": ((A,), {"axis": 1}),
    "quantile": ((A, (0.25, 0.5)), {"axis": 0, "method": "linear"}),
    "repeat": ((A, 2), {"axis": 1}),
    "reshape": ((A, (2, 6)), {}),
    "roll": ((A, 1), {"axis": 1}),
    "rollaxis": ((CUBE, 2), {"start": 1}),
    "rot90": ((A,), {"k": 3, "axes": (1, 0)}),
    "round": ((V4,), {"decimals": 2}),
    "select": (([MASK, MASK], [V4, V4]), {"default": 0.5}),
    "slogdet": ((SQUARE,), {}),
    "softmax": ((A,), {"axis": 1}),
    "solve": ((SQUARE, V3), {}),
    "solve_triangular": ((SQUARE, A), {"trans": 1, "lower": True}),
    "split": ((V4, 2), {}),
    "squeeze": ((Var("row"),), {"axis": 0}),
    "stack": (([V4, V4],), {"axis": 1}),
    "std": ((A,), {"axis": 0, "ddof": 1}),
    "sum": ((A,), {"axis": 1, "keepdims": True}),
    "swapaxes": ((A, 0, 1), {}),
    "take": ((A, LABELS), {"axis": 1}),
    "take_along_axis": ((A, Var("rows")), {"axis": 0}),
    "tensordot": ((A, B), {"axes": 1}),
    "tile": ((V4, (2, 1)), {}),
    "trace": ((A,), {"offset": 1}),
    "transpose": ((A, (1, 0)), {}),
    "tril": ((A,), {"k": -1}),
    "triu": ((A,), {"k": 1}),
    "vsplit": ((A, 3), {}),
    "vstack": (([V4, V4],), {}),
    "where": ((MASK, V4, 0.5), {}),
    "yn": ((1, V4), {}),
    "svdvals": ((A,), {}),
    "eigh": ((SQUARE,), {}),
    "svd": ((A,), {"full_matrices": False}),
    "qr": ((A,), {}),
    "compress": ((MASK, V4), {"axis": 0, "length": "k"}),
}

# The public functions that give several expressions (a list or NumPy's tuple), each with what
# it gives: a formula picks one by a constant index, slogdet(A)[1]
NOT_FORMULAS = {
    "split": "gives a list of expressions",
    "array_split": "gives a list of expressions",
    "vsplit": "gives a list of expressions",
    "hsplit": "gives a list of expressions",
    "dsplit": "gives a list of expressions",
    "slogdet": "gives the pair (sign, logabsdet)",
    "lstsq": "gives the tuple (x, residuals, rank, s)",
    "eigh": "gives the pair (eigenvalues, eigenvectors)",
    "svd": "gives the tuple (U, S, Vh)",
    "qr": "gives the pair (Q, R)",
}


def call_variables():
    return {"A": sg.var("A", shape=(3, 4)), "B": sg.var("B", shape=(4, 2)),
            "c": sg.var("c", shape=(3,)), "v": sg.var("v", shape=(4,)),
            "row": sg.var("row", shape=(1, 3)), "x": sg.var("x"), "y": sg.var("y"),
            "S": sg.var("S", shape=(3, 3)), "T": sg.var("T", shape=(2, 3, 4)),
            "images": sg.var("images", shape=(2, 2, 5, 6)),
            "filters": sg.var("filters", shape=(3, 2, 2, 2)),
            "labels": sg.var("labels", shape=(2,), dtype="int64"),
            "rows": sg.var("rows", shape=(2, 4), dtype="int64"),
            "mask": sg.var("mask", shape=(4,), dtype="bool")}


def render(value):
    """An argument as a formula writes it."""
    if isinstance(value, Var):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(render(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)          # numbers, and strings in quotes


def resolved(value, variables):
    if isinstance(value, Var):
        return variables[str(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(resolved(v, variables) for v in value)
    if isinstance(value, dict):
        return {k: resolved(v, variables) for k, v in value.items()}
    return value


def call_of(name):
    if name in CALLS:
        return CALLS[name]
    spec = sg.ops.PUBLIC[name]
    operands = [p for p in spec.parameters if p not in spec.static and p not in spec.optional]
    return tuple(V4 for _ in operands), {}


@pytest.mark.parametrize("name", sorted(sg.ops.PUBLIC))
def test_every_public_function_is_a_formula_that_builds_the_same_node(name):
    if name in NOT_FORMULAS:
        pytest.skip(NOT_FORMULAS[name])
    spec = sg.ops.PUBLIC[name]
    args, kwargs = call_of(name)
    with sg.use_graph():
        variables = call_variables()
        direct = spec.function(*resolved(args, variables), **resolved(kwargs, variables))
        positional = [render(a) for a in args] + [f"{k}={render(v)}" for k, v in kwargs.items()]
        text = f"{name}({', '.join(positional)})"
        assert sg.parse(text).node == direct.node, text
        if spec.variadic is None and not (name in ("max", "min") and len(args) == 2):
            by_name = dict(zip(spec.parameters, args), **kwargs)
            text = f"{name}({', '.join(f'{k}={render(v)}' for k, v in by_name.items())})"
            assert sg.parse(text).node == direct.node, text


def test_a_function_giving_several_expressions_is_indexed_in_a_formula():
    assert set(NOT_FORMULAS) | set(CALLS) <= set(sg.ops.PUBLIC)
    for name in NOT_FORMULAS:
        args, kwargs = call_of(name)
        positional = [render(a) for a in args] + [f"{k}={render(v)}" for k, v in kwargs.items()]
        text = f"{name}({', '.join(positional)})"
        with sg.use_graph():
            variables = call_variables()
            direct = sg.ops.PUBLIC[name].function(*resolved(args, variables),
                                                  **resolved(kwargs, variables))
            for k in range(-len(direct), len(direct)):
                assert sg.parse(f"{text}[{k}]").node == direct[k].node, f"{text}[{k}]"
            # unindexed, or indexed past its end, it is refused saying how to pick one
            with pytest.raises(sg.ParseError, match="not one: pick one with an index"):
                sg.parse(text)
            with pytest.raises(sg.ParseError, match=f"index them with a constant from "
                                                    f"{-len(direct)} to {len(direct) - 1}"):
                sg.parse(f"{text}[{len(direct)}]")
            with pytest.raises(sg.ParseError, match="not one: pick one"):
                sg.parse(f"sin({text})")


# -- SymPy -----------------------------------------------------------------------------------------

X, Y, Z = sympy.symbols("x y z")
SYMPY_EXPRESSIONS = [
    sympy.sin(X) * sympy.exp(Y) - Z ** 3,
    sympy.log(X ** 2 + 1) / (Y ** 2 + 2),
    sympy.sqrt(X ** 2 + Y ** 2) + sympy.Abs(Z),
    sympy.tanh(X * Y) + sympy.cos(Z) ** 2,
    sympy.Max(X, Y) - sympy.Min(Y, Z),
    X ** -2 + 1 / Y,
    sympy.exp(-X ** 2 / 2) * sympy.tan(Y),
    sympy.sign(X) * Z,
    sympy.Rational(3, 4) * X - sympy.pi * Y + sympy.E,
    sympy.Piecewise((X, X > 0), (Y, True)),
    sympy.Abs(X) ** Y,
    sympy.Heaviside(X) * Y,
]


def sample_points(count=5):
    return [tuple(float(v) for v in RNG.uniform(-2, 2, size=3)) for _ in range(count)]


@pytest.mark.parametrize("expression", SYMPY_EXPRESSIONS, ids=[str(e) for e in SYMPY_EXPRESSIONS])
def test_from_sympy_and_back_keep_the_values(expression):
    reference = sympy.lambdify((X, Y, Z), expression, "numpy")
    e = sg.from_sympy(expression)
    inputs = [sg.var(n) for n in ("x", "y", "z")]
    fn = sg.compile(e, inputs=inputs)
    back = sg.to_sympy(e)
    round_trip = sympy.lambdify((X, Y, Z), back, "numpy")
    assert back.free_symbols <= {X, Y, Z}
    for point in sample_points():
        expected = float(reference(*point))
        assert float(fn(*point)) == pytest.approx(expected, rel=1e-10, abs=1e-12)
        assert float(round_trip(*point)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("text", [
    "sigmoid(x) * y", "softplus(x) - relu(y)", "leaky_relu(x, 0.1) + z", "log1p(x**2) + expm1(y)",
    "where(x < y, x, z)", "clip(x, -0.5, 0.5) * y", "abs(x) + sign(y) * maximum(x, z)",
    "stop_gradient(x) * y", "x ** 2 / (1 + y ** 2) - sqrt(1 + z ** 2)",
])
def test_to_sympy_of_parsed_formulas_keeps_the_values(text):
    e = sg.parse(text)
    inputs = [sg.var(n) for n in ("x", "y", "z")]
    fn = sg.compile(e, inputs=inputs)
    converted = sg.to_sympy(e)
    reference = sympy.lambdify((X, Y, Z), converted, "numpy")
    again = sg.compile(sg.from_sympy(converted), inputs=inputs)
    for point in sample_points():
        value = float(fn(*point))
        assert float(reference(*point)) == pytest.approx(value, rel=1e-10, abs=1e-12)
        assert float(again(*point)) == pytest.approx(value, rel=1e-10, abs=1e-12)


def test_from_sympy_symbols_are_the_same_variables():
    x = sg.var("x")
    assert sg.from_sympy(X).node == x.node
    assert sg.from_sympy(sympy.sin(X)).node == sg.sin(x).node


@pytest.mark.parametrize("expression", [
    10**400 * X, -10**400 * X, sympy.Rational(10**400, 3) + X, sympy.Float("1e400") * X,
    X ** (10**400), sympy.Heaviside(X, 10**400)],
    ids=["integer", "negative", "rational", "float", "exponent", "heaviside"])
def test_from_sympy_refuses_a_number_past_float64_as_the_parser_does(expression):
    with pytest.raises(sg.ParseError, match="^number too large") as parsed:
        sg.parse("1e400 * x")
    graph = sg.var("x").graph
    nodes = graph.number_of_nodes()
    with pytest.raises(type(parsed.value), match="^number too large: SymPy's -?[0-9.]+E\\+"):
        sg.from_sympy(expression)
    assert graph.number_of_nodes() == nodes


def test_from_sympy_keeps_large_and_tiny_numbers_that_fit():
    assert sg.from_sympy(10**300 * X).inputs[0].data["value"] == 1e300
    assert sg.from_sympy(sympy.Rational(1, 10**400) * X).inputs[0].data["value"] == 0.0


def test_to_sympy_refuses_tensors_and_from_sympy_refuses_non_sympy():
    with pytest.raises(sg.SymgradError):
        sg.to_sympy(sg.var("v", shape=(3,)) * 2.0)
    with pytest.raises(sg.SymgradError):
        sg.from_sympy("x + 1")
    with pytest.raises(sg.SymgradError):
        sg.from_sympy(sympy.Symbol("__class__"))
    with pytest.raises(sg.SymgradError):
        sg.from_sympy(sympy.I * X)


@pytest.mark.parametrize("text", ["leaky_relu(x, None)",
                                  "concatenate([W, W], axis=None)", "reshape(W, None)",
                                  "transpose(W, 5)", "transpose(W, (1.0, 0.0))"])
def test_literal_arguments_of_the_wrong_kind_are_parse_errors(text):
    with pytest.raises(sg.ParseError) as info:
        sg.parse(text, shapes={"W": (2, 3)})
    assert info.value.position is not None
