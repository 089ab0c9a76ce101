"""The optimiser: the ordered PASSES, rule passes of small named rewrites run to a fixed point and
whole-graph passes (Horner forms), on a private copy of what the outputs need (the user's graph is
never changed), with a log of every rewrite for explain.

Imports graph and ops; codegen imports it.
"""

from dataclasses import dataclass, field
from typing import Callable

from . import algebra, loops, polynomial
from . import compaction  # noqa: F401 (registers the compaction of derivatives as they are built)
from .inplace import NotInPlace, rewrite_in_place
from .rebuild import Applied, index_rules, is_private, rebuild, renumbered

MAX_ROUNDS = 8


@dataclass(frozen=True)
class Pass:
    """One step of the optimiser: either ``rules``, local rewrites (rebuild.rewrite) offered every
    node of a fresh copy of the graph, copy after copy until one fires none or ``rounds`` copies
    were made; or ``run``, a function of the whole graph, ``run(graph, outputs, inputs, log) ->
    (graph, outputs, inputs)``, appending what it rewrites to ``log``."""
    name: str
    rules: tuple = ()
    run: Callable | None = None
    rounds: int = MAX_ROUNDS


PASSES = [
    Pass("algebra", rules=tuple(algebra.RULES)),
    Pass("horner", run=polynomial.canonicalize),
    # one copy more offers the algebra rules the nodes the Horner forms were built from
    Pass("algebra after horner", rules=tuple(algebra.RULES), rounds=1),
]


def optimize_loop_bodies(graph, outputs, inputs, log):
    """Each loop's body (ops.loops) reduced to what is read of it, optimised by these passes."""
    return loops.optimize_loops(graph, outputs, inputs, log, optimize)


PASSES.append(Pass("loop bodies", run=optimize_loop_bodies))


@dataclass
class Optimized:
    """A private graph holding the optimised outputs and inputs, and the rewrites that fired."""
    graph: object
    outputs: list
    inputs: list
    applied: list = field(default_factory=list)


def optimize(graph, outputs, inputs, passes=None, log=None):
    """Run ``passes`` (PASSES when None), in order, on ``outputs`` (node keys of ``graph``);
    ``inputs`` are kept even when unused. Every rewrite that fires is appended to ``log`` (the
    rewrite log compile began with the build rules; a new list when None). Returns an Optimized
    whose graph is new and whose ``applied`` is that log."""
    applied = [] if log is None else log
    current, current_outputs, current_inputs = graph, list(outputs), list(inputs)
    settled = {}        # the rules of a rule pass -> the length of the log when it last ended
    for step in PASSES if passes is None else passes:
        if step.run is not None:
            current, current_outputs, current_inputs = step.run(
                current, current_outputs, current_inputs, applied)
            continue
        key = tuple(step.rules)
        if settled.get(key) == len(applied):
            continue    # nothing fired since these rules last ran: the graph is as they left it
        rules = index_rules(key)
        for _ in range(step.rounds):
            if is_private(current):     # a copy of the optimiser's own: finish the pass in it
                try:
                    if rewrite_in_place(current, current_outputs, current_inputs, rules, applied):
                        # renumbered, so that its keys are an evaluation order again
                        current, mapping = renumbered(current, current_outputs, current_inputs)
                        current_outputs = [mapping[o] for o in current_outputs]
                        current_inputs = [mapping[i] for i in current_inputs]
                    break
                except NotInPlace:
                    pass        # a rewrite changed a shape or dtype: the copy works them out
            fired = len(applied)
            current, mapping = rebuild(current, current_outputs, current_inputs, rules, applied)
            current_outputs = [mapping[o] for o in current_outputs]
            current_inputs = [mapping[i] for i in current_inputs]
            if len(applied) == fired:
                break   # the copy just made changed nothing a rewrite could see
        settled[key] = len(applied)
    if current is graph:    # no pass made a copy: the user's graph is never handed on
        current, mapping = rebuild(graph, current_outputs, current_inputs, {}, applied)
        current_outputs = [mapping[o] for o in current_outputs]
        current_inputs = [mapping[i] for i in current_inputs]
    return Optimized(current, current_outputs, current_inputs, applied)


__all__ = ["PASSES", "Pass", "Optimized", "optimize", "Applied"]
