"""Fuzz target for sg.parse: whatever the text, parse returns an Expr or raises ParseError or
ShapeError, never another exception; a failure leaves the graph as it was; and nothing is
executed, imported or opened on the way (the audit guard refuses it).

    python tests/fuzz_parser.py                    # atheris if installed, else hypothesis
    python tests/fuzz_parser.py --runs 200000      # stop after that many inputs
    python tests/fuzz_parser.py --seconds 600      # or after that long
    python tests/fuzz_parser.py --hypothesis --runs 100000    # hypothesis even with atheris

atheris (pip install atheris) is coverage-guided: it mutates bytes, which ``text_of`` turns into
arbitrary text or into a sequence of grammar tokens. A crash stops it, prints the traceback and
saves the input as ./crash-<hash>; replay it with ``python tests/fuzz_parser.py crash-<hash>``.
Without atheris the same oracle runs under hypothesis with the two strategies below, which
tests/test_parser_fuzz.py also runs, briefly, as part of the test suite.
"""

import argparse
import os
import sys

from audit_guard import guarded         # tests/ is on sys.path: run as a script or by pytest

# symgrad is imported inside the functions that use it, so that atheris can instrument it on import

SHAPES = {"v": (3,), "W": (2, 3), "A": (3, 4), "M": (2, 3, 4), "X": ("n", 3)}


def fresh_graph():
    import symgrad as sg
    graph = sg.Graph()
    for name, shape in SHAPES.items():
        sg.var(name, shape=shape, graph=graph)
    return graph


def state(graph):
    return (graph.number_of_nodes(), graph.number_of_edges(), dict(graph.variables))


def check(text, graph=None):
    """The oracle. Returns "ok", "parse" or "shape" for how sg.parse ended; raises AssertionError
    (or lets the unexpected exception through) for anything else."""
    import symgrad as sg
    graph = fresh_graph() if graph is None else graph
    before = state(graph)
    with guarded() as events:
        try:
            result = sg.parse(text, graph=graph)
        except sg.ParseError as error:
            outcome = "parse"
            assert error.position is None or 0 <= error.position <= len(text), error.position
        except sg.ShapeError:
            outcome = "shape"
        else:
            outcome = "ok"
            assert isinstance(result, sg.Expr) and result.graph is graph
    assert events == [], f"{text!r} raised audit events {events}"
    if outcome == "ok":
        str(result)                             # printing any parsed expression works
    else:
        assert state(graph) == before, f"{text!r} changed the graph although it failed"
    return outcome


# -- inputs --------------------------------------------------------------------------------------

NAMES = ["x", "y", "z", "v", "W", "A", "M", "X", "p", "T", "sum", "n", "pi", "E", "inf", "nan"]
NUMBERS = ["0", "1", "2", "3", "-1", "0.5", "1e-3", "2E2", ".5", "5.", "007", "1e308", "1e-400",
           "9" * 300, "1e400", "9" * 301, "1" + "0" * 310 + ".0"]
STATIC = ["None", "True", "False", "0", "1", "-1", "2", "(0, 1)", "(1, 0)", "(-1,)", "(0,)",
          "(2, 6)", "(3, -1)", "()", "0.5"]
UNARY = ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sigmoid", "relu",
         "softplus", "sign", "abs", "stop_gradient"]
BINARY_FUNCTIONS = ["maximum", "minimum", "max", "min", "matmul", "dot"]
REDUCTIONS = ["sum", "mean", "max", "min", "logsumexp"]
OPERATORS = ["+", "-", "*", "/", "%", "@", "**", "<", "<=", ">", ">=", "==", "!="]
# Strings are static arguments: einsum's subscripts, pad's mode, gelu's approximate, norm's ord;
# some valid, some not, some outside the string alphabet or badly quoted.
STRINGS = ["'ij,j->i'", '"ij,jk->ik"', "'i,i'", "'...i->...'", "'ii'", "'ij->ji'", "'i j'",
           "'reflect'", '"edge"', "'wrap'", "'constant'", "'tanh'", "'none'", "'fro'", "'nuc'",
           "''", '""', "'x'", "'i->'", "'->'", "'a-b'", "'.'", "'n'", "'__class__'",
           "'\\x5f'", "'%s'", "'{x}'", "'" * 3, "'i\"", "r'i'", "b'x'", "'" + "i" * 101 + "'"]
