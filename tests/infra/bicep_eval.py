"""Evaluates the deploy-time-constant parts of a Bicep file (parameters, variables, plain
functions) the way Azure Resource Manager would, so tests can check what a template computes
for given parameter values: guards, network rules, names. ARM's `if()` (Bicep's `?:`) is lazy,
as it is here; `int()` of a non-number raises GuardFailed, the error a guard relies on.
Anything that needs a deployment (resource properties, module outputs, reference()) raises
Unevaluable."""

from __future__ import annotations

from typing import Any

from tests.infra.bicep_parse import (
    Arr,
    BicepFile,
    Binary,
    Bool,
    Call,
    Expr,
    For,
    Ident,
    Index,
    Member,
    Null,
    Num,
    Obj,
    Str,
    Ternary,
    Unary,
)


class Unevaluable(Exception):
    """The expression needs something only a deployment knows."""


class GuardFailed(Exception):
    """int() of a non-number: the template deliberately fails the deployment with this message."""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GuardFailed(str(value)) from None


FUNCTIONS: dict[str, Any] = {
    # ARM's string comparisons in these functions are case-insensitive.
    "startsWith": lambda s, p: s.lower().startswith(p.lower()),
    "endsWith": lambda s, p: s.lower().endswith(p.lower()),
    "contains": lambda c, v: (v.lower() in c.lower()) if isinstance(c, str) else (v in c),
    "empty": lambda v: v is None or len(v) == 0,
    "length": len,
    "split": lambda s, sep: s.split(sep),
    "replace": lambda s, a, b: s.replace(a, b),
    "toLower": lambda s: s.lower(),
    "toUpper": lambda s: s.upper(),
    "join": lambda items, sep: sep.join(items),
    "first": lambda v: v[0],
    "last": lambda v: v[-1],
    "take": lambda v, n: v[:n],
    "int": _int,
    "string": lambda v: v if isinstance(v, str) else str(v),
}


class Evaluator:
    def __init__(self, bicep: BicepFile, params: dict[str, Any]) -> None:
        self.f = bicep
        self.values: dict[str, Any] = {}
        for name, param in bicep.params.items():
            if name in params:
                self.values[name] = params[name]
            elif param.default is not None:
                self.values[name] = self.eval(param.default)
        unknown = set(params) - set(bicep.params)
        if unknown:
            raise KeyError(f"not parameters of {bicep.path}: {sorted(unknown)}")

    def var(self, name: str) -> Any:
        return self.eval(self.f.vars[name].value)

    def eval(self, expr: Expr, scope: dict[str, Any] | None = None) -> Any:
        scope = scope or {}
        if isinstance(expr, Str):
            return "".join(p if isinstance(p, str) else str(self.eval(p, scope)) for p in expr.parts)
        if isinstance(expr, (Num, Bool)):
            return expr.value
        if isinstance(expr, Null):
            return None
        if isinstance(expr, Ident):
            if expr.name in scope:
                return scope[expr.name]
            if expr.name in self.values:
                return self.values[expr.name]
            if expr.name in self.f.vars:
                return self.var(expr.name)
            if expr.name in self.f.params:
                raise KeyError(f"parameter {expr.name} has no value")
            raise Unevaluable(expr.name)
        if isinstance(expr, Obj):
            return {p.name if p.name is not None else self.eval(p.key, scope): self.eval(p.value, scope)
                    for p in expr.props}
        if isinstance(expr, Arr):
            return [self.eval(item, scope) for item in expr.items]
        if isinstance(expr, For):
            items = self.eval(expr.iterable, scope)
            out = []
            for i, item in enumerate(items):
                inner = dict(scope)
                inner[expr.names[0]] = item
                if len(expr.names) > 1:
                    inner[expr.names[1]] = i
                out.append(self.eval(expr.body, inner))
            return out
        if isinstance(expr, Ternary):
            return self.eval(expr.then if self.eval(expr.condition, scope) else expr.otherwise, scope)
        if isinstance(expr, Unary):
            value = self.eval(expr.operand, scope)
            return (not value) if expr.op == "!" else -value
        if isinstance(expr, Binary):
            return self.binary(expr, scope)
        if isinstance(expr, Call):
            fn = FUNCTIONS.get(expr.name)
            if fn is None:
                raise Unevaluable(f"{expr.name}()")
            return fn(*[self.eval(a, scope) for a in expr.args])
        if isinstance(expr, Index):
            return self.eval(expr.target, scope)[self.eval(expr.index, scope)]
        if isinstance(expr, Member):
            target = self.eval(expr.target, scope)
            if isinstance(target, dict):
                return target[expr.name]
            raise Unevaluable(expr.name)
        raise Unevaluable(type(expr).__name__)

    def binary(self, expr: Binary, scope: dict[str, Any]) -> Any:
        op = expr.op
        left = self.eval(expr.left, scope)
        if op == "&&":
            return left and self.eval(expr.right, scope)
        if op == "||":
            return left or self.eval(expr.right, scope)
        if op == "??":
            return left if left is not None else self.eval(expr.right, scope)
        right = self.eval(expr.right, scope)
        if op in ("==", "!="):
            same = left == right
            return same if op == "==" else not same
        if op in ("=~", "!~"):
            same = str(left).lower() == str(right).lower()
            return same if op == "=~" else not same
        ops = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
               ">=": lambda a, b: a >= b, "+": lambda a, b: a + b, "-": lambda a, b: a - b,
               "*": lambda a, b: a * b, "/": lambda a, b: a // b, "%": lambda a, b: a % b}
        return ops[op](left, right)
