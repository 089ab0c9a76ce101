"""Formula text and SymPy expressions -> graph nodes, through a whitelisted grammar of our own.

The text is tokenized and parsed here, never handed to eval, exec, ast, sympify or parse_expr:
only the names, functions and literals listed below can come out of it. Imports ops and errors.
"""

import contextlib
import keyword
import math
import numbers
import re
import sys
import threading

import numpy as np

from . import ops
from .errors import ArgumentError, ParseError, ShapeError, SymgradError
from .graph import default_graph
from .ops import Expr, check_name, check_shape, const

MAX_LENGTH = 100_000
MAX_DEPTH = 100
MAX_DEPTH_CEILING = 500     # deeper recursive descent would risk the C stack
FRAMES_PER_LEVEL = 12

# -- tokens ------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|<=|>=|==|!=|\.\.\.|[-+*/%@()\[\],:.=<>])
  | (?P<space>[ \t\r\n]+)
""", re.VERBOSE | re.ASCII)     # ASCII: \d would otherwise read '３' or '٣' as the digit 3

# A string is a static argument (einsum's subscripts, pad's mode, norm's ord): letters, digits and
# the punctuation of einsum subscripts only, so that nothing in it can be an escape, a format
# field or a second quote; the function that takes it checks its value.
MAX_STRING_LENGTH = 100
_STRING_BODY = re.compile(r"[A-Za-z0-9_,.>\- ]*", re.ASCII)
QUOTES = ("'", '"')

_HINTS = {"^": "use ** for powers",
          ";": "only one expression is allowed", "{": "braces are not allowed",
          "}": "braces are not allowed", "!": "use != for inequality",
          "&": "bitwise operators are not allowed", "|": "bitwise operators are not allowed",
          "~": "bitwise operators are not allowed",
          "#": "comments are not allowed", "\\": "backslashes are not allowed",
          "$": "unexpected character", "`": "unexpected character", "?": "unexpected character"}


def tokenize(text):
    """(kind, text, position) triples ending with ("end", "", len(text)); a string's text is its
    content, without the quotes."""
    tokens = []
    position = 0
    while position < len(text):
        if text[position] in QUOTES:
            content, end = _string(text, position)
            if tokens and tokens[-1][0] == "name" and \
                    tokens[-1][2] + len(tokens[-1][1]) == position:
                raise ParseError("string prefixes (b, f, r, u) are not allowed", text,
                                 tokens[-1][2])
            tokens.append(("string", content, position))
            position = end
            continue
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            char = text[position]
            if char in _HINTS:
                raise ParseError(f"unexpected {char!r}: {_HINTS[char]}", text, position)
            raise ParseError(f"unexpected character {char!r} (U+{ord(char):04X}); formulas use "
                             f"ASCII names, numbers and operators", text, position)
        kind = match.lastgroup
        if kind == "op" and match.group() == ":" and text.startswith(":=", position):
            raise ParseError("assignment expressions (:=) are not allowed", text, position)
        if kind != "space":
            tokens.append((kind, match.group(), position))
        position = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


def _string(text, start):
    """The content of the string literal opening at ``start``, and the position after it."""
    quote = text[start]
    if text.startswith(quote * 3, start):
        raise ParseError("triple-quoted strings are not allowed", text, start)
    body = _STRING_BODY.match(text, start + 1)
    end = body.end()
    if end == len(text):
        raise ParseError("unterminated string", text, start)
    char = text[end]
    if char != quote:
        reason = ("escapes are not allowed in strings" if char == "\\" else
                  "a string holds letters, digits, spaces and the characters _ , . - > only")
        raise ParseError(f"unexpected {char!r} in a string: {reason}", text, end)
    if end - start - 1 > MAX_STRING_LENGTH:
        raise ParseError(f"a string may have at most {MAX_STRING_LENGTH} characters", text, start)
    return body.group(), end + 1


# -- values the parser passes around: expressions, or literals still usable as axes and indices -------


class ListLiteral:
    """``[a, b, ...]``: only the list argument of concatenate, stack and their kin may be one
    (a parameter of LIST_PARAMETERS)."""

    __slots__ = ("items", "position")

    def __init__(self, items, position):
        self.items = items
        self.position = position


class Literal:
    """A literal number, string, tuple, list of literals, None or bool, kept as such until it
    meets an expression. A string may only be a static argument."""

    __slots__ = ("value", "position")

    def __init__(self, value, position):
        self.value = value
        self.position = position


_CONSTANTS = {"pi": math.pi, "E": math.e, "inf": math.inf, "nan": math.nan}
_STATIC = {"None": None, "True": True, "False": False}


# The functions a formula may call are the public ones, ops.PUBLIC, read at each call so that an
# op defined later is callable too. max/min with two operands are element-wise (as the contract
# says), with one the public reduction.
_EXTREMA = {"max": ops.maximum, "min": ops.minimum}
_METHODS = ("sum", "mean", "max", "min", "reshape", "transpose")
# the parameters, by NumPy's names, of the public functions that take a list of expressions
# (concatenate's parts, stack's arrays, vstack's tup, array's object, select's condlist and
# choicelist); array's may nest
LIST_PARAMETERS = ("parts", "arrays", "tup", "object", "condlist", "choicelist")


def function_names():
    """The names of the functions formulas may call, sorted."""
    return tuple(sorted(ops.PUBLIC))


class _Unbuilt:
    """What a value is while the grammar alone is being checked, before anything is built."""


class _Pieces:
    """The expressions a function gives as a tuple or list (slogdet, eigh, svd, qr, lstsq,
    split): a formula picks one with a constant index, ``slogdet(A)[1]``."""

    def __init__(self, items, name, position):
        self.items, self.name, self.position = items, name, position


class _Parser:
    """Recursive descent over the token list, its depth bounded by ``max_depth``.

    expression := additive [comparison additive]
    additive   := term (('+' | '-') term)*
    term       := unary (('*' | '/' | '%' | '@') unary)*
    unary      := ('-' | '+') unary | power
    power      := postfix ['**' unary]
    postfix    := atom ('[' subscripts ']' | '.' NAME ['(' arguments ')'])*
    atom       := NUMBER | STRING | NAME | NAME '(' arguments ')' | '(' expression [',' ...] ')'
                | '[' list ']'

    A string, a tuple and a list of literals are static arguments of a function only.
    """

    def __init__(self, text, graph, shapes, max_depth, check_only=False):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.graph = graph
        self.shapes = shapes
        self.max_depth = max_depth
        self.depth = 0
        self.positions = {}
        self.check_only = check_only

    # token helpers
    def peek(self, offset=0):
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self):
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, text):
        if self.peek()[1] == text and self.peek()[0] != "end":
            return self.next()
        return None

    def expect(self, text, context):
        token = self.peek()
        if token[1] != text or token[0] == "end":
            found = "the end of the formula" if token[0] == "end" else repr(token[1])
            raise self.error(f"expected {text!r} {context}, found {found}", token[2])
        return self.next()

    def error(self, message, position):
        return ParseError(message, self.text, position)

    def enter(self, position):
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.error(f"the formula nests deeper than {self.max_depth} levels", position)

    def leave(self):
        self.depth -= 1

    # building
    def expr(self, value):
        """An Expr for a parsed value: literals become constants, nothing else is accepted."""
        if isinstance(value, (Expr, _Unbuilt)):
            return value
        if isinstance(value, _Pieces):
            raise self.error(f"{value.name}() gives {len(value.items)} expressions, not one: pick "
                             f"one with an index, as {value.name}(...)[0]", value.position)
        if isinstance(value, ListLiteral):
            raise self.error("a list is only allowed as the list argument of concatenate, "
                             "stack and their kin", value.position)
        if isinstance(value.value, str):
            raise self.error("a string is only allowed as an argument that a function takes as "
                             "a string, such as einsum's subscripts or pad's mode", value.position)
        if isinstance(value.value, bool) or value.value is None or isinstance(value.value, tuple):
            raise self.error(f"{value.value!r} cannot be used as a value here", value.position)
        try:
            number = float(value.value)
        except OverflowError:
            raise self.error("number too large", value.position) from None
        return _Unbuilt() if self.check_only else const(number, self.graph)

    def build(self, position, function, *args, **kwargs):
        """Call an op function, tying any shape or usage error to the formula position."""
        if self.check_only:
            return _Unbuilt()
        try:
            return function(*args, **kwargs)
        except ParseError:
            raise
        except ArgumentError as error:
            # a literal argument of the wrong kind, such as transpose(x, 5)
            raise self.error(f"invalid argument: {error}", position) from None
        except SymgradError as error:
            located = f"{error} (at column {position + 1} of {self._excerpt()})"
            raise type(error)(located) from None
        except (TypeError, ValueError) as error:
            # arguments Python itself refuses, such as an unknown keyword: sum(x, axes=1)
            raise self.error(f"invalid argument: {error}", position) from None

    def _excerpt(self):
        return repr(self.text if len(self.text) <= 60 else self.text[:57] + "...")

    # grammar
    def parse(self):
        if self.peek()[0] == "end":
            raise self.error("empty formula", 0)
        value = self.expression()
        token = self.peek()
        if token[0] != "end":
            raise self.error(f"unexpected {token[1]!r} after a complete expression", token[2])
        return self.expr(value)

    _COMPARISONS = {"<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
                    "==": "equal", "!=": "not_equal"}

    def expression(self):
        left = self.additive()
        token = self.peek()
        if token[0] == "op" and token[1] in self._COMPARISONS:
            self.next()
            right = self.additive()
            after = self.peek()
            if after[0] == "op" and after[1] in self._COMPARISONS:
                raise self.error("chained comparisons are not allowed; use where()", after[2])
            return self.build(token[2], ops.apply, self._COMPARISONS[token[1]],
                              self.expr(left), self.expr(right))
        if token[0] == "op" and token[1] == "=":
            raise self.error("assignment is not allowed (use == to compare)", token[2])
        return left

    def additive(self):
        left = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            _, symbol, position = self.next()
            right = self.term()
            name = "add" if symbol == "+" else "subtract"
            left = self.build(position, ops.apply, name, self.expr(left), self.expr(right))
        return left

    def term(self):
        left = self.unary()
        while self.peek()[1] in ("*", "/", "%", "@") and self.peek()[0] == "op":
            _, symbol, position = self.next()
            right = self.unary()
            name = {"*": "multiply", "/": "divide", "%": "remainder", "@": "matmul"}[symbol]
            left = self.build(position, ops.apply, name, self.expr(left), self.expr(right))
        return left

    def unary(self):
        token = self.peek()
        if token[0] == "op" and token[1] in ("-", "+"):
            self.next()
            self.enter(token[2])
            operand = self.unary()
            self.leave()
            if token[1] == "+":
                return operand
            if isinstance(operand, Literal) and isinstance(operand.value, numbers.Number) \
                    and not isinstance(operand.value, bool):
                return Literal(-operand.value, token[2])
            return self.build(token[2], ops.negative, self.expr(operand))
        return self.power()

    def power(self):
        base = self.postfix()
        token = self.peek()
        if token[0] == "op" and token[1] == "**":
            self.next()
            self.enter(token[2])
            exponent = self.unary()
            self.leave()
            return self.build(token[2], ops.power, self.expr(base), self.expr(exponent))
        return base

    def postfix(self):
        value = self.atom()
        while True:
            token = self.peek()
            if token[1] == "[" and token[0] == "op":
                self.next()
                self.enter(token[2])
                index = self.subscripts()
                self.expect("]", "to close the index")
                self.leave()
                if isinstance(value, _Pieces):
                    value = self.piece(value, index, token[2])
                else:
                    value = self.build(token[2], ops.getitem, self.expr(value), index)
            elif token[1] == "." and token[0] == "op":
                self.next()
                name_token = self.next()
                if name_token[0] != "name":
                    raise self.error("expected an attribute name after '.'", name_token[2])
                value = self.attribute(self.expr(value), name_token)
            elif token[1] == "(" and token[0] == "op":
                raise self.error("only named functions can be called", token[2])
            else:
                return value

    def piece(self, pieces, index, position):
        """The expression at ``index`` (a constant int) of what a function gave as a tuple."""
        count = len(pieces.items)
        if not isinstance(index, int) or not -count <= index < count:
            raise self.error(f"{pieces.name}() gives {count} expressions: index them with a "
                             f"constant from {-count} to {count - 1}", position)
        return pieces.items[index]

    def attribute(self, value, token):
        _, name, position = token
        if name == "T":
            return self.build(position, lambda e: e.T, value)
        if name not in _METHODS:
            raise self.error(f"attribute {name!r} is not allowed; the allowed ones are .T and "
                             f"{', '.join('.' + m + '()' for m in _METHODS)}", position)
        self.expect("(", f"after .{name}")
        self.enter(position)
        args, kwargs = self.arguments()
        self.leave()
        static = [self.static(a) for a in args]
        static_kwargs = {k: self.static(v) for k, v in kwargs.items()}
        if name in ("reshape", "transpose") and len(static) > 1:
            static = [tuple(static)]
        return self.build(position, lambda e, *a, **k: getattr(e, name)(*a, **k), value,
                          *static, **static_kwargs)

    def subscripts(self):
        items = []
        while True:
            items.append(self.subscript())
            if not self.accept(","):
                break
            if self.peek()[1] == "]":
                break
        return items[0] if len(items) == 1 else tuple(items)

    def subscript(self):
        token = self.peek()
        if token[1] in ("]", ",") and token[0] == "op":
            raise self.error("empty index", token[2])
        if token[1] == "..." and token[0] == "op":
            self.next()
            return Ellipsis
        parts = []
        current = None
        while True:
            token = self.peek()
            if token[1] == ":" and token[0] == "op":
                self.next()
                parts.append(current)
                current = None
                continue
            if token[1] in (",", "]") and token[0] == "op":
                break
            if current is not None:
                raise self.error(f"unexpected {token[1]!r} in an index", token[2])
            current = self.static_int_or_none(self.expression(), "index")
        parts.append(current)
        if len(parts) == 1:
            if current is None and token[1] != "]" and token[1] != ",":
                raise self.error("empty index", token[2])
            return current
        if len(parts) > 3:
            raise self.error("a slice has at most three parts", token[2])
        return slice(*parts)

    def static_int_or_none(self, value, what):
        if isinstance(value, Literal) and (value.value is None or (
                isinstance(value.value, int) and not isinstance(value.value, bool))):
            return value.value
        position = value.position if isinstance(value, Literal) else self.peek()[2]
        raise self.error(f"an {what} must be an integer literal or None", position)

    def static(self, value):
        """The Python value of a literal argument (axis, keepdims, alpha, shape, mode...); a list
        of literals is a list (pad widths, tensordot's axes)."""
        if isinstance(value, Literal):
            return value.value
        if isinstance(value, ListLiteral):
            return [self.static(item) for item in value.items]
        raise self.error("this argument must be a literal (a number, a string, a tuple or list "
                         "of them, None, True or False)",
                         self.positions.get(id(value), self.peek()[2]))

    def argument(self):
        """One argument, its start remembered so that a complaint about it points there."""
        position = self.peek()[2]
        value = self.expression()
        self.positions[id(value)] = position
        return value

    def arguments(self):
        """Arguments up to the closing ')': positional values, then name=literal keywords."""
        args, kwargs = [], {}
        if self.accept(")"):
            return args, kwargs
        while True:
            token, after = self.peek(), self.peek(1)
            if token[0] == "name" and after[1] == "=" and after[0] == "op":
                self.next()
                self.next()
                if token[1] in kwargs:
                    raise self.error(f"keyword {token[1]!r} repeated", token[2])
                kwargs[token[1]] = self.argument()
            else:
                if kwargs:
                    raise self.error("positional argument after a keyword argument", token[2])
                args.append(self.argument())
            if self.accept(")"):
                return args, kwargs
            self.expect(",", "between arguments")
            if self.accept(")"):
                return args, kwargs

    def expressions(self, value):
        """The (nested) list of expressions a list literal stands for (array's object)."""
        return [self.expressions(item) if isinstance(item, ListLiteral) else self.expr(item)
                for item in value.items]

    def atom(self):
        kind, text, position = token = self.next()
        if kind == "number":
            return self.number(text, position)
        if kind == "string":
            return Literal(text, position)
        if kind == "name":
            return self.name(token)
        if text == "(":
            self.enter(position)
            value = self.expression()
            if self.accept(","):
                items = [value]
                while self.peek()[1] != ")":
                    items.append(self.expression())
                    if not self.accept(","):
                        break
                self.expect(")", "to close the tuple")
                self.leave()
                return Literal(tuple(self.static(i) for i in items), position)
            self.expect(")", "to close the parenthesis")
            self.leave()
            return value
        if text == "[":
            self.enter(position)
            items = []
            while self.peek()[1] != "]":
                items.append(self.expression())
                if not self.accept(","):
                    break
            self.expect("]", "to close the list")
            self.leave()
            return ListLiteral(items, position)
        if kind == "end":
            raise self.error("the formula ends too early", position)
        raise self.error(f"unexpected {text!r}", position)

    def number(self, text, position):
        if re.fullmatch(r"[0-9]+", text):
            if len(text) > 300:
                raise self.error("integer literal too long", position)
            return Literal(int(text), position)
        value = float(text)
        if math.isinf(value):
            raise self.error("number too large", position)
        return Literal(value, position)

    def name(self, token):
        _, name, position = token
        if keyword.iskeyword(name) and name not in _STATIC:
            raise self.error(f"the keyword {name!r} is not allowed", position)
        if name.startswith("__"):
            raise self.error(f"names starting with '__' are not allowed ({name!r})", position)
        if self.peek()[1] == "(" and self.peek()[0] == "op":
            return self.call(token)
        if name in _STATIC:
            return Literal(_STATIC[name], position)
        if name in _CONSTANTS:
            return Literal(_CONSTANTS[name], position)
        return self.variable(name, position)

    def variable(self, name, position):
        if self.check_only:
            return _Unbuilt()
        existing = self.graph.variables.get(name)
        if name in self.shapes:
            shape = self.shapes[name]
        elif existing is not None:
            shape = self.graph.nodes[existing]["shape"]
        else:
            shape = ()
        # a variable of the graph keeps its dtype: labels declared int64 can index in a formula
        dtype = self.graph.nodes[existing]["dtype"] if existing is not None else "float64"
        try:
            return Expr(self.graph, self.graph.variable(name, check_shape(shape), dtype))
        except ShapeError as error:
            raise ShapeError(f"{error} (at column {position + 1})") from None

    def call(self, token):
        _, name, position = token
        self.next()
        self.enter(position)
        args, kwargs = self.arguments()
        self.leave()
        if name in _EXTREMA and len(args) == 2 and not kwargs:
            return self.build(position, _EXTREMA[name], self.expr(args[0]), self.expr(args[1]))
        spec = ops.PUBLIC.get(name)
        if spec is None:
            raise self.error(f"unknown function {name!r}; known functions: "
                             f"{', '.join(function_names())}", position)
        parameters, static = spec.parameters, spec.static
        # parameters after a variadic one (einsum's optimize after *operands) are keyword-only
        positional = (parameters if spec.variadic is None
                      else parameters[:parameters.index(spec.variadic) + 1])
        if len(args) > len(positional) and spec.variadic is None:
            raise self.error(f"{name}() takes at most {len(parameters)} arguments "
                             f"({', '.join(parameters)}), got {len(args)}", position)
        bound = dict(zip(positional, args))
        if spec.variadic is not None:
            bound[spec.variadic] = args[len(positional) - 1:]
        for key, value in kwargs.items():
            if key not in parameters or key == spec.variadic:
                raise self.error(f"{name}() has no argument {key!r}", position)
            if key in bound:
                raise self.error(f"{name}() got {key!r} twice", position)
            bound[key] = value
        # an operand with a default (logsumexp's weights b=) may be left out
        required = [p for p in parameters if p not in static and p not in spec.optional
                    and p != spec.variadic]
        missing = [p for p in required if p not in bound]
        if missing:
            raise self.error(f"{name}() is missing {', '.join(missing)}", position)
        values = {}
        for key, value in bound.items():
            if key == spec.variadic:        # its items, each static or an operand
                read = self.static if key in static else self.expr
                values[key] = [read(v) for v in value]
            elif key in static:
                values[key] = self.static(value)
            elif key in LIST_PARAMETERS:
                if not isinstance(value, ListLiteral):
                    raise self.error(f"{name} takes a list such as [a, b]", position)
                values[key] = self.expressions(value)
            else:
                values[key] = self.expr(value)
        if spec.variadic is None:
            result = self.build(position, spec.function, **values)
        else:
            head = positional[:-1]
            absent = [p for p in head if p not in values]
            if absent:
                raise self.error(f"{name}() is missing {', '.join(absent)}", position)
            leading = [values.pop(p) for p in head] + values.pop(spec.variadic)
            result = self.build(position, spec.function, *leading, **values)
        if isinstance(result, (tuple, list)) and all(isinstance(r, Expr) for r in result):
            return _Pieces(tuple(result), name, position)      # a formula indexes it
        if not isinstance(result, (Expr, _Unbuilt)):
            raise self.error(f"{name}() gives a {type(result).__name__}, not an expression",
                             position)
        return result


def parse(text, shapes=None, graph=None, max_length=MAX_LENGTH, max_depth=MAX_DEPTH):
    """Turn a formula into an expression; free names become variables.

    Names are scalars unless ``shapes`` gives a shape (or the graph already has the variable);
    ``max(a, b)`` is element-wise and ``max(a)`` a reduction. Nothing in ``text`` is executed.

    >>> import symgrad as sg
    >>> str(sg.parse("(x + y) * max(y, z)"))
    '(x + y) * maximum(y, z)'
    """
    if not isinstance(text, str):
        raise ParseError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > max_length:
        raise ParseError(f"the formula has {len(text)} characters, more than the limit of "
                         f"{max_length} (raise max_length to allow it)")
    shapes = dict(shapes or {})
    for name in shapes:
        if not isinstance(name, str) or not name.isidentifier():
            raise SymgradError(f"shapes names variables; {name!r} is not a name")
    graph = default_graph() if graph is None else graph
    if not isinstance(max_depth, int) or not 1 <= max_depth <= MAX_DEPTH_CEILING:
        raise SymgradError(f"max_depth must be an int from 1 to {MAX_DEPTH_CEILING}")
    with graph.atomic(), _stack_room(max_depth * FRAMES_PER_LEVEL):
        # the grammar is checked in full before any node is built, so that text outside the
        # grammar is always a ParseError, never a shape error from the part before it
        checker = _Parser(text, graph, shapes, max_depth, check_only=True)
        parser = _Parser(text, graph, shapes, max_depth)
        try:
            checker.parse()
            return parser.parse()
        except RecursionError:
            raise ParseError("the formula nests too deeply for the interpreter's stack", text,
                             max(checker.peek()[2], parser.peek()[2])) from None


_RECURSION_LIMIT_LOCK = threading.RLock()


@contextlib.contextmanager
def _stack_room(frames):
    """Make sure ``frames`` more Python frames fit under the recursion limit while parsing: each
    level of nesting costs the recursive-descent parser about FRAMES_PER_LEVEL frames."""
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    # the limit is process-wide: parses that need more room take turns, so none lowers it
    # under another and the original value always comes back
    with _RECURSION_LIMIT_LOCK:
        limit = sys.getrecursionlimit()
        needed = depth + frames + 100
        if needed > limit:
            sys.setrecursionlimit(needed)
        try:
            yield
        finally:
            if needed > limit:
                sys.setrecursionlimit(limit)


# -- SymPy --------------------------------------------------------------------------------------------


def _sympy_table(sympy):
    """SymPy function -> the op it is: the ops whose SymPy form (Op.sympy) names a SymPy function
    that SymPy keeps as a node (not sqrt, which it writes as a power)."""
    table = {}
    for name, op in ops.OPS.items():
        function = getattr(sympy, op.sympy) if isinstance(op.sympy, str) else None
        if isinstance(function, type):
            table[function] = name
    return table


def from_sympy(expression, shapes=None, graph=None):
    """A symgrad expression for a scalar SymPy expression (symbols become variables).

    >>> import sympy, symgrad as sg
    >>> x = sympy.Symbol("x")
    >>> str(sg.from_sympy(sympy.sin(x) * x))
    'x * sin(x)'
    """
    import sympy

    if not isinstance(expression, sympy.Basic):
        raise SymgradError(f"from_sympy takes a SymPy expression, got {type(expression).__name__}")
    graph = default_graph() if graph is None else graph
    shapes = dict(shapes or {})
    table = _sympy_table(sympy)
    built = {}
    with graph.atomic():
        stack = [(expression, False)]
        while stack:
            node, ready = stack.pop()
            if node in built:
                continue
            if not ready:
                stack.append((node, True))
                stack.extend((a, False) for a in node.args if a not in built)
                continue
            args = [built[a] for a in node.args]
            built[node] = _from_sympy_node(sympy, table, node, args, graph, shapes)
    return built[expression]


def _from_sympy_node(sympy, table, node, args, graph, shapes):
    if isinstance(node, sympy.Symbol):
        name = check_name(node.name)
        return Expr(graph, graph.variable(name, check_shape(shapes.get(name, ()))))
    if node.is_Number or isinstance(node, sympy.NumberSymbol):
        if not node.is_real:
            kind = "complex" if node.is_finite else "non-finite"
            raise SymgradError(f"{kind} SymPy number {node} is not supported")
        return const(_sympy_float(sympy, node), graph)
    if isinstance(node, sympy.Add):
        return _fold_chain(args, lambda a, b: a + b)
    if isinstance(node, sympy.Mul):
        return _fold_chain(args, lambda a, b: a * b)
    if isinstance(node, sympy.Pow):
        base, exponent = args
        if node.exp == sympy.Rational(1, 2):
            return ops.sqrt(base)
        if node.exp == -1:
            return 1.0 / base
        return base ** exponent
    if isinstance(node, (sympy.Max, sympy.Min)):
        return _fold_chain(args, ops.maximum if isinstance(node, sympy.Max) else ops.minimum)
    if isinstance(node, sympy.Heaviside):
        at_zero = node.args[1] if len(node.args) > 1 else sympy.Rational(1, 2)
        return ops.heaviside(args[0], _sympy_float(sympy, at_zero))
    if node in (sympy.true, sympy.false):
        return const(bool(node), graph)
    if isinstance(node, sympy.functions.elementary.piecewise.ExprCondPair):
        return tuple(args)
    if isinstance(node, sympy.Piecewise):
        result = const(np.nan, graph)
        for value, condition in reversed(args):
            result = ops.where(condition, value, result)
        return result
    if node.func in table:
        return ops.apply(table[node.func], *args)
    raise SymgradError(f"cannot convert SymPy {type(node).__name__} ({node}) to symgrad")


def _sympy_float(sympy, number):
    """A SymPy number as a float, refused as the parser refuses its literal when it overflows
    float64: SymPy's exact 10**400 would otherwise become inf without a word."""
    value = float(number)
    if math.isinf(value):
        raise ParseError(f"number too large: SymPy's {sympy.Float(number, 3)} overflows float64")
    return value


def _fold_chain(args, combine):
    result = args[0]
    for arg in args[1:]:
        result = combine(result, arg)
    return result


def to_sympy(expr):
    """The SymPy expression of a scalar symgrad expression (variables become Symbols).

    >>> import symgrad as sg
    >>> sg.to_sympy(sg.parse("sigmoid(x)"))
    1/(1 + exp(-x))
    """
    import sympy
    if not isinstance(expr, Expr):
        raise SymgradError(f"to_sympy takes a symgrad expression, got {type(expr).__name__}")
    graph = expr.graph
    built = {}
    for node in graph.ancestors_in_order([expr.node]):
        data = graph.nodes[node]
        if data["shape"] != ():
            raise SymgradError(f"to_sympy takes scalar expressions; {data['op']} has shape "
                               f"{data['shape']}")
        args = [built[i] for i in data["inputs"]]
        built[node] = _to_sympy_node(sympy, data, args)
    return built[expr.node]


def _to_sympy_node(sympy, data, args):
    op, attrs = data["op"], data["attrs"]
    if op == "var":
        return sympy.Symbol(attrs["name"])
    if op == "const":
        value = data["value"].item()
        if isinstance(value, bool):
            return sympy.true if value else sympy.false
        if math.isfinite(value) and float(value).is_integer():
            return sympy.Integer(int(value))
        return sympy.Float(value) if math.isfinite(value) else (
            sympy.nan if math.isnan(value) else sympy.oo if value > 0 else -sympy.oo)
    form = ops.OPS[op].sympy if op in ops.OPS else None
    if isinstance(form, str):
        return getattr(sympy, form)(*args)
    if form is not None:
        return form(sympy, *args, **attrs)
    raise SymgradError(f"op {op!r} has no SymPy equivalent")


__all__ = ["parse", "from_sympy", "to_sympy", "tokenize", "function_names"]