# Everything the tokenizer knows, and some of what it refuses.
TOKENS = (NAMES + NUMBERS + UNARY + BINARY_FUNCTIONS + OPERATORS
          + ["(", ")", "[", "]", ",", ":", ".", "...", "=", " ", "\n", "axis", "keepdims",
             "alpha", "T", "reshape", "transpose", "concatenate", "where", "clip", "leaky_relu",
             "softmax", "log_softmax", "None", "True", "False", "lambda", "__class__", ":=", ";",
             "'", "#", "\\", "\x00", "\u202e", "\uff58", "\u0663", "{", "}", "^", "%", "$", "1j",
             "0x1", "_", "__import__", '"', "einsum", "pad", "gelu", "norm", "mode", "ord",
             "approximate", "erf", "remainder"] + STRINGS)


def text_of(data):
    """Text from fuzzer bytes: the first byte picks raw text or a token sequence."""
    if not data:
        return ""
    if data[0] % 2:
        return data[1:].decode("utf-8", errors="replace")
    return "".join(TOKENS[b % len(TOKENS)] for b in data[1:])


def strategies():
    """(arbitrary text, grammar-shaped text with mutations, grammar-shaped text unmutated)."""
    from hypothesis import strategies as st

    formula_chars = st.sampled_from(list("xyvWAMX()[]{},.:;=+-*/@<>!%^&|~#'\"\\ \t\n0123456789eE_"
                                         "ij->"))
    any_text = st.one_of(st.text(max_size=60), st.text(formula_chars, max_size=60),
                         st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))

    # a quoted string of characters from inside and outside the string alphabet
    quoted = st.tuples(st.sampled_from(["'", '"']),
                       st.text(st.sampled_from(list("ijkn.,->_ fro'\"\\%{}\n\u0456")),
                               max_size=12)).map(lambda t: f"{t[0]}{t[1]}{t[0]}")
    strings = st.one_of(st.sampled_from(STRINGS), quoted)

    def combine(children):
        static = st.one_of(st.sampled_from(STATIC), strings)
        return st.one_of(
            st.tuples(st.sampled_from(["-", "+"]), children).map(lambda t: f"{t[0]}{t[1]}"),
            st.tuples(children, st.sampled_from(OPERATORS), children).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(BINARY_FUNCTIONS), children, children).map(
                lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.tuples(st.sampled_from(REDUCTIONS), children, static, static).map(
                lambda t: f"{t[0]}({t[1]}, axis={t[2]}, keepdims={t[3]})"),
            st.tuples(st.sampled_from(["softmax", "log_softmax"]), children, static).map(
                lambda t: f"{t[0]}({t[1]}, axis={t[2]})"),
            st.tuples(children, static).map(lambda t: f"leaky_relu({t[0]}, alpha={t[1]})"),
            st.tuples(children, children, children).map(lambda t: f"where({t[0]}, {t[1]}, {t[2]})"),
            st.tuples(children, static, static).map(lambda t: f"clip({t[0]}, {t[1]}, {t[2]})"),
            st.tuples(children, static).map(lambda t: f"reshape({t[0]}, {t[1]})"),
            st.tuples(children, static).map(lambda t: f"transpose({t[0]}, {t[1]})"),
            st.tuples(children, children, static).map(
                lambda t: f"concatenate([{t[0]}, {t[1]}], axis={t[2]})"),
            st.tuples(strings, st.lists(children, min_size=1, max_size=3)).map(
                lambda t: f"einsum({t[0]}, {', '.join(t[1])})"),
            st.tuples(children, static, strings).map(
                lambda t: f"pad({t[0]}, {t[1]}, mode={t[2]})"),
            st.tuples(children, strings).map(lambda t: f"gelu({t[0]}, approximate={t[1]})"),
            st.tuples(children, strings, static).map(
                lambda t: f"norm({t[0]}, ord={t[1]}, axis={t[2]})"),
            st.tuples(children, st.sampled_from(["[[1, 0], [0, 1]]", "[1, 2]", "[[1, 2]]", "[]",
                                                 "[[1, 0], [2, 1], [0, 0]]"]), strings).map(
                lambda t: f"pad({t[0]}, {t[1]}, {t[2]})"),
            st.tuples(children, st.sampled_from([".T", ".sum()", ".mean(axis=0)", ".max()",
                                                 ".min(keepdims=True)", ".reshape(-1)",
                                                 ".transpose()", ".reshape(3, 4)"])).map(
                lambda t: f"({t[0]}){t[1]}"),
            st.tuples(children, st.lists(st.sampled_from(
                ["0", "1", "-1", ":", "1:", ":2", "::-1", "None", "...", "0:2:1"]),
                min_size=1, max_size=3)).map(lambda t: f"({t[0]})[{', '.join(t[1])}]"),
        )

    atoms = st.one_of(st.sampled_from(NAMES), st.sampled_from(NUMBERS), strings,
                      st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True))
    grammar = st.recursive(atoms, combine, max_leaves=12)

    @st.composite
    def mutated(draw):
        text = draw(grammar)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
            piece = draw(st.one_of(st.sampled_from(TOKENS), st.characters()))
            if kind == "insert":
                text = text[:at] + piece + text[at:]
            elif kind == "delete":
                text = text[:at] + text[at + draw(st.integers(1, 5)):]
            elif kind == "replace":
                text = text[:at] + piece + text[at + 1:]
            else:
                text = text[:at] + text[at:at + draw(st.integers(1, 10))] * 2 + text[at + 10:]
        return text

    return any_text, mutated(), grammar


