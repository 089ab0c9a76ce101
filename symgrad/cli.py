"""The `symgrad` command: print, draw and evaluate derivatives of a formula.

argparse over api only (it never builds or edits a Graph; --order counts the nodes of the one
api built). User mistakes exit with status 2 and one line
on standard error; anything else is a symgrad bug: its traceback is printed, with a request to
report it, and the status is 1.
"""

import argparse
import json
import math
import os
import re
import sys
import traceback

import numpy as np

from . import api
from .errors import SymgradError


# --order's bound: each order differentiates the last derivative again. Where each order is a
# polynomial in a few leaves (tanh, sigmoid, exp(sin x), ...) the graph grows by a few nodes an
# order (optimize/compaction.py); elsewhere it can double with every order, soon past what a
# command line should wait for. The graph is counted as each order is built, and the command
# refuses before an order that would take it past NODE_BUDGET nodes: a swelling function stops
# within a second or two instead of eating memory. MAX_ORDER only bounds the loop itself.
NODE_BUDGET = 50_000
MAX_ORDER = 1_000
# a picture of more nodes than this is hard to read: the command suggests the page to explore
# instead
HTML_HINT_ABOVE = 150


class UsageError(SymgradError):
    """A malformed command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _split_top_level(text):
    """Split on commas outside brackets: "W=[[1,2]],x=3" -> ["W=[[1,2]]", "x=3"]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _assignments(text, option):
    result = {}
    for part in _split_top_level(text):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"{option}: expected NAME=VALUE, got {part!r}")
        api.check_name(name)
        if name in result:
            raise UsageError(f"{option}: {name} given twice")
        result[name] = value.strip()
    return result


def _finite_number(text):
    """A JSON number as a float, refused as the parser refuses it where it overflows float64
    (1e400 would otherwise pass as inf)."""
    number = float(text)
    if math.isinf(number):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise OverflowError(f"number too large: {shown} overflows float64")
    return number


def parse_at(text):
    """--at x=1,W=[[1,2],[3,4]]: numbers and nested lists (read as JSON, never evaluated);
    inf, -inf and nan are accepted as bare values."""
    values = {}
    for name, value in _assignments(text, "--at").items():
        try:
            if re.fullmatch(r"[-+]?(inf|nan)", value):
                parsed = float(value)
            else:
                # JSON's true, false and null would pass as 1, 0 and nan: refuse them
                parsed = json.loads(value, parse_float=_finite_number, parse_int=_finite_number)
                if re.search(r"\b(true|false|null)\b", value):
                    raise ValueError("not a number")
            array = np.asarray(parsed, dtype=np.float64)
        except OverflowError as error:
            raise UsageError(f"--at: the value of {name}: {error}") from None
        except (ValueError, TypeError, RecursionError):     # deep nesting: json recurses
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise UsageError(f"--at: the value of {name} must be a number or a nested list of "
                             f"numbers, got {shown!r}") from None
        values[name] = array
    return values


def parse_shapes(text):
    """--shape W=4x3,v=3,X=nx784, or W=(4,3) (needed for dimension names containing an x);
    '()' or '' is a scalar."""
    shapes = {}
    for name, value in _assignments(text, "--shape").items():
        value = value.replace(" ", "")
        if value.startswith("("):
            parts = [p for p in value.strip("()").split(",") if p]
        else:
            parts = value.split("x") if value else []
            if any(not p for p in parts):
                raise UsageError(f"--shape: cannot read {name}={value}; write dimension names "
                                 f"containing an x as {name}=(xs,3)")
        dims = []
        for part in parts:
            if part.isdigit():
                dims.append(int(part))
            elif part.isidentifier() and part.isascii():
                dims.append(part)
            else:
                raise UsageError(f"--shape: {part!r} in {name} is neither a length nor a name")
        shapes[name] = tuple(dims)
    return shapes


def build_parser():
    parser = _Parser(prog="symgrad", description="Symbol-to-symbol derivatives of a formula: "
                     "print the gradient graph, draw it, emit NumPy code, or evaluate it.")
    parser.add_argument("--version", action="version", version=f"symgrad {api.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in [("grad", "gradient (or derivatives up to --order) of a scalar formula"),
                            ("hessian", "Hessian of a scalar formula")]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("expr", help='the formula, e.g. "(x + y) * max(y, z)"')
        command.add_argument("--wrt", help="variables to differentiate by, comma-separated "
                             "(default: every free variable, sorted)")
        command.add_argument("--at", help="values: x=1,y=2 or W=[[1,2],[3,4]]")
        command.add_argument("--shape", help="shapes of tensor variables: W=4x3,v=3 (inferred "
                             "from --at when given there)")
        command.add_argument("--format", choices=["text", "dot", "code", "json"], default="text")
        command.add_argument("-o", "--output", help="write a picture of the graph (.svg, .png, "
                             ".pdf) or a page to explore it (.html) instead of printing")
        command.add_argument("--explain", action="store_true",
                             help="list every rewrite the optimiser and the stability rules made")
        command.add_argument("--stats", action="store_true",
                             help="node counts per derivative order, before and after optimising")
        if name == "grad":
            command.add_argument("--order", type=int, default=1,
                                 help=f"derivatives of order 1..N (one --wrt variable; N at "
                                 f"most {MAX_ORDER}; refused when the derivatives' graph would "
                                 f"pass {NODE_BUDGET:,} nodes)")
    return parser


