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
        if text is not None and position is not None and len(text) <= 200 and "\n" not in text:
            message = f"{message} at column {position + 1}\n  {text}\n  {' ' * position}^"
        elif position is not None:
            message = f"{message} at column {position + 1}"
        super().__init__(message)


class ShapeError(SymgradError, ValueError):
    """Operand shapes that an op cannot accept, or a variable redeclared with another shape."""


class UndefinedGradientError(SymgradError):
    """A derivative was asked for where none exists (an op without a rule, a disconnected input)."""