# -- running it ----------------------------------------------------------------------------------


def run_atheris(runs, seconds, extra):
    import atheris

    def one_input(data):
        check(text_of(data))

    argv = [sys.argv[0], *extra]
    if runs:
        argv.append(f"-runs={runs}")
    if seconds:
        argv.append(f"-max_total_time={seconds}")
    argv.append("-max_len=4096")
    with atheris.instrument_imports(include=["symgrad"]):     # coverage feedback from symgrad
        import symgrad  # noqa: F401
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def run_hypothesis(runs, seconds):
    import time

    from hypothesis import HealthCheck, given, settings

    any_text, mutated, grammar = strategies()
    outcomes = {}
    deadline = time.monotonic() + seconds if seconds else None
    per_strategy = max(1, (runs or 10_000) // 3)
    for label, strategy in [("arbitrary text", any_text), ("mutated formulas", mutated),
                            ("formulas", grammar)]:
        counts = outcomes.setdefault(label, {"ok": 0, "parse": 0, "shape": 0})

        @settings(max_examples=per_strategy, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def fuzz(text):
            if deadline is not None and time.monotonic() > deadline:
                return
            counts[check(text)] += 1

        fuzz()
    total = sum(sum(c.values()) for c in outcomes.values())
    print(f"hypothesis: {total} inputs, no failure; outcomes {outcomes}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="stop after this many inputs")
    parser.add_argument("--seconds", type=int, default=0, help="stop after this many seconds")
    parser.add_argument("--hypothesis", action="store_true", help="use hypothesis even if "
                                                                  "atheris is installed")
    args, extra = parser.parse_known_args()
    files = [a for a in extra if os.path.isfile(a)]
    if files:                                   # replay saved inputs, atheris's crash files
        for path in files:
            with open(path, "rb") as f:
                print(path, check(text_of(f.read())))
        return
    try:
        import atheris  # noqa: F401
    except ImportError:
        args.hypothesis = True
    if args.hypothesis:
        run_hypothesis(args.runs, args.seconds)
    else:
        run_atheris(args.runs, args.seconds, extra)


if __name__ == "__main__":
    main()
