"""Mutation testing: does the hidden suite of each lab part notice a wrong solution?

    python -m bench.mutation                          every part of every lab, 2 jobs
    python -m bench.mutation --lab lab1 --part basics
    python -m bench.mutation --list --part basics     the mutants and their keys, no grading
    python -m bench.mutation --show "KEY"             one mutant as a diff
    python -m bench.mutation --kind float32 --kind "move statement" --lab lab2 [--list]
                                                      only the mutants of these kinds

A mutant is the reference with one small change inside a `# BEGIN SOLUTION` /
`# END SOLUTION` region (what students write): an operator, a comparison or a constant
changed, a slice bound moved by one, a term, a call, a keyword argument or a statement
dropped, two arguments swapped, a condition negated, a statement moved across an optimiser
step (`optimizer.step()`, `loss.backward()`, `train_step(...)`), a float64 made float32, a
convergence loop run to its end or cut to a few iterations (`--kind` picks kinds out). Each
mutant is graded like a submission (`python -m autograder grade LAB MUTANT --part PART
--seed S`) against one shared reference cache, so the reference's observations are computed
once. A mutant is *killed* when a test that passes on the reference fails on it. One such test
is enough, so a grading stops at its first failing test (`--exitfirst`, when the reference
fails none): the killer listed for a mutant is the first test that caught it.

Some mutants cannot be killed because they do not change what the code does (a `<` that
becomes `<=` on a continuous random number, a dropped `.detach()` on a tensor that needs no
gradient). They are listed by hand, with the reason, in bench/equivalent_mutants.toml, keyed
by the mutant's key (function, kind of change, the code before and after), not by line.
Mutants that a test could kill but none does yet can be listed in bench/known_survivors.toml
with the test that would kill them: they still count against the score, but the sample that
CI grades accepts them.

Parts with long tests (training runs) are graded in two stages: first without the tests that
took more than --long-test-seconds on the reference, then, for the mutants that survived, with
those long tests alone (the ones that pass on the reference: only they can kill), within
--long-budget seconds. Stage two only runs where stage one found nothing, so the kills are
exactly those of grading every mutant with the whole suite. Time limits are multiplied by
--timeout-scale (2 by default), so that a busy machine does not kill mutants that are merely
slowed down; kills that came only from time limits are listed.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from autograder import REPO_ROOT
from autograder.engine.labs import Lab, available_labs, load_lab
from bench.snapshot import snapshot
from bench.variants import own_nodes, run_suite, solution_regions, write_variant

EQUIVALENTS_FILE = Path(__file__).with_name("equivalent_mutants.toml")
KNOWN_SURVIVORS_FILE = Path(__file__).with_name("known_survivors.toml")
DEFAULT_OUT = REPO_ROOT / "build" / "mutation"

# Name swaps for methods and functions: the classic slips of tensor code.
RENAMES = {
    "max": "min", "min": "max", "amax": "amin", "amin": "amax", "argmax": "argmin",
    "argmin": "argmax", "sum": "mean", "mean": "sum", "zeros": "ones", "ones": "zeros",
    "zeros_like": "ones_like", "ones_like": "zeros_like", "exp": "log", "log": "exp",
    "relu": "sigmoid", "cumsum": "cumprod", "squeeze": "unsqueeze", "unsqueeze": "squeeze",
}
STRING_SWAPS = {"max": "min", "min": "max", "mean": "sum", "sum": "mean"}
OPERATOR_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.MatMult: ast.Mult,
}
COMPARISON_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)
# The grader runs on a CPU: a dropped `device=` is invisible there, so it is not mutated.
UNMUTATED_KEYWORDS = {"device"}
# Calls that order a training step: a statement moved across one of them (or across a call of a
# function named `..step`, like `train_step(...)`; `env.step(...)` too, where the transition
# stored or the action taken then comes from the wrong side of it) is the "move statement" mutant.
STEP_CALLS = {"backward", "zero_grad"}
# Statements that are not moved. One that ends the block (or holds a `return`): moving it
# before another drops that one, a mutant of its own. A loop: swapped with its neighbour it is
# mostly `history = []` put after the loop that fills it, a crash and no slip. And statements
# that compute nothing.
UNMOVED = (ast.Return, ast.Raise, ast.Break, ast.Continue, ast.Pass, ast.Global, ast.Nonlocal,
           ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
           ast.For, ast.AsyncFor, ast.While)
ITERATION_CAP = 10  # the "iteration count" mutants run a loop at most this many times
# Every kind of mutant the enumerator makes (the choices of --kind).
KINDS = ("operator", "swap operands", "drop term", "augmented to plain assignment",
         "drop statement", "comparison", "boolean", "drop unary", "constant", "rename", "slice",
         "einops pattern", "swap arguments", "drop keyword", "drop call", "negate condition",
         "move statement", "float32", "iteration count")


# ============================================================================ mutants


@dataclass(frozen=True)
class Mutant:
    lab: str
    part: str
    function: str
    kind: str
    before: str
    after: str
    occurrence: int
    source: str = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        """Stable across edits elsewhere in the file: no line numbers, only code."""
        suffix = f" #{self.occurrence}" if self.occurrence > 1 else ""
        return f"{self.function}: {self.kind}: `{self.before}` -> `{self.after}`{suffix}"


Transform = Callable[[ast.AST], ast.AST | None]
COMPOUND = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.ClassDef)
# Calls whose removal or reordering is only a type error, never a plausible slip: builtins
# called by name, and two methods.
KEPT_BUILTINS = {"range", "len", "sum", "list", "tuple", "dict", "zip", "enumerate",
                 "isinstance", "super"}
KEPT_METHODS = {"parameters", "numel"}
# Methods that transform a value, so that `x.method(...) -> x` is a plausible slip.
DROPPABLE_METHODS = {
    "sum", "mean", "max", "min", "amax", "amin", "exp", "log", "sqrt", "pow", "abs", "squeeze",
    "unsqueeze", "reshape", "view", "flatten", "clone", "detach", "copy", "float", "double",
    "long", "int", "item", "tolist", "numpy", "contiguous", "transpose", "cumsum", "softmax",
    "log_softmax", "relu", "manual_seed", "to", "cpu", "values",
}
# Module functions `f(x)` whose removal (`-> x`) is a plausible slip.
DROPPABLE_FUNCTIONS = {"relu", "sqrt", "exp", "log", "abs", "tanh", "sigmoid", "softmax",
                       "log_softmax", "square"}


@dataclass
class _Candidate:
    index: int  # position of the mutated node in ast.walk order
    context: int  # position of the node shown in the mutant's key
    function: str
    kind: str
    transform: Transform
    shown: tuple[str, str] | None = None  # the key's before and after, when not the context's


class _Enumerator:
    """Finds every mutation of the nodes that lie inside a solution region."""

    def __init__(self, tree: ast.Module, regions: list[tuple[int, int]]):
        self.tree = tree
        self.regions = regions
        self.index = {id(node): i for i, node in enumerate(ast.walk(tree))}
        self.parent = {id(child): node for node in ast.walk(tree)
                       for child in ast.iter_child_nodes(node)}
        self.modules = self._module_names(tree)
        self.candidates: list[_Candidate] = []
        self.statement_calls: set[int] = set()  # calls that are a whole statement

    @staticmethod
    def _module_names(tree: ast.Module) -> set[str]:
        names = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.update(a.asname or a.name for a in node.names)
        return names

    def inside(self, node: ast.AST) -> bool:
        line = getattr(node, "lineno", None)
        end = getattr(node, "end_lineno", line)
        return line is not None and any(a < line and end < b for a, b in self.regions)

    def context_of(self, node: ast.AST) -> ast.AST:
        """The simple statement holding `node`, or the expression right under a compound one."""
        current = node
        while not isinstance(current, ast.stmt):
            parent = self.parent[id(current)]
            if isinstance(parent, COMPOUND):
                return current
            current = parent
        return current

    def add(self, node: ast.AST, function: str, kind: str, transform: Transform, *,
            context: ast.AST | None = None, shown: tuple[str, str] | None = None) -> None:
        """A mutation of `node`; the key shows `context` (by default the statement holding
        `node`) before and after, or the texts `shown`."""
        assert kind in KINDS, kind
        context = self.context_of(node) if context is None else context
        self.candidates.append(_Candidate(self.index[id(node)], self.index[id(context)],
                                          function, kind, transform, shown))

    def run(self) -> list[_Candidate]:
        self._visit(self.tree, "", set())
        return self.candidates

    def _visit(self, node: ast.AST, function: str, bound: set[str]) -> None:
        if function:
            self._moves(node, function)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{function}.{child.name}" if function else child.name
                names = set(bound)
                if not isinstance(child, ast.ClassDef):
                    names |= {a.arg for a in ast.walk(child.args) if isinstance(a, ast.arg)}
                self._visit(child, name, names)
                continue
            if isinstance(child, ast.JoinedStr):  # f-strings: messages, not behaviour
                continue
            if function and self.inside(child):
                self._mutations(child, function, bound)
            self._visit(child, function, bound)
            if isinstance(child, ast.stmt):
                bound |= _stored_names(child)

    def _is_module(self, node: ast.AST) -> bool:
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and node.id in self.modules

    # ------------------------------------------------------------------ the operators
    def _mutations(self, node: ast.AST, function: str, bound: set[str]) -> None:
        add = self.add
        if isinstance(node, ast.BinOp):
            swap = OPERATOR_SWAPS.get(type(node.op))
            if swap:
                add(node, function, "operator", lambda n, s=swap: _with(n, op=s()))
            if isinstance(node.op, NON_COMMUTATIVE):
                add(node, function, "swap operands",
                    lambda n: _with(n, left=n.right, right=n.left))
            if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
                add(node, function, "drop term", lambda n: n.left)
                if not isinstance(node.op, ast.Pow):
                    add(node, function, "drop term", lambda n: n.right)
        elif isinstance(node, ast.AugAssign):
            swap = OPERATOR_SWAPS.get(type(node.op))
            if swap:
                add(node, function, "operator", lambda n, s=swap: _with(n, op=s()))
            add(node, function, "augmented to plain assignment",
                lambda n: ast.Assign(targets=[n.target], value=n.value, lineno=n.lineno))
            add(node, function, "drop statement", lambda n: ast.Pass())
        elif isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                swap = COMPARISON_SWAPS.get(type(op))
                if swap:
                    add(node, function, "comparison",
                        lambda n, p=position, s=swap: _with(
                            n, ops=[s() if i == p else o for i, o in enumerate(n.ops)]))
        elif isinstance(node, ast.BoolOp):
            other = ast.Or if isinstance(node.op, ast.And) else ast.And
            add(node, function, "boolean", lambda n, o=other: _with(n, op=o()))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            add(node, function, "drop unary", lambda n: n.operand)
        elif isinstance(node, ast.Constant):
            self._constant(node, function)
        elif isinstance(node, ast.Attribute):
            if node.attr in RENAMES:
                add(node, function, "rename",
                    lambda n: _with(n, attr=RENAMES[n.attr]))
            if node.attr == "inf":
                add(node, function, "constant", lambda n: ast.UnaryOp(ast.USub(), n))
            self._precision(node, function)
        elif isinstance(node, ast.Slice):
            for bound_name in ("lower", "upper"):
                value = getattr(node, bound_name)
                if value is None:
                    continue
                add(node, function, "slice", lambda n, b=bound_name: _with(n, **{b: None}))
                if not _is_literal(value):
                    for delta in (ast.Add, ast.Sub):
                        add(node, function, "slice",
                            lambda n, b=bound_name, d=delta: _with(n, **{b: ast.BinOp(
                                getattr(n, b), d(), ast.Constant(1))}))
        elif isinstance(node, ast.Call):
            self._call(node, function)
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            add(node.test, function, "negate condition",
                lambda n: ast.UnaryOp(ast.Not(), n))
        if isinstance(node, (ast.For, ast.While)):
            self._iterations(node, function)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            add(node, function, "drop statement", lambda n: ast.Pass())
            self.statement_calls.add(id(node.value))
        if isinstance(node, ast.Assign) and all(
            not isinstance(t, ast.Name) or t.id in bound for t in node.targets
        ):
            add(node, function, "drop statement", lambda n: ast.Pass())

    def _constant(self, node: ast.Constant, function: str) -> None:
        value = node.value
        if isinstance(value, bool):
            self.add(node, function, "constant", lambda n: ast.Constant(not n.value))
        elif isinstance(value, int):
            self.add(node, function, "constant", lambda n: ast.Constant(n.value + 1))
            if value > 0:
                self.add(node, function, "constant", lambda n: ast.Constant(n.value - 1))
        elif isinstance(value, float):
            self.add(node, function, "constant",
                     lambda n: ast.Constant(2 * n.value if n.value else 1.0))
        elif isinstance(value, str):
            if value in STRING_SWAPS:
                self.add(node, function, "constant", lambda n: ast.Constant(STRING_SWAPS[n.value]))
            elif value == "float64":  # dtype="float64": the precision slip of _precision
                self.add(node, function, "float32", lambda n: ast.Constant("float32"))
            elif "->" in value:
                for swapped in _pattern_swaps(value):
                    self.add(node, function, "einops pattern",
                             lambda n, s=swapped: ast.Constant(s))

    def _precision(self, node: ast.Attribute, function: str) -> None:
        """Dtype promises ("returns float64", "computed in float64"): torch.float64,
        np.float64 or torch.double made float32, x.double() made x.float()."""
        parent = self.parent.get(id(node))
        called = isinstance(parent, ast.Call) and parent.func is node
        if node.attr == "double" and called:
            self.add(node, function, "float32", lambda n: _with(n, attr="float"))
        elif node.attr in ("float64", "double"):  # np.float64(x) is a cast too
            self.add(node, function, "float32", lambda n: _with(n, attr="float32"))

    def _iterations(self, loop: ast.For | ast.While, function: str) -> None:
        """Bound and number promises of iterative code ("until it converges", "at most n
        steps", "accurate to 1e-10"): a loop that stops early run to its end (the `break` of
        its `if` dropped), a range with a break cut to ITERATION_CAP iterations, a `while`
        loop run ITERATION_CAP times at most."""
        if isinstance(loop, ast.While) and loop.orelse:
            return  # `else` runs when the test fails, which the capped loop cannot say
        breaks = _own_breaks(loop)
        endless = isinstance(loop, ast.While) and _is_true(loop.test)
        if not endless:  # without its break an endless loop hangs: killed, but no slip
            for exit_, condition in breaks:
                self.add(exit_, function, "iteration count", lambda n: ast.Pass(),
                         context=condition)
        if isinstance(loop, ast.For) and breaks and _is_range(loop.iter):
            stop = 0 if len(loop.iter.args) == 1 else 1
            value = loop.iter.args[stop]
            if not (isinstance(value, ast.Constant) and isinstance(value.value, int)
                    and value.value <= ITERATION_CAP):
                self.add(loop.iter, function, "iteration count",
                         lambda n, s=stop: _with(n, args=[
                             ast.Call(ast.Name("min", ast.Load()),
                                      [a, ast.Constant(ITERATION_CAP)], []) if i == s else a
                             for i, a in enumerate(n.args)]))
        elif isinstance(loop, ast.While):
            capped = _capped(_with(loop, body=[]))  # its header, and its check when not endless
            self.add(loop, function, "iteration count", _capped,
                     shown=(f"while {ast.unparse(loop.test)}:", ast.unparse(capped)))

    def _moves(self, node: ast.AST, function: str) -> None:
        """Order promises ("zero the gradients, backward, optimizer.step()", "sync the target
        network after the step", "the loss before each step"): two neighbouring statements of
        one block swapped, where one of them makes or orders a training step."""
        for name, block in ast.iter_fields(node):
            if not (isinstance(block, list) and block and isinstance(block[0], ast.stmt)):
                continue
            for i, (first, second) in enumerate(zip(block, block[1:], strict=False)):
                if (any(isinstance(s, UNMOVED) or _is_docstring(s) or _returns(s)
                        or not self.inside(s) for s in (first, second))
                        or not _orders_a_step(first, second)):
                    continue
                if ast.unparse(first) == ast.unparse(second):
                    continue  # the same statement twice: the swap is no change
                a, b = _headline(first), _headline(second)
                self.add(node, function, "move statement",
                         lambda n, f=name, i=i: _with(n, **{f: [
                             *getattr(n, f)[:i], getattr(n, f)[i + 1], getattr(n, f)[i],
                             *getattr(n, f)[i + 2:]]}),
                         shown=(f"{a}; {b}", f"{b}; {a}"))

    def _call(self, node: ast.Call, function: str) -> None:
        add = self.add
        func = node.func
        kept = func.attr in KEPT_METHODS if isinstance(func, ast.Attribute) else getattr(
            func, "id", "") in KEPT_BUILTINS
        positional = [a for a in node.args if not isinstance(a, ast.Starred)]
        if len(positional) == len(node.args) and not kept:
            for i in range(len(node.args) - 1):
                add(node, function, "swap arguments",
                    lambda n, i=i: _with(n, args=[*n.args[:i], n.args[i + 1], n.args[i],
                                                  *n.args[i + 2:]]))
        for i, keyword in enumerate(node.keywords):
            if keyword.arg is not None and keyword.arg not in UNMUTATED_KEYWORDS:
                add(node, function, "drop keyword",
                    lambda n, i=i: _with(n, keywords=[k for j, k in enumerate(n.keywords)
                                                      if j != i]))
        if id(node) in self.statement_calls or kept:
            return  # dropping a statement's call is dropping the statement
        one_argument = len(node.args) == 1 and not node.keywords and not isinstance(
            node.args[0], ast.Starred)
        if isinstance(func, ast.Attribute) and self._is_module(func.value):
            if one_argument and func.attr in DROPPABLE_FUNCTIONS:  # torch.relu(h) -> h
                add(node, function, "drop call", lambda n: n.args[0])
        elif isinstance(func, ast.Attribute) and not (
            isinstance(func.value, ast.Name) and func.value.id == "self"
        ):
            if func.attr in DROPPABLE_METHODS:  # x.sum(dim=0) -> x
                add(node, function, "drop call", lambda n: n.func.value)
        elif one_argument:  # softmax(logits) -> logits, self.hidden(x) -> x
            add(node, function, "drop call", lambda n: n.args[0])


def _capped(loop: ast.While) -> ast.For:
    """`while test: body` -> `for _ in range(ITERATION_CAP): if not test: break; body`."""
    check = [] if _is_true(loop.test) else [
        ast.If(ast.UnaryOp(ast.Not(), loop.test), [ast.Break()], [])]
    return ast.For(ast.Name("_", ast.Store()),
                   ast.Call(ast.Name("range", ast.Load()), [ast.Constant(ITERATION_CAP)], []),
                   [*check, *loop.body], [], lineno=loop.lineno)


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _is_range(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "range" and 1 <= len(node.args) <= 3 and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args))


def _own_breaks(loop: ast.For | ast.While) -> list[tuple[ast.Break, ast.If]]:
    """The `break`s of this loop (not of a loop inside it) that sit in an `if`, with the if."""
    found = []

    def visit(statements: list[ast.stmt], condition: ast.If | None) -> None:
        for statement in statements:
            if isinstance(statement, ast.Break) and condition is not None:
                found.append((statement, condition))
            elif isinstance(statement, ast.If):
                visit(statement.body, statement)
                visit(statement.orelse, statement)
            elif isinstance(statement, (ast.With, ast.Try)):
                for name in ("body", "orelse", "finalbody"):
                    visit(getattr(statement, name, []), condition)
                for handler in getattr(statement, "handlers", []):
                    visit(handler.body, condition)

    visit(loop.body, None)
    return found


def _step_calls(statement: ast.stmt) -> set[str]:
    """What the statement does of a training step (outside any function it defines): "step"
    (a call of a function or method named `..step`), "backward", "zero_grad", and "grad" when
    it reads a `.grad`."""
    found = set()
    for node in own_nodes([statement]):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            found |= ({name} & STEP_CALLS) | ({"step"} if name.endswith("step") else set())
        elif isinstance(node, ast.Attribute) and node.attr == "grad":
            found.add("grad")
    return found


def _orders_a_step(first: ast.stmt, second: ast.stmt) -> bool:
    """Whether swapping the two can change a training step: one steps or runs backward, or one
    clears the gradients that the other reads. (zero_grad swapped with the forward pass that
    comes before backward changes nothing: no mutant.)"""
    calls = _step_calls(first) | _step_calls(second)
    return bool(calls & {"step", "backward"}) or {"zero_grad", "grad"} <= calls


def _returns(statement: ast.stmt) -> bool:
    """Whether the statement holds a `return` of its function."""
    return any(isinstance(node, ast.Return) for node in own_nodes([statement]))


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def _headline(statement: ast.stmt, width: int = 60) -> str:
    """The statement on one line, cut to `width` characters (the key of a moved statement)."""
    text = " ".join(ast.unparse(statement).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _stored_names(statement: ast.stmt) -> set[str]:
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _is_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
    )


def _with(node: ast.AST, **changes: object) -> ast.AST:
    new = copy.copy(node)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


def _pattern_swaps(pattern: str) -> list[str]:
    """The pattern with two neighbouring axis names swapped, once per neighbouring pair
    (names separated only by spaces: in the same group, on the same side)."""
    names = list(re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", pattern))
    variants = []
    for a, b in zip(names, names[1:], strict=False):
        if pattern[a.end():b.start()].strip() == "" and a.group() != b.group():
            variants.append(pattern[:a.start()] + b.group() + pattern[a.end():b.start()]
                            + a.group() + pattern[b.end():])
    return variants


def _slots(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    """Where each node hangs: id(node) -> (parent, field, index in the field's list or None)."""
    slots = {}
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                slots[id(value)] = (parent, name, None)
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        slots[id(item)] = (parent, name, index)
    return slots


def _put(slot: tuple[ast.AST, str, int | None], node: ast.AST) -> None:
    parent, name, index = slot
    if index is None:
        setattr(parent, name, node)
    else:
        getattr(parent, name)[index] = node


def _describe(before: str, after: str, width: int = 80, margin: int = 30) -> tuple[str, str]:
    """Both texts on one line; long ones elided alike, away from where they differ."""
    before, after = " ".join(before.split()), " ".join(after.split())
    if max(len(before), len(after)) <= width:
        return before, after
    prefix = 0
    while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while (suffix < min(len(before), len(after)) - prefix
           and before[-1 - suffix] == after[-1 - suffix]):
        suffix += 1
    start = before.rfind(" ", 0, max(0, prefix - margin)) + 1 if prefix > margin else 0
    cut = before.find(" ", len(before) - suffix + margin) if suffix > margin else -1
    keep = len(before) - cut if cut != -1 else 0  # characters of the common tail dropped
    head, tail = ("..." if start else ""), ("..." if keep else "")
    return (head + before[start:len(before) - keep] + tail,
            head + after[start:len(after) - keep] + tail)


def mutants_of(source: str, lab: str, part: str) -> list[Mutant]:
    """Every mutant of one reference file, in source order, with unique keys."""
    tree = ast.parse(source)
    regions = solution_regions(source)
    if not regions:
        return []
    original = ast.unparse(tree)
    nodes = list(ast.walk(tree))
    slots = _slots(tree)
    mutants: list[Mutant] = []
    seen: dict[str, int] = {}
    for candidate in _Enumerator(tree, regions).run():
        node, context = nodes[candidate.index], nodes[candidate.context]
        context_before = ast.unparse(context)
        replacement = candidate.transform(copy.deepcopy(node))
        if replacement is None:
            continue
        ast.copy_location(replacement, node)
        ast.fix_missing_locations(replacement)
        _put(slots[id(node)], replacement)  # swapped in for one unparse, then put back
        try:
            text = ast.unparse(tree)
            context_after = ast.unparse(replacement if context is node else context)
        finally:
            _put(slots[id(node)], node)
        try:
            compile(text, f"{part}.py", "exec")
        except (SyntaxError, ValueError, TypeError):
            continue
        if text == original:
            continue
        if candidate.shown is not None:
            before, after = _describe(*candidate.shown)
        elif context_before == context_after:
            continue
        else:
            before, after = _describe(context_before, context_after)
        base = f"{candidate.function}|{candidate.kind}|{before}|{after}"
        seen[base] = seen.get(base, 0) + 1
        mutants.append(Mutant(lab, part, candidate.function, candidate.kind, before, after,
                              seen[base], text + "\n"))
    return mutants


def lab_mutants(lab: Lab, parts: list[str] | None = None,
                reference_dir: Path | None = None) -> dict[str, list[Mutant]]:
    found = {}
    for part in parts or lab.parts:
        path = (reference_dir or lab.reference_dir) / f"{part}.py"
        if path.is_file():
            found[part] = mutants_of(path.read_text(), lab.name, part)
    return found


def of_kinds(mutants: dict[str, list[Mutant]], kinds: list[str] | None
             ) -> dict[str, list[Mutant]]:
    """Only the mutants of these kinds (all of them when `kinds` is empty)."""
    if not kinds:
        return mutants
    return {part: [m for m in found if m.kind in kinds] for part, found in mutants.items()}


def diff(mutant: Mutant, lab: Lab) -> str:
    original = ast.unparse(ast.parse((lab.reference_dir / f"{mutant.part}.py").read_text()))
    lines = difflib.unified_diff(original.splitlines(), mutant.source.splitlines(),
                                 f"reference/{lab.name}/{mutant.part}.py", "mutant",
                                 lineterm="", n=2)
    return "\n".join(lines)


def load_equivalents(path: Path = EQUIVALENTS_FILE) -> dict[str, dict[str, dict[str, str]]]:
    """lab -> part -> mutant key -> the reason (equivalent, or the test that would kill it)."""
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text())


def load_known_survivors() -> dict[str, dict[str, dict[str, str]]]:
    return load_equivalents(KNOWN_SURVIVORS_FILE)


def sample(mutants: list[Mutant], size: int, seed: int) -> list[Mutant]:
    """A fixed random sample (the same for the same mutants and seed)."""
    ordered = sorted(mutants, key=lambda m: m.key)
    return random.Random(seed).sample(ordered, min(size, len(ordered)))


# ============================================================================ grading


@dataclass
class Grading:
    failed: set[str]
    problem: str = ""
    seconds: float = 0.0
    timed_out: set[str] = field(default_factory=set)  # failed tests that hit a time limit


def grade(lab: str, part: str, submission: Path, results: Path, *, seed: int, cache: Path,
          keyword: str | None = None, timeout: float = 1800.0, timeout_scale: float = 1.0,
          root: Path = REPO_ROOT, exitfirst: bool = False) -> Grading:
    """Grade with the real CLI of the repository at `root` (the live one, or a snapshot) in its
    own process; the failed tests' names, or a problem."""
    command = [sys.executable, "-m", "autograder", "grade", lab, str(submission),
               "--part", part, "--seed", str(seed), "--results", str(results),
               "--reference-cache", str(cache), "--timeout-scale", str(timeout_scale),
               "--quiet"]
    if keyword:
        command += ["-k", keyword]
    if exitfirst:  # a kill needs one failing test: the first one ends the grading
        command.append("--exitfirst")
    started = time.monotonic()
    try:
        completed = subprocess.run(command, cwd=root, capture_output=True, timeout=timeout,
                                   start_new_session=True)
        problem = "" if completed.returncode == 0 else (
            f"grader exit code {completed.returncode}: "
            + completed.stderr.decode(errors="replace")[-300:])
    except subprocess.TimeoutExpired:
        problem = f"grading took longer than {timeout:g} s"
    seconds = time.monotonic() - started
    try:
        data = json.loads(results.read_text())
    except (OSError, ValueError):
        return Grading(set(), problem or "no results file", seconds)
    failed = {t["name"] for t in data["tests"] if t["status"] != "passed"}
    timed_out = {t["name"] for t in data["tests"] if t["status"] != "passed"
                 and "did not finish within" in t["output"]}
    return Grading(failed, problem, seconds, timed_out)


@dataclass
class Baseline:
    grading: Grading  # the reference's failed tests (display names), normally none
    durations: dict[str, float]  # test function -> its slowest case, in seconds
    passing: set[str]  # test functions with at least one passing case


def baseline(lab: str, part: str, *, seed: int, cache: Path, out: Path,
             timeout_scale: float = 1.0, keyword: str | None = None,
             name: str = "reference", root: Path = REPO_ROOT, reuse: bool = False) -> Baseline:
    """Grade the reference (filling the cache), with each test's duration, through pytest;
    with `reuse`, read an earlier run's files instead when they are there."""
    run = run_suite(lab, part, root / "reference" / lab, seed=seed, cache=cache, out=out,
                    name=name, keyword=keyword, timeout_scale=timeout_scale, root=root,
                    reuse=reuse)
    durations: dict[str, float] = {}
    for case, seconds in run.durations.items():
        function = case.split("[")[0]
        durations[function] = max(durations.get(function, 0.0), seconds)
    passing = {case.split("[")[0] for case in run.passed}
    if run.results is None:
        grading = Grading(set(), "the reference could not be graded", run.seconds)
    else:
        failed = {t["name"] for t in run.results["tests"] if t["status"] != "passed"}
        grading = Grading(failed, "", run.seconds)
    return Baseline(grading, durations, passing)


@dataclass
class Verdict:
    mutant: Mutant
    status: str  # killed, survived, known, equivalent, equivalent-but-killed, not-run
    killers: list[str] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0


def _write_mutant(mutant: Mutant, folder: Path, root: Path) -> Path:
    write_variant(folder, root, mutant.lab, mutant.part, mutant.source)
    (folder / "mutation.txt").write_text(mutant.key + "\n")
    return folder


class PartRun:
    """Grades the mutants of one part against its reference baseline.

    Tests slower than `long_test_seconds` on the reference are left out of stage one; `skip`
    names tests (words of a pytest -k expression) known in advance to be long, which are left
    out of the baseline too until stage two needs them.
    """

    def __init__(self, lab: Lab, part: str, *, seed: int, out: Path, cache: Path,
                 equivalents: dict[str, str], long_test_seconds: float, long_budget: float,
                 timeout_scale: float = 1.0, skip: tuple[str, ...] = (),
                 known: dict[str, str] | None = None, root: Path = REPO_ROOT,
                 resume: bool = False, log: Callable[[str], None] = print):
        self.lab, self.part, self.seed, self.root = lab, part, seed, root
        self.resume = resume
        self.timeout_scale = timeout_scale
        self.out, self.cache = out / lab.name / part, cache
        self.equivalents = equivalents
        self.known = known or {}
        self.long_test_seconds, self.long_budget = long_test_seconds, long_budget
        self.skip = skip
        self.log = log
        self.reference: Grading | None = None
        self.passing: set[str] = set()
        self.long_tests: list[str] = list(skip)
        self._lock = threading.Lock()

    def _baseline(self, keyword: str | None, name: str) -> Baseline:
        return baseline(self.lab.name, self.part, seed=self.seed, cache=self.cache, out=self.out,
                        timeout_scale=self.timeout_scale, keyword=keyword, name=name,
                        root=self.root, reuse=self.resume)

    def prepare(self) -> Grading:
        found = self._baseline(_excluding(self.skip), "reference")
        self.reference, self.passing = found.grading, found.passing
        measured = {n for n, s in found.durations.items() if s > self.long_test_seconds}
        self.long_tests = sorted(measured | set(self.skip))
        return self.reference

    @property
    def fast_keyword(self) -> str | None:
        return _excluding(self.long_tests)

    def long_keyword(self) -> str | None:
        """Stage two's tests: the long ones that pass on the reference (only those can kill),
        or None when there are none."""
        with self._lock:
            if self.skip:  # left out of the baseline so far
                found = self._baseline(" or ".join(self.skip), "reference-long")
                self.reference.failed |= found.grading.failed
                self.passing |= found.passing
                self.skip = ()
        useful = [test for test in self.long_tests if test in self.passing]
        return " or ".join(useful) if useful else None

    def _grade(self, mutant: Mutant, number: int, keyword: str | None) -> Grading:
        """Grade the mutant; kept in its folder, so that --resume can reuse the grading."""
        folder = self.out / f"{number:04d}"
        stage = "all" if keyword is None else hashlib.sha256(keyword.encode()).hexdigest()[:8]
        kept = folder / f"grading-{stage}.json"
        if self.resume and kept.is_file() and (folder / "mutation.txt").is_file() and (
            (folder / "mutation.txt").read_text().strip() == mutant.key
        ):
            data = json.loads(kept.read_text())
            return Grading(set(data["failed"]), data["problem"], data["seconds"],
                           set(data["timed_out"]))
        _write_mutant(mutant, folder, self.root)
        graded = grade(self.lab.name, self.part, folder, folder / f"results-{stage}.json",
                       seed=self.seed, cache=self.cache, keyword=keyword,
                       timeout_scale=self.timeout_scale, root=self.root,
                       exitfirst=not self.reference.failed)
        kept.write_text(json.dumps({"failed": sorted(graded.failed), "problem": graded.problem,
                                    "seconds": graded.seconds,
                                    "timed_out": sorted(graded.timed_out)}))
        return graded

    def judge(self, mutant: Mutant, number: int, keyword: str | None) -> Verdict:
        graded = self._grade(mutant, number, keyword)
        killers = sorted(graded.failed - self.reference.failed)
        by_timeout = bool(killers) and set(killers) <= graded.timed_out
        equivalent = mutant.key in self.equivalents
        if graded.problem and not graded.failed:
            # The grader itself could not finish: a finding about the engine, counted as a kill
            # (the submission did not pass) but shown separately.
            status, note = ("equivalent-but-killed" if equivalent else "killed"), graded.problem
            killers = killers or ["(grading problem)"]
        elif killers:
            status = "equivalent-but-killed" if equivalent else "killed"
            note = "only by time limits" if by_timeout else ""
            if mutant.key in self.known:
                note = "killed, but listed in bench/known_survivors.toml: remove it there"
        elif equivalent:
            status, note = "equivalent", self.equivalents[mutant.key]
        elif mutant.key in self.known:
            status, note = "known", self.known[mutant.key]
        else:
            status, note = "survived", ""
        return Verdict(mutant, status, killers, note, graded.seconds)


def run_parts(runs: list[PartRun], mutants: dict[str, list[Mutant]], jobs: int,
              log: Callable[[str], None] = print) -> dict[str, list[Verdict]]:
    """Grade every mutant of every part, `jobs` at a time; two stages where tests are long."""
    verdicts: dict[str, list[Verdict]] = {run.part: [] for run in runs}
    work = [(run, number, mutant) for run in runs
            for number, mutant in enumerate(mutants[run.part], start=1)]
    total, done = len(work), 0

    def stage_one(item: tuple[PartRun, int, Mutant]) -> tuple[PartRun, int, Verdict]:
        run, number, mutant = item
        return run, number, run.judge(mutant, number, run.fast_keyword)

    survivors: list[tuple[PartRun, int, Verdict]] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for run, number, verdict in pool.map(stage_one, work):
            done += 1
            later = run.fast_keyword and verdict.status in ("survived", "known", "equivalent")
            log(f"[{done}/{total}] {verdict.status:>8}  {run.lab.name}.{run.part} "
                f"{verdict.mutant.key}{' (so far: the long tests come next)' if later else ''}")
            if later:
                survivors.append((run, number, verdict))
            else:
                verdicts[run.part].append(verdict)
    second: list[tuple[PartRun, int, Mutant, str]] = []
    for run, number, verdict in survivors:
        if run.long_budget <= 0:  # no time for the long tests at all
            if verdict.status == "survived":
                verdict = Verdict(verdict.mutant, "not-run", note="survived the fast tests; "
                                  "the long tests were not run (no budget)")
            verdicts[run.part].append(verdict)
            continue
        keyword = run.long_keyword()
        if keyword is None:  # every long test fails on the reference: none can kill
            verdicts[run.part].append(verdict)
        else:
            second.append((run, number, verdict.mutant, keyword))
    if second:
        log(f"{len(second)} mutant(s) survived the fast tests; grading them with the long ones")
    deadline = time.monotonic() + max((run.long_budget for run in runs), default=0)

    def stage_two(item: tuple[PartRun, int, Mutant, str]) -> tuple[PartRun, Verdict]:
        run, number, mutant, keyword = item
        if time.monotonic() > deadline:
            return run, Verdict(mutant, "not-run", note="survived the fast tests; the long "
                                f"tests were not run (budget of {run.long_budget:g} s spent)")
        return run, run.judge(mutant, number, keyword)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for run, verdict in pool.map(stage_two, second):
            log(f"[long] {verdict.status:>8}  {run.lab.name}.{run.part} {verdict.mutant.key}")
            verdicts[run.part].append(verdict)
    for part in verdicts:
        verdicts[part].sort(key=lambda v: v.mutant.key)
    return verdicts


# ============================================================================ the report


def _excluding(tests: list[str] | tuple[str, ...]) -> str | None:
    return "not (" + " or ".join(tests) + ")" if tests else None


def score(verdicts: list[Verdict]) -> dict[str, float]:
    count = {status: sum(v.status == status for v in verdicts)
             for status in ("killed", "survived", "known", "equivalent",
                            "equivalent-but-killed", "not-run")}
    count["not killed"] = count["survived"] + count["known"]
    killed = count["killed"] + count["equivalent-but-killed"]
    judged = killed + count["not killed"]
    count["total"] = len(verdicts)
    count["score"] = killed / judged if judged else 1.0
    return count


def report(lab: str, runs: list[PartRun], verdicts: dict[str, list[Verdict]],
           stale: dict[str, list[str]], target: float) -> str:
    lines = [f"# Mutation score of {lab} (seed {runs[0].seed if runs else '-'})", "",
             "Killed: a test that passes on the reference fails on the mutant. Score: killed / "
             "(mutants - equivalent). Mutants that survived the fast tests and were not graded "
             "with the long ones (budget) are left out of the score and listed.", "",
             "| part | mutants | killed | not killed | equivalent | not run | score | target |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        s = score(verdicts[run.part])
        met = "met" if s["score"] >= target else "NOT MET"
        lines.append(f"| {run.part} | {s['total']} | {s['killed'] + s['equivalent-but-killed']} "
                     f"| {s['not killed']} | {s['equivalent']} | {s['not-run']} "
                     f"| {100 * s['score']:.1f}% | {100 * target:.0f}% {met} |")
    for run in runs:
        part_verdicts = verdicts[run.part]
        lines += ["", f"## {run.part}", ""]
        if run.reference and run.reference.failed:
            lines.append("Tests that fail on the reference at this seed (ignored): "
                         + "; ".join(sorted(run.reference.failed)))
        if run.long_tests:
            failing = [t for t in run.long_tests if t not in run.passing]
            lines.append("Long tests (stage two, for the mutants that survive the others): "
                         + ", ".join(run.long_tests)
                         + (f"; failing on the reference, so unable to kill: {', '.join(failing)}"
                            if failing else ""))
        survivors = [v for v in part_verdicts if v.status == "survived"]
        lines.append(f"Survivors ({len(survivors)}):" if survivors else "No new survivors.")
        lines += [f"- {v.mutant.key}" for v in survivors]
        known = [v for v in part_verdicts if v.status == "known"]
        if known:
            lines.append(f"Known survivors, listed in bench/known_survivors.toml with the test "
                         f"that would kill them ({len(known)}):")
            lines += [f"- {v.mutant.key}: {v.note}" for v in known]
        for title, status in (("Listed as equivalent but killed (remove from the list)",
                               "equivalent-but-killed"), ("Not run (budget)", "not-run")):
            chosen = [v for v in part_verdicts if v.status == status]
            if chosen:
                lines.append(f"{title}:")
                lines += [f"- {v.mutant.key} ({v.note or ', '.join(v.killers)})"
                          for v in chosen]
        slow = [v for v in part_verdicts if v.note == "only by time limits"]
        if slow:
            lines.append(f"Killed only by time limits ({len(slow)}; an infinite loop, or work "
                         "far slower than the reference's):")
            lines += [f"- {v.mutant.key}: {', '.join(v.killers)}" for v in slow]
        problems = [v for v in part_verdicts if v.status == "killed" and v.note
                    and v.note != "only by time limits" and "known_survivors" not in v.note]
        listed = [v for v in part_verdicts if "known_survivors" in v.note]
        if listed:
            lines.append("Listed as known survivors but killed (remove them from the list):")
            lines += [f"- {v.mutant.key}" for v in listed]
        if problems:
            lines.append("Killed because grading itself failed (look at these):")
            lines += [f"- {v.mutant.key}: {v.note}" for v in problems]
        if stale.get(run.part):
            lines.append("Entries of bench/equivalent_mutants.toml or bench/known_survivors.toml "
                         "that match no mutant (stale: re-key or remove them):")
            lines += [f"- {key}" for key in stale[run.part]]
    return "\n".join(lines) + "\n"


def carried_kills(earlier: dict[str, list[dict]], mutants: dict[str, list[Mutant]],
                  equivalents: dict[str, dict[str, str]]) -> dict[str, list[Verdict]]:
    """The earlier run's kills (its LAB.json) of mutants that still exist, as verdicts: a
    --survivors-of run grades the rest and reports on the whole part."""
    carried: dict[str, list[Verdict]] = {}
    for part, found in mutants.items():
        by_key = {v["key"]: v for v in earlier.get(part, [])
                  if v["status"] in ("killed", "equivalent-but-killed")}
        for mutant in found:
            if mutant.key in by_key:
                was = by_key[mutant.key]
                status = ("equivalent-but-killed" if mutant.key in equivalents.get(part, {})
                          else "killed")
                carried.setdefault(part, []).append(Verdict(
                    mutant, status, list(was["killers"]), was["note"], was["seconds"]))
    return carried


def stale_equivalents(lab: str, mutants: dict[str, list[Mutant]],
                      equivalents: dict[str, dict[str, dict[str, str]]]) -> dict[str, list[str]]:
    stale = {}
    for part, listed in equivalents.get(lab, {}).items():
        keys = {m.key for m in mutants.get(part, [])}
        missing = sorted(key for key in listed if key not in keys)
        if missing and part in mutants:
            stale[part] = missing
    return stale


# ============================================================================ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", action="append", help="lab to mutate (default: all)")
    parser.add_argument("--part", action="append", help="part to mutate (default: all)")
    parser.add_argument("--seed", type=int, default=1, help="grading seed of every mutant")
    parser.add_argument("--jobs", type=int, default=2, help="mutants graded in parallel")
    parser.add_argument("--sample", type=int, help="grade only a fixed random sample per part")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--survivors-of", type=Path, metavar="JSON",
                        help="grade only the mutants that a previous run (its LAB.json) did not "
                        "kill or did not have; its kills are carried into the report, which "
                        "covers every mutant")
    parser.add_argument("--long-test-seconds", type=float, default=15.0,
                        help="tests slower than this on the reference run in stage two only")
    parser.add_argument("--long-budget", type=float, default=3600.0,
                        help="seconds for stage two (mutants that survive the fast tests)")
    parser.add_argument("--target", type=float, default=0.9, help="score to reach per part")
    parser.add_argument("--timeout-scale", type=float, default=2.0,
                        help="multiplies every time limit, so that a busy machine does not "
                        "kill mutants that are merely slowed down")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out: same snapshot of the code, "
                        "and the gradings already done are reused")
    parser.add_argument("--kind", action="append", choices=KINDS,
                        help="only the mutants of this kind (repeatable; default: every kind)")
    parser.add_argument("--list", action="store_true", help="list the mutants' keys and stop")
    parser.add_argument("--show", help="print the mutant with this key as a diff and stop")
    args = parser.parse_args(argv)
    # Gradings run in the snapshot (cwd) but write under --out: a relative --out would
    # point into the snapshot, and every mutant would count as killed (no results file).
    args.out = args.out.resolve()

    labs = args.lab or available_labs()
    equivalents, known = load_equivalents(), load_known_survivors()
    status = 0
    for lab_name in labs:
        lab = load_lab(lab_name)
        parts = [p for p in (args.part or lab.parts) if p in lab.parts]
        parts = [p for p in parts if lab.test_file(p).is_file()]
        mutants = of_kinds(lab_mutants(lab, parts), args.kind)
        if args.list or args.show:
            for part, found in mutants.items():
                for mutant in found:
                    if args.show is None:
                        print(f"{part}\t{mutant.key}")
                    elif mutant.key == args.show:
                        print(diff(mutant, lab))
            continue
        # Grade one version of the code from start to end, whatever is edited meanwhile.
        root = args.out / "snapshot"
        if not (args.resume and root.is_dir()):
            snapshot(root)
        mutants = of_kinds(lab_mutants(lab, parts, root / "reference" / lab.name), args.kind)
        if args.sample:
            mutants = {p: sample(m, args.sample, args.sample_seed) for p, m in mutants.items()}
        carried: dict[str, list[Verdict]] = {}
        if args.survivors_of:
            carried = carried_kills(json.loads(args.survivors_of.read_text()), mutants,
                                    equivalents.get(lab.name, {}))
        # What is graded now: every mutant but the earlier kills carried over. `mutants` keeps
        # them all, for the equivalence lists' stale check.
        graded = {}
        for part, found in mutants.items():
            done = {v.mutant.key for v in carried.get(part, [])}
            graded[part] = [m for m in found if m.key not in done]
        # A --survivors-of run reports on every mutant (the earlier kills carried over), so it
        # may check the equivalence list as a whole run does; a sample or a kind may not.
        partial = bool(args.sample or args.kind)
        cache = args.out / "cache"
        runs = [PartRun(lab, part, seed=args.seed, out=args.out, cache=cache,
                        equivalents=equivalents.get(lab.name, {}).get(part, {}),
                        long_test_seconds=args.long_test_seconds, long_budget=args.long_budget,
                        timeout_scale=args.timeout_scale,
                        known=known.get(lab.name, {}).get(part, {}), root=root,
                        resume=args.resume)
                for part in graded]
        for run in runs:
            reference = run.prepare()
            print(f"{lab.name}.{run.part}: {len(graded[run.part])} mutants; reference graded "
                  f"in {reference.seconds:.0f} s"
                  + (f", failing at seed {args.seed}: {sorted(reference.failed)}"
                     if reference.failed else "")
                  + (f"; long tests: {run.long_tests}" if run.long_tests else ""), flush=True)
        verdicts = run_parts(runs, graded, args.jobs,
                             log=lambda line: print(line, flush=True))
        for part, found in carried.items():
            verdicts[part] = sorted(verdicts.get(part, []) + found, key=lambda v: v.mutant.key)
        stale = {} if partial else stale_equivalents(lab.name, mutants, equivalents)
        for part, keys in ({} if partial else stale_equivalents(lab.name, mutants,
                                                                known)).items():
            stale.setdefault(part, []).extend(keys)
        text = report(lab.name, runs, verdicts, stale, args.target)
        if args.sample:
            title, _, rest = text.partition("\n")
            text = (f"{title}\n\nA random sample of {args.sample} mutants per part (--sample "
                    f"{args.sample} --sample-seed {args.sample_seed}), not every mutant.\n{rest}")
        if args.survivors_of:
            title, _, rest = text.partition("\n")
            count = sum(len(found) for found in carried.values())
            text = (f"{title}\n\nOnly the mutants that {args.survivors_of} did not kill were "
                    f"graded again (--survivors-of); its {count} kills are carried over as they "
                    f"were, not regraded against the tests as they are now.\n{rest}")
        if args.kind:
            title, _, rest = text.partition("\n")
            text = (f"{title}\n\nOnly the mutants of kind {', '.join(args.kind)} (--kind), not "
                    f"every mutant.\n{rest}")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{lab.name}.md").write_text(text)
        (args.out / f"{lab.name}.json").write_text(json.dumps({
            part: [{"key": v.mutant.key, "status": v.status, "killers": v.killers,
                    "note": v.note, "seconds": round(v.seconds, 1)} for v in found]
            for part, found in verdicts.items()}, indent=1))
        print()
        print(text)
        print(f"Report: {os.path.relpath(args.out / f'{lab.name}.md')}")
        if any(score(v)["score"] < args.target for v in verdicts.values()):
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