def _jsonable(value):
    array = np.asarray(value)
    if array.shape == ():
        number = float(array)
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    return [_jsonable(v) for v in array]


def _request(args):
    """Parse the formula and build the requested derivatives: (value, wrt, outputs, labels)."""
    at = parse_at(args.at) if args.at else None
    shapes = parse_shapes(args.shape) if args.shape else {}
    for name, value in (at or {}).items():
        shapes.setdefault(name, value.shape)
    f = api.parse(args.expr, shapes=shapes)
    free = f.variables
    if args.wrt:
        names = [n.strip() for n in args.wrt.split(",") if n.strip()]
        for name in names:
            api.check_name(name)
        if len(set(names)) != len(names):
            raise UsageError("--wrt lists a variable twice")
        wrt = [free[n] if n in free else api.var(n, shapes.get(n, ())) for n in names]
    else:
        wrt = list(free.values())
    if not wrt:
        raise UsageError("the formula has no variables to differentiate by")
    if f.shape != ():
        raise UsageError(f"the formula must be scalar to differentiate, but its shape is "
                         f"{f.shape}; wrap it in sum(...)")
    return f, wrt, at


def _derivatives(args, f, wrt):
    """Outputs and how to report them, for grad (with --order) and hessian."""
    if args.command == "hessian":
        gradients = api.grad(f, wrt)
        blocks = api.hessian(f, wrt)
        return [f, *gradients, *[b for row in blocks for b in row]], {"grad": gradients,
                                                                      "hessian": blocks}
    if not 1 <= args.order <= MAX_ORDER:
        raise UsageError(f"--order must be from 1 to {MAX_ORDER}, got {args.order}")
    if args.order == 1:
        gradients = api.grad(f, wrt)
        return [f, *gradients], {"grad": gradients}
    if len(wrt) != 1 or wrt[0].shape != ():
        raise UsageError("--order N needs exactly one scalar --wrt variable")
    sizes = [f.graph.number_of_nodes()]
    derivatives = [api.grad(f, wrt[0])]
    sizes.append(f.graph.number_of_nodes())
    for order in range(2, args.order + 1):
        _check_node_budget(args.order, order, sizes)
        # a derivative that has become constant is differentiated to zero, not refused
        derivatives.append(api.grad(derivatives[-1], wrt[0], disconnected="zero"))
        sizes.append(f.graph.number_of_nodes())
    return [f, *derivatives], {"derivatives": derivatives}


def _check_node_budget(requested, order, sizes):
    """Refuse before building ``order`` when the graph (``sizes``: its nodes before the first
    derivative and after each order) would pass NODE_BUDGET: the next order is expected to add
    what the last one did, times the last order's growth (at least 1)."""
    added = [b - a for a, b in zip(sizes, sizes[1:])]
    growth = max(added[-1] / added[-2], 1.0) if len(added) > 1 and added[-2] > 0 else 1.0
    expected = sizes[-1] + added[-1] * growth
    if sizes[-1] > NODE_BUDGET or expected > NODE_BUDGET:
        raise UsageError(
            f"--order {requested}: the derivatives' graph would pass {NODE_BUDGET:,} nodes at "
            f"order {order} (it has {sizes[-1]:,} after order {order - 1} and grew "
            f"{growth:.1f}x with it); ask for order {order - 1} or less")


def _labels(f, wrt, report):
    """What each output of _derivatives is: value, d/dx ..., d2/dx2 ..., d2/dx dy ..."""
    if "derivatives" in report:
        name = wrt[0].name
        return ["value"] + [f"d/d{name}" if k == 1 else f"d{k}/d{name}{k}"
                            for k in range(1, len(report["derivatives"]) + 1)]
    labels = ["value"] + [f"d/d{w.name}" for w in wrt]
    if "hessian" in report:
        labels += [f"d2/d{a.name}2" if a.name == b.name else f"d2/d{a.name} d{b.name}"
                   for a in wrt for b in wrt]
    return labels


def _evaluate(outputs, inputs, at):
    names = [v.name for v in inputs]
    missing = [n for n in names if n not in at]
    if missing:
        raise UsageError(f"--at gives no value for {', '.join(missing)}")
    unused = sorted(set(at) - set(names))
    if unused:
        raise UsageError(f"--at gives a value for {', '.join(unused)}, which the formula does "
                         f"not use")
    function = api.compile(outputs, inputs=inputs)
    with np.errstate(all="ignore"):
        return dict(zip((id(o) for o in outputs), function(*[at[n] for n in names])))


