"""The exceptions symgrad raises on purpose.

Every one derives from SymgradError, so `except sg.SymgradError` catches user mistakes and nothing
else. Leaf module: imports nothing from symgrad.
"""


class SymgradError(Exception):
    """Base of every error symgrad raises on purpose."""


class ParseError(SymgradError, ValueError):
    """A formula that the whitelisted grammar does not accept.

    `position` is the 0-based column of the problem in `text` (None when it has no single place).
    """

    def __init__(self, message, text=None, position=None):
        self.text = text
        self.position = position
        self.reason = message
        # the text is echoed only when printable: a control character or a bidi override in it
        # could redraw the terminal the message lands in
        if text is not None and position is not None and len(text) <= 200 and text.isprintable():
            message = f"{message} at column {position + 1}\n  {text}\n  {' ' * position}^"
        elif position is not None:
            message = f"{message} at column {position + 1}"
        super().__init__(message)


class ShapeError(SymgradError, ValueError):
    """Operand shapes that an op cannot accept, or a variable redeclared with another shape.

    Raised by an op, the message reads ``op: reason (operand shapes ...) (called at file:line)``;
    ``reason``, ``op``, ``shapes`` and ``where`` keep the parts (``where`` is None for a parsed
    formula, whose message gives the column instead).
    """

    def __init__(self, message, op=None, shapes=None, where=None):
        self.reason, self.op, self.shapes, self.where = message, op, shapes, where
        if op is not None:
            message = f"{op}: {message}"
        if shapes is not None:
            message += f" (operand shapes {', '.join(map(str, shapes))})"
        if where is not None:
            message += f" (called at {where})"
        super().__init__(message)


class ArgumentError(SymgradError, TypeError):
    """A non-operand argument of the wrong kind: a slope that is not a number, a reshape target or
    transpose axes that are not ints. In a formula it is a ParseError at the argument."""


class InternalError(RuntimeError):
    """A broken invariant inside symgrad: a bug to report, never a mistake in the input. It is
    deliberately not a SymgradError, so that the CLI shows its traceback."""


class UndefinedGradientError(SymgradError):
    """A derivative was asked for where none exists (an op without a rule, a disconnected input)."""
