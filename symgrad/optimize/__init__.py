"""The optimiser: ordered PASSES of small named rewrites, run to a fixed point on a private copy of
what the outputs need (the user's graph is never changed), with a log of every rewrite for explain.

Imports graph and ops; codegen imports it.
"""

from dataclasses import dataclass, field

from . import algebra, polynomial
from .rebuild import Applied, index_rules, rebuild

PASSES = [("algebra", algebra.RULES)]
MAX_ROUNDS = 8


@dataclass
class Optimized:
    """A private graph holding the optimised outputs and inputs, and the rewrites that fired."""
    graph: object
    outputs: list
    inputs: list
    applied: list = field(default_factory=list)


def optimize(graph, outputs, inputs, passes=None, log=None):
    """Rewrite ``outputs`` (node keys of ``graph``) until nothing changes; ``inputs`` are kept
    even when unused. Every rewrite that fires is appended to ``log`` (the rewrite log compile
    began with the build rules; a new list when None). Returns an Optimized whose graph is new
    and whose ``applied`` is that log."""
    rules = index_rules([rule for _, pass_rules in (passes or PASSES) for rule in pass_rules])
    applied = [] if log is None else log
    current, current_outputs, current_inputs = graph, list(outputs), list(inputs)
    for _ in range(MAX_ROUNDS):
        fired = len(applied)
        target, mapping = rebuild(current, current_outputs, current_inputs, rules, applied)
        current_outputs = [mapping[o] for o in current_outputs]
        current_inputs = [mapping[i] for i in current_inputs]
        current = target
        if len(applied) == fired:
            break       # the copy just made changed nothing a rewrite could see
    fired = len(applied)
    current, current_outputs, current_inputs = polynomial.canonicalize(
        current, current_outputs, current_inputs, applied)
    if len(applied) == fired:
        # nothing to canonicalise: the last round's copy already is the fixed point
        return Optimized(current, current_outputs, current_inputs, applied)
    target, mapping = rebuild(current, current_outputs, current_inputs, rules, applied)
    return Optimized(target, [mapping[o] for o in current_outputs],
                     [mapping[i] for i in current_inputs], applied)


__all__ = ["PASSES", "Optimized", "optimize", "Applied"]