def _json_report(f, wrt, report, values):
    def value_of(e):
        return _jsonable(values[id(e)])
    result = {"value": value_of(f)}
    if "grad" in report:
        result["grad"] = {w.name: value_of(g) for w, g in zip(wrt, report["grad"])}
    if "derivatives" in report:
        result["derivatives"] = [value_of(d) for d in report["derivatives"]]
    if "hessian" in report:
        # from the values: a named dimension's length is known only from --at
        sizes = [np.size(values[id(g)]) for g in report["grad"]]
        rows = [np.hstack([np.asarray(values[id(b)]).reshape(sizes[i], sizes[j])
                           for j, b in enumerate(row)]) for i, row in enumerate(report["hessian"])]
        result["hessian"] = _jsonable(np.vstack(rows))
    return result


def _summary(f, wrt, report, values):
    lines = [f"value = {api.format_value(values[id(f)])}"]
    for w, g in zip(wrt, report.get("grad", [])):
        lines.append(f"d/d{w.name} = {api.format_value(values[id(g)])}")
    for k, d in enumerate(report.get("derivatives", []), start=1):
        lines.append(f"d{k}/d{wrt[0].name}{k} = {api.format_value(values[id(d)])}"
                     if k > 1 else f"d/d{wrt[0].name} = {api.format_value(values[id(d)])}")
    if "hessian" in report:
        for w, row in zip(wrt, report["hessian"]):
            cells = ", ".join(api.format_value(values[id(b)]) for b in row)
            lines.append(f"hessian row {w.name}: {cells}")
    return "\n".join(lines)


def run(argv):
    args = build_parser().parse_args(argv)
    with api.use_graph():
        f, wrt, at = _request(args)
        outputs, report = _derivatives(args, f, wrt)
        inputs = list(f.variables.values())
        inputs += [w for w in wrt if w.name not in f.variables]
        inputs.sort(key=lambda v: v.name)
        if args.explain or args.stats:
            notes = []
            if args.explain:
                notes.append(api.explain_text(api.compile(outputs, inputs=inputs).rewrites))
            if args.stats:
                notes.append(api.stats_text(api.graph_stats(outputs, inputs=inputs)))
            # beside machine-readable output the notes go to standard error
            machine = args.format in ("json", "dot") or args.output
            print("\n\n".join(notes) + ("" if machine else "\n"),
                  file=sys.stderr if machine else sys.stdout)
        labels = _labels(f, wrt, report)
        if args.output:
            drawn = api.draw(outputs, args.output, inputs=inputs, at=at, labels=labels)
            if drawn > HTML_HINT_ABOVE and not args.output.lower().endswith(".html"):
                print(f"symgrad: the graph has {drawn} nodes: -o FILE.html writes a page that "
                      f"pans, zooms, folds and searches them", file=sys.stderr)
            return f"wrote {args.output}"
        if args.format == "dot":
            return api.to_dot(outputs, inputs=inputs, at=at, labels=labels).rstrip("\n")
        if args.format == "code":
            return api.compile(outputs, inputs=inputs, name="f").source.rstrip("\n")
        if args.format == "json":
            if at is None:
                raise UsageError("--format json prints values: give --at")
            return json.dumps(_json_report(f, wrt, report, _evaluate(outputs, inputs, at)))
        text = api.show_graph(outputs, inputs=inputs, at=at, labels=labels)
        if at is not None:
            text += "\n\n" + _summary(f, wrt, report, _evaluate(outputs, inputs, at))
        return text


BUG_STATUS = 1
BUG_REPORT = ("symgrad: internal error: this is a bug in symgrad, not a mistake in the command "
              "line; please report it with the command and the traceback above")


def main(argv=None):
    try:
        output = run(sys.argv[1:] if argv is None else argv)
    except SymgradError as error:
        message = " ".join(str(error).split()) if not isinstance(error, api.ParseError) \
            else _one_line_parse_error(error)
        print(f"symgrad: error: {message}", file=sys.stderr)
        return 2
    except MemoryError as error:
        # a result the machine cannot hold (a dense Hessian over a named dimension bound to a
        # large length is only sized when evaluated): the input asked too much, not a bug
        print(f"symgrad: error: not enough memory: {' '.join(str(error).split())}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symgrad: interrupted", file=sys.stderr)
        return 130
    except Exception:       # noqa: BLE001 (everything that is not a SymgradError is a bug)
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        return BUG_STATUS
    try:
        print(output)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader closed the pipe (head, or a dot that is not installed): end quietly, and
        # keep Python's exit flush from writing to it again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _one_line_parse_error(error):
    where = f" at column {error.position + 1}" if error.position is not None else ""
    return f"{error.reason}{where}"


if __name__ == "__main__":
    sys.exit(main())
