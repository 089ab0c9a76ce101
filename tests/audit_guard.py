"""An audit hook (PEP 578) that records and refuses what code does inside a ``guarded()`` block.

Audit hooks cannot be removed, so one hook is installed when this module is first imported. It
acts only inside ``guarded()``, in the context that entered it, and ignores every other thread.
CPython raises these events for exec, compile, import, open, os.system, subprocess.Popen, socket and
ctypes calls, and the reads and writes of code, frame and type attributes that sandbox escapes use
(``object.__getattr__``); see https://docs.python.org/3/library/audit_events.html.
"""

import contextlib
import contextvars
import sys
import types

# What symgrad itself does while parsing: _stack_room counts its frames, the parser keys positions
# by id(), and an error message walks the stack (reading each frame's f_code) to name the caller.
HARMLESS = frozenset({"sys._getframe", "builtins.id"})


def harmless(event, args):
    return event in HARMLESS or (event == "object.__getattr__"
                                 and isinstance(args[0], types.FrameType) and args[1] == "f_code")


_seen = contextvars.ContextVar("audit_guard_seen", default=None)


class Refused(BaseException):
    """Raised inside the audited operation, so that it does not happen. A BaseException, so that
    no ``except Exception`` on the way up can swallow it (the event is recorded anyway)."""


def _hook(event, args):
    seen = _seen.get()
    if seen is None or harmless(event, args):
        return
    seen.append(event)
    raise Refused(f"audit event {event} inside a guarded block")


sys.addaudithook(_hook)


@contextlib.contextmanager
def guarded():
    """Yield a list that collects every audit event raised in the block that is not harmless();
    each of them is refused (the operation raises Refused)."""
    seen = []
    token = _seen.set(seen)
    try:
        yield seen
    finally:
        _seen.reset(token)
