"""Type-checks infra/*.bicep the way the Bicep compiler would, against Azure's published type data.

The data is the Bicep compiler's own: generated type definitions from Azure/bicep-types-az
(../shared/azure/bicep-types, plus any file vendored under tests/infra/vendor/ with its source).
For every resource declaration it checks that

- the type@apiVersion exists, and may be deployed at the scope it is declared at;
- every property written exists on the type, recursing into objects, arrays and
  discriminated unions (open maps take any key); no read-only property is written;
- every required property is present (existing resources need only their name);
- literal values fit: string literals and unions (enums), string lengths and patterns,
  integer bounds, booleans; a parameter with @allowed / @minValue / @maxValue is checked
  through all of its allowed values, a variable through its value, a ternary through both
  branches; a `parent` is the resource's parent type;
- reads such as `storage.properties.primaryEndpoints.blob` name real properties;

and for every module: the file exists, the parameters passed are declared, the required ones
are given, values fit their @allowed lists and bounds, and every `module.outputs.x` read
exists. Identifiers, functions and decorators must be known. Each finding names the file and
line. What the compiler knows that this does not (for example the type of a function call's
result) is left unchecked rather than guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
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
    IfBody,
    Index,
    Member,
    Module,
    Null,
    Num,
    Obj,
    Param,
    ParseError,
    Resource,
    Str,
    Ternary,
    Unary,
    parse_text,
    walk,
)

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TYPE_ROOTS = (ROOT.parent / "shared" / "azure" / "bicep-types", ROOT / "tests" / "infra" / "vendor" / "bicep-types")

# bicep-types ScopeType flags.
SCOPES = {"tenant": 1, "managementGroup": 2, "subscription": 4, "resourceGroup": 8}
EXTENSION = 16
FLAG_REQUIRED, FLAG_READONLY = 1, 2

# Properties Bicep itself adds to every resource / module body.
RESOURCE_META = {"parent", "scope", "dependsOn"}
EXISTING_KEYS = {"name", "scope", "parent"}
MODULE_KEYS = {"name", "scope", "params", "dependsOn"}
# Resource members Bicep always offers besides the body type's properties.
RESOURCE_READS = {"id", "name", "type", "apiVersion"}

DECORATORS = {"description", "allowed", "minLength", "maxLength", "minValue", "maxValue", "metadata", "secure",
              "batchSize", "export", "sealed", "discriminator"}
# Bicep's built-in functions (namespace sys) and the az namespace's.
FUNCTIONS = {
    "any", "array", "base64", "base64ToJson", "base64ToString", "bool", "buildUri", "cidrHost", "cidrSubnet",
    "coalesce", "concat", "contains", "dataUri", "dataUriToString", "dateTimeAdd", "dateTimeFromEpoch",
    "dateTimeToEpoch", "deployer", "deployment", "empty", "endsWith", "environment", "extensionResourceId", "filter",
    "first", "flatten", "format", "groupBy", "guid", "indexOf", "int", "intersection", "items", "join", "json",
    "last", "lastIndexOf", "length", "loadFileAsBase64", "loadJsonContent", "loadTextContent", "loadYamlContent",
    "managementGroup", "managementGroupResourceId", "map", "mapValue", "max", "min", "newGuid", "objectKeys",
    "padLeft", "parseCidr", "parseUri", "pickZones", "range", "reduce", "reference", "replace", "resourceGroup",
    "resourceId", "shallowMerge", "skip", "sort", "split", "startsWith", "string", "subscription",
    "subscriptionResourceId", "substring", "take", "tenant", "tenantResourceId", "toLower", "toObject", "toUpper",
    "trim", "tryGet", "union", "uniqueString", "uri", "uriComponent", "uriComponentToString", "utcNow",
}


@dataclass(frozen=True)
class Problem:
    """One finding: where, and what is wrong."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --------------------------------------------------------------------------------------
# Type data
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceTypeInfo:
    name: str
    nodes: list[dict[str, Any]]
    body: int
    readable: int
    writable: int


class TypeData:
    """Every ResourceType in the types.json files under the given roots."""

    def __init__(self, roots: tuple[Path, ...] = TYPE_ROOTS) -> None:
        self.resources: dict[tuple[str, str], ResourceTypeInfo] = {}
        for root in roots:
            for path in sorted(root.rglob("types.json")) if root.exists() else []:
                nodes = json.loads(path.read_text(encoding="utf-8"))
                for node in nodes:
                    if node.get("$type") != "ResourceType":
                        continue
                    rtype, api = node["name"].split("@", 1)
                    readable = node.get("readableScopes", node.get("scopeType", 0))
                    writable = node.get("writableScopes", node.get("scopeType", 0))
                    if "readOnlyScopes" in node:  # older format: scopeType + readOnlyScopes
                        writable = node.get("scopeType", 0)
                        readable = writable | node["readOnlyScopes"]
                    self.resources[(rtype.lower(), api)] = ResourceTypeInfo(
                        rtype, nodes, _ref(node["body"]), readable, writable,
                    )

    def find(self, rtype: str, api: str) -> ResourceTypeInfo | None:
        return self.resources.get((rtype.lower(), api))

    def versions(self, rtype: str) -> list[str]:
        return sorted(api for (t, api) in self.resources if t == rtype.lower())


@cache
def type_data() -> TypeData:
    return TypeData()


def _ref(ref: dict[str, str]) -> int:
    target = ref["$ref"]
    if not target.startswith("#/"):
        raise ValueError(f"cross-file type reference not supported: {target}")
    return int(target[2:])


# --------------------------------------------------------------------------------------
# Checker
# --------------------------------------------------------------------------------------
@dataclass
class IntRange:
    low: int | None
    high: int | None


class Checker:
    def __init__(self, files: dict[str, str], data: TypeData | None = None) -> None:
        self.data = data or type_data()
        self.texts = files
        self.problems: list[Problem] = []
        self.parsed: dict[str, BicepFile] = {}
        for rel, text in files.items():
            try:
                self.parsed[rel] = parse_text(text, Path(rel))
            except ParseError as exc:
                self.problems.append(Problem(rel, 0, f"cannot parse: {exc}"))

    def report(self, rel: str, line: int, message: str) -> None:
        self.problems.append(Problem(rel, line, message))

    def run(self) -> list[Problem]:
        for rel, bicep in self.parsed.items():
            FileChecker(self, rel, bicep).run()
        return sorted(set(self.problems), key=lambda p: (p.file, p.line, p.message))


class FileChecker:
    def __init__(self, owner: Checker, rel: str, bicep: BicepFile) -> None:
        self.owner = owner
        self.rel = rel
        self.f = bicep
        self.data = owner.data

    def report(self, line: int, message: str) -> None:
        self.owner.report(self.rel, line, message)

    # --- entry ---
    def run(self) -> None:
        if self.f.target_scope not in SCOPES:
            self.report(1, f"unknown targetScope {self.f.target_scope!r}")
        for param in self.f.params.values():
            self.check_param(param)
        self.check_identifiers()
        for res in self.f.resources.values():
            self.check_resource(res)
        for mod in self.f.modules.values():
            self.check_module(mod)
        for expr in self.all_expressions():
            for node in walk(expr):
                if isinstance(node, Member):
                    self.check_read(node)

    def all_expressions(self) -> list[Expr]:
        out: list[Expr] = []
        for p in self.f.params.values():
            out += [d for dec in p.decorators for d in dec.args]
            if p.default is not None:
                out.append(p.default)
        out += [v.value for v in self.f.vars.values()]
        out += [r.body for r in self.f.resources.values()]
        out += [m.body for m in self.f.modules.values()]
        out += [o.value for o in self.f.outputs.values()]
        return out

    # --- parameters ---
    def check_param(self, p: Param) -> None:
        base = p.type.rstrip("?")
        for dec in p.decorators:
            if dec.name not in DECORATORS:
                self.report(dec.line, f"param {p.name}: unknown decorator @{dec.name}")
        allowed = self.allowed_values(p)
        kind = {"string": Str, "int": Num, "bool": Bool}.get(base)
        if allowed is not None and kind is not None:
            for value in allowed:
                if not isinstance(value, kind):
                    self.report(p.line, f"param {p.name}: @allowed value {_show(value)} is not a {base}")
        if p.default is not None:
            default = p.default
            if kind is not None and isinstance(default, (Str, Num, Bool)) and not isinstance(default, kind):
                self.report(p.line, f"param {p.name}: default {_show(default)} is not a {base}")
            if allowed is not None and _is_literal(default) and not any(_same(default, a) for a in allowed):
                self.report(p.line, f"param {p.name}: default {_show(default)} is not in its @allowed list")
            rng = self.int_range(p)
            if rng and isinstance(default, Num) and not _in_range(default.value, rng):
                self.report(p.line, f"param {p.name}: default {default.value} is outside @minValue/@maxValue")
            if isinstance(default, Str) and default.literal is not None:
                size = len(default.literal)
                shortest, longest = p.decorator("minLength"), p.decorator("maxLength")
                if shortest and isinstance(shortest.args[0], Num) and size < shortest.args[0].value:
                    self.report(p.line, f"param {p.name}: default is shorter than @minLength")
                if longest and isinstance(longest.args[0], Num) and size > longest.args[0].value:
                    self.report(p.line, f"param {p.name}: default is longer than @maxLength")

    def allowed_values(self, p: Param) -> list[Expr] | None:
        dec = p.decorator("allowed")
        if dec is None:
            return None
        if len(dec.args) != 1 or not isinstance(dec.args[0], Arr):
            self.report(dec.line, f"param {p.name}: @allowed takes one array")
            return None
        return dec.args[0].items

    @staticmethod
    def int_range(p: Param) -> IntRange | None:
        low = p.decorator("minValue")
        high = p.decorator("maxValue")
        if low is None and high is None:
            return None
        lo = low.args[0].value if low and isinstance(low.args[0], Num) else None
        hi = high.args[0].value if high and isinstance(high.args[0], Num) else None
        return IntRange(lo, hi)

    # --- identifiers and functions ---
    def check_identifiers(self) -> None:
        declared = set(self.f.params) | set(self.f.vars) | set(self.f.resources) | set(self.f.modules)
        declared |= {"az", "sys"}
        loop_vars = {name for e in self.all_expressions() for n in walk(e) if isinstance(n, For) for name in n.names}
        for name in sorted((declared | loop_vars) & FUNCTIONS):
            self.report(1, f"{name!r} is the name of a Bicep function: rename the symbol")
        for expr in self.all_expressions():
            for node in walk(expr):
                if isinstance(node, Ident) and node.name not in declared | loop_vars:
                    self.report(node.line, f"unknown identifier {node.name!r}")
                elif isinstance(node, Call):
                    name = node.name.split(".", 1)[-1]
                    if name not in FUNCTIONS and not name.startswith("list"):
                        self.report(node.line, f"unknown function {node.name}()")

    # --- resources ---
    def check_resource(self, res: Resource) -> None:
        info = self.data.find(res.type, res.api_version)
        if info is None:
            known = self.data.versions(res.type)
            hint = f" (type data has: {', '.join(known)})" if known else " (type not in the type data)"
            self.report(res.line, f"resource {res.symbol}: unknown type {res.type}@{res.api_version}{hint}")
            return
        obj = res.object
        self.check_scope(res, info, obj)
        body = info.nodes[info.body]
        if res.existing:
            for prop in obj.props:
                if prop.name not in EXISTING_KEYS:
                    self.report(prop.line, f"resource {res.symbol} (existing): {prop.name!r} cannot be set")
            if obj.get("name") is None:
                self.report(res.line, f"resource {res.symbol}: 'name' is required")
            return
        parent = obj.get("parent")
        if parent is not None:
            self.check_parent(res, parent)
        props = [p for p in obj.props if p.name not in RESOURCE_META]
        self.check_object_props(Obj(props, obj.line), body, info.nodes, res.symbol, require=True)
        for prop in obj.props:
            if prop.name == "dependsOn":
                self.check_depends_on(prop.value)

    def check_scope(self, res: Resource, info: ResourceTypeInfo, obj: Obj) -> None:
        mask = info.readable if res.existing else info.writable
        scope = obj.get("scope")
        scope_symbol = scope.target if isinstance(scope, Index) else scope  # `scope: tables[i]` too
        if scope is None or obj.get("parent") is not None:
            needed, where = SCOPES.get(self.f.target_scope, 0), f"a {self.f.target_scope}"
        elif isinstance(scope_symbol, Ident) and scope_symbol.name in self.f.resources:
            needed, where = EXTENSION, "another resource (extension)"
        elif isinstance(scope, Call) and scope.name in ("resourceGroup", "subscription", "tenant", "managementGroup"):
            needed, where = SCOPES[scope.name], f"a {scope.name}"
        else:
            return
        if mask and not mask & needed:
            self.report(res.line, f"resource {res.symbol}: {res.type} cannot be deployed at {where} scope")

    def check_parent(self, res: Resource, parent: Expr) -> None:
        if not isinstance(parent, Ident) or parent.name not in self.f.resources:
            self.report(parent.line, f"resource {res.symbol}: parent must be a resource symbol")
            return
        expected = res.type.rsplit("/", 1)[0]
        actual = self.f.resources[parent.name].type
        if actual.lower() != expected.lower():
            self.report(parent.line, f"resource {res.symbol}: parent {parent.name} is a {actual}, not a {expected}")

    def check_depends_on(self, value: Expr) -> None:
        if not isinstance(value, Arr):
            return
        for item in value.items:
            target = item.target if isinstance(item, Index) else item
            if not (isinstance(target, Ident) and (target.name in self.f.resources or target.name in self.f.modules)):
                self.report(item.line, "dependsOn entries must be resources or modules")

    # --- values against types ---
    def node(self, nodes: list[dict[str, Any]], ref: dict[str, str] | int) -> dict[str, Any]:
        return nodes[ref if isinstance(ref, int) else _ref(ref)]

    def check_object_props(self, obj: Obj, t: dict[str, Any], nodes: list[dict[str, Any]], path: str,
                           require: bool) -> None:
        errors = self.object_errors(obj, t, nodes, path, require)
        for line, message in errors:
            self.report(line, message)

    def object_errors(self, obj: Obj, t: dict[str, Any], nodes: list[dict[str, Any]], path: str,
                      require: bool = True) -> list[tuple[int, str]]:
        kind = t["$type"]
        if kind == "AnyType":
            return []
        if kind == "DiscriminatedObjectType":
            return self.discriminated_errors(obj, t, nodes, path)
        if kind == "UnionType":
            return self.union_errors(obj, t, nodes, path)
        if kind != "ObjectType":
            return [(obj.line, f"{path}: an object is not allowed here (expects {_describe(t, nodes)})")]
        props: dict[str, dict[str, Any]] = t.get("properties", {})
        extra = t.get("additionalProperties")
        errors: list[tuple[int, str]] = []
        for prop in obj.props:
            name = prop.name
            sub = f"{path}.{name}" if name is not None else f"{path}[computed key]"
            if name is not None and name in props:
                spec = props[name]
                if spec.get("flags", 0) & FLAG_READONLY:
                    errors.append((prop.line, f"{sub}: read-only property cannot be set"))
                    continue
                errors += self.value_errors(prop.value, spec["type"], nodes, sub)
            elif name is not None and any(k.lower() == name.lower() for k in props):
                right = next(k for k in props if k.lower() == name.lower())
                errors.append((prop.line, f"{sub}: wrong case, the property is {right!r}"))
            elif extra is not None:
                errors += self.value_errors(prop.value, extra, nodes, sub)
            else:
                known = ", ".join(sorted(k for k, v in props.items() if not v.get("flags", 0) & FLAG_READONLY))
                errors.append((prop.line, f"{sub}: unknown property (writable: {known})"))
        if require:
            given = {p.name for p in obj.props}
            for name, spec in props.items():
                if spec.get("flags", 0) & FLAG_REQUIRED and name not in given:
                    errors.append((obj.line, f"{path}: required property {name!r} is missing"))
        return errors

    def discriminated_errors(self, obj: Obj, t: dict[str, Any], nodes: list[dict[str, Any]],
                             path: str) -> list[tuple[int, str]]:
        key = t["discriminator"]
        value = obj.get(key)
        literal = value.literal if isinstance(value, Str) else None
        base = dict(t.get("baseProperties", {}))
        elements: dict[str, Any] = t["elements"]
        if value is None:
            return [(obj.line, f"{path}: {key!r} is required (one of {', '.join(sorted(elements))})")]
        if literal is None:  # not known here: accept what any variant accepts
            merged = dict(base)
            for ref in elements.values():
                merged.update(self.node(nodes, ref).get("properties", {}))
            return self.object_errors(obj, {"$type": "ObjectType", "properties": merged}, nodes, path, require=False)
        if literal not in elements:
            line = next(p.line for p in obj.props if p.name == key)
            return [(line, f"{path}.{key}: {literal!r} is not one of {', '.join(sorted(elements))}")]
        variant = self.node(nodes, elements[literal])
        merged = {**base, **variant.get("properties", {})}
        merged_type = {"$type": "ObjectType", "properties": merged}
        if "additionalProperties" in variant:
            merged_type["additionalProperties"] = variant["additionalProperties"]
        return self.object_errors(obj, merged_type, nodes, f"{path}<{literal}>")

    def union_errors(self, expr: Expr, t: dict[str, Any], nodes: list[dict[str, Any]],
                     path: str) -> list[tuple[int, str]]:
        best: list[tuple[int, str]] | None = None
        for ref in t["elements"]:
            errors = self.value_errors(expr, ref, nodes, path)
            if not errors:
                return []
            if best is None or len(errors) < len(best):
                best = errors
        if _is_scalar_literal(expr):
            return [(expr.line, f"{path}: {_show(expr)} is not allowed (expects {_describe(t, nodes)})")]
        return best or []

    def value_errors(self, expr: Expr, ref: dict[str, str] | int | None, nodes: list[dict[str, Any]], path: str,
                     depth: int = 0) -> list[tuple[int, str]]:
        if ref is None or depth > 20:
            return []
        t = self.node(nodes, ref)
        kind = t["$type"]
        if kind == "AnyType" or isinstance(expr, Null):
            return []
        if isinstance(expr, Ternary):
            return (self.value_errors(expr.then, ref, nodes, path, depth + 1)
                    + self.value_errors(expr.otherwise, ref, nodes, path, depth + 1))
        if isinstance(expr, Ident):
            return self.ident_errors(expr, ref, nodes, path, depth)
        if kind == "UnionType":
            return self.union_errors(expr, t, nodes, path)
        if isinstance(expr, Obj):
            return self.object_errors(expr, t, nodes, path)
        if isinstance(expr, (Arr, For)):
            if kind != "ArrayType":
                return [(expr.line, f"{path}: an array is not allowed here (expects {_describe(t, nodes)})")]
            if isinstance(expr, For):
                body = expr.body.body if isinstance(expr.body, IfBody) else expr.body
                return self.value_errors(body, t["itemType"], nodes, f"{path}[]", depth + 1)
            errors: list[tuple[int, str]] = []
            if "maxLength" in t and len(expr.items) > t["maxLength"]:
                errors.append((expr.line, f"{path}: at most {t['maxLength']} items"))
            if "minLength" in t and len(expr.items) < t["minLength"]:
                errors.append((expr.line, f"{path}: at least {t['minLength']} items"))
            for i, item in enumerate(expr.items):
                errors += self.value_errors(item, t["itemType"], nodes, f"{path}[{i}]", depth + 1)
            return errors
        if isinstance(expr, Str):
            return self.string_errors(expr, t, nodes, path)
        if isinstance(expr, Num):
            if kind != "IntegerType":
                return [(expr.line, f"{path}: {expr.value} is not allowed (expects {_describe(t, nodes)})")]
            if not _in_range(expr.value, IntRange(t.get("minValue"), t.get("maxValue"))):
                return [(expr.line, f"{path}: {expr.value} is outside {t.get('minValue')}..{t.get('maxValue')}")]
            return []
        if isinstance(expr, Bool):
            if kind != "BooleanType":
                return [(expr.line, f"{path}: {_show(expr)} is not allowed (expects {_describe(t, nodes)})")]
            return []
        if isinstance(expr, (Binary, Unary)) and kind in ("ObjectType", "ArrayType", "StringLiteralType"):
            op = expr.op
            if op in ("==", "!=", "=~", "!~", "<", ">", "<=", ">=", "&&", "||", "!"):
                return [(expr.line, f"{path}: a bool is not allowed (expects {_describe(t, nodes)})")]
        return []  # calls, member reads, arithmetic: the compiler knows their types, this check does not

    def string_errors(self, expr: Str, t: dict[str, Any], nodes: list[dict[str, Any]],
                      path: str) -> list[tuple[int, str]]:
        kind = t["$type"]
        value = expr.literal
        if kind == "StringLiteralType":
            if value is not None and value != t["value"]:
                return [(expr.line, f"{path}: {value!r} is not allowed (expects {t['value']!r})")]
            return []
        if kind != "StringType":
            return [(expr.line, f"{path}: a string is not allowed (expects {_describe(t, nodes)})")]
        if value is None:
            return []
        if "minLength" in t and len(value) < t["minLength"]:
            return [(expr.line, f"{path}: {value!r} is shorter than {t['minLength']}")]
        if "maxLength" in t and len(value) > t["maxLength"]:
            return [(expr.line, f"{path}: {value!r} is longer than {t['maxLength']}")]
        pattern = t.get("pattern")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error:
                return []  # a .NET-only construct: not checkable here
            if not compiled.search(value):
                return [(expr.line, f"{path}: {value!r} does not match {pattern}")]
        return []

    def ident_errors(self, expr: Ident, ref: dict[str, str] | int, nodes: list[dict[str, Any]], path: str,
                     depth: int) -> list[tuple[int, str]]:
        if expr.name in self.f.vars:
            return self.value_errors(self.f.vars[expr.name].value, ref, nodes, path, depth + 1)
        param = self.f.params.get(expr.name)
        if param is None:
            return []
        t = self.node(nodes, ref)
        allowed = self.allowed_values(param)
        errors: list[tuple[int, str]] = []
        if allowed is not None:
            for value in allowed:
                for line, message in self.value_errors(value, ref, nodes, path, depth + 1):
                    errors.append((expr.line, f"{message} [through @allowed of param {param.name}, line {line}]"))
            return errors
        base = param.type.rstrip("?")
        if t["$type"] == "IntegerType" and base == "int":
            rng = self.int_range(param) or IntRange(None, None)
            low, high = t.get("minValue"), t.get("maxValue")
            if (low is not None and (rng.low is None or rng.low < low)) or (
                high is not None and (rng.high is None or rng.high > high)
            ):
                errors.append((expr.line, f"{path}: param {param.name} may be outside {low}..{high}; bound it with "
                                          "@minValue/@maxValue"))
        expected = {"StringType": "string", "IntegerType": "int", "BooleanType": "bool", "ObjectType": "object",
                    "ArrayType": "array"}.get(t["$type"])
        if expected and base != expected and not (expected == "array" and base.endswith("[]")):
            errors.append((expr.line, f"{path}: param {param.name} is a {base}, expected {expected}"))
        return errors

    # --- reads of resource properties and module outputs ---
    def check_read(self, node: Member) -> None:
        chain: list[str] = []
        cur: Expr = node
        while isinstance(cur, (Member, Index)):
            if isinstance(cur, Member):
                chain.append(cur.name)
            cur = cur.target
        if not isinstance(cur, Ident):
            return
        chain.reverse()
        if cur.name in self.f.modules:
            if chain and chain[0] == "outputs" and len(chain) >= 2 and node.name == chain[1]:
                self.check_output_read(self.f.modules[cur.name], chain[1], node.line)
            return
        res = self.f.resources.get(cur.name)
        if res is None or not chain or node.name != chain[-1]:
            return
        info = self.data.find(res.type, res.api_version)
        if info is None:
            return
        t = info.nodes[info.body]
        walked: list[str] = []
        for name in chain:
            if not walked and name in RESOURCE_READS:
                return
            props = self.readable_props(t, info.nodes)
            if props is None:
                return  # open map or any: every key is fine
            if name not in props:
                self.report(node.line, f"{cur.name}.{'.'.join([*walked, name])}: {res.type} has no such property")
                return
            t = self.node(info.nodes, props[name]["type"])
            while t["$type"] == "ArrayType":
                t = self.node(info.nodes, t["itemType"])
            walked.append(name)

    def readable_props(self, t: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any] | None:
        if t["$type"] == "ObjectType":
            if "additionalProperties" in t and not t.get("properties"):
                return None
            return t.get("properties", {})
        if t["$type"] == "DiscriminatedObjectType":
            merged = dict(t.get("baseProperties", {}))
            for ref in t["elements"].values():
                merged.update(self.node(nodes, ref).get("properties", {}))
            return merged
        return None

    def module_file(self, mod: Module) -> BicepFile | None:
        rel = (Path(self.rel).parent / mod.path).as_posix()
        rel = str(Path(rel)).replace("\\", "/")
        parts: list[str] = []
        for part in rel.split("/"):
            if part == "..":
                parts.pop()
            elif part not in (".", ""):
                parts.append(part)
        return self.owner.parsed.get("/".join(parts))

    def check_output_read(self, mod: Module, name: str, line: int) -> None:
        target = self.module_file(mod)
        if target is not None and name not in target.outputs:
            self.report(line, f"{mod.symbol}.outputs.{name}: module {mod.path} has no such output")

    # --- modules ---
    def check_module(self, mod: Module) -> None:
        target = self.module_file(mod)
        if target is None:
            self.report(mod.line, f"module {mod.symbol}: {mod.path} not found")
            return
        obj = mod.object
        for prop in obj.props:
            if prop.name not in MODULE_KEYS:
                self.report(prop.line, f"module {mod.symbol}: unknown property {prop.name!r}")
        params = obj.get("params")
        given: dict[str, tuple[Expr, int]] = {}
        if isinstance(params, Obj):
            given = {p.name: (p.value, p.line) for p in params.props if p.name is not None}
        for name, (value, line) in given.items():
            declared = target.params.get(name)
            if declared is None:
                self.report(line, f"module {mod.symbol}: {mod.path} has no parameter {name!r}")
                continue
            self.check_module_value(mod, declared, value, line)
        for name, declared in target.params.items():
            if declared.default is None and not declared.type.endswith("?") and name not in given:
                self.report(mod.line, f"module {mod.symbol}: required parameter {name!r} of {mod.path} is missing")
        for prop in obj.props:
            if prop.name == "dependsOn":
                self.check_depends_on(prop.value)

    def check_module_value(self, mod: Module, declared: Param, value: Expr, line: int) -> None:
        candidates = self.candidates(value)
        kinds: dict[str, type | tuple[type, ...]] = {"string": Str, "int": Num, "bool": Bool, "object": Obj,
                                                     "array": (Arr, For)}
        kind = kinds.get(declared.type.rstrip("?"))
        allowed = list(self.owner_allowed(declared) or [])
        rng = FileChecker.int_range(declared)
        where = f"module {mod.symbol}: parameter {declared.name}"
        for cand in candidates:
            if kind is not None and _is_literal(cand) and not isinstance(cand, kind):
                self.report(line, f"{where}: {_show(cand)} is not a {declared.type}")
            elif allowed and _is_literal(cand) and not any(_same(cand, a) for a in allowed):
                self.report(line, f"{where}: {_show(cand)} is not in its @allowed list")
            elif rng and isinstance(cand, Num) and not _in_range(cand.value, rng):
                self.report(line, f"{where}: {cand.value} is outside @minValue/@maxValue")
        if rng and isinstance(value, Ident) and value.name in self.f.params:
            outer = FileChecker.int_range(self.f.params[value.name]) or IntRange(None, None)
            if (rng.low is not None and (outer.low is None or outer.low < rng.low)) or (
                rng.high is not None and (outer.high is None or outer.high > rng.high)
            ):
                self.report(line, f"{where}: the range of {value.name} is wider than the module's")

    def owner_allowed(self, p: Param) -> list[Expr] | None:
        dec = p.decorator("allowed")
        if dec is None or not dec.args or not isinstance(dec.args[0], Arr):
            return None
        return dec.args[0].items

    def candidates(self, value: Expr, depth: int = 0) -> list[Expr]:
        """The literal values an expression can take, as far as they are known here."""
        if depth > 20:
            return []
        if isinstance(value, Ternary):
            return self.candidates(value.then, depth + 1) + self.candidates(value.otherwise, depth + 1)
        if isinstance(value, Ident):
            if value.name in self.f.vars:
                return self.candidates(self.f.vars[value.name].value, depth + 1)
            param = self.f.params.get(value.name)
            if param is not None:
                return list(self.allowed_values(param) or [])
            return []
        return [value] if _is_literal(value) else []


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def _is_literal(expr: Expr) -> bool:
    if isinstance(expr, Str):
        return expr.literal is not None
    return isinstance(expr, (Num, Bool, Obj, Arr, For))


def _is_scalar_literal(expr: Expr) -> bool:
    return (isinstance(expr, Str) and expr.literal is not None) or isinstance(expr, (Num, Bool))


def _same(a: Expr, b: Expr) -> bool:
    if isinstance(a, Str) and isinstance(b, Str):
        return a.literal == b.literal
    if isinstance(a, Num) and isinstance(b, Num):
        return a.value == b.value
    if isinstance(a, Bool) and isinstance(b, Bool):
        return a.value == b.value
    return False


def _in_range(value: int, rng: IntRange) -> bool:
    return (rng.low is None or value >= rng.low) and (rng.high is None or value <= rng.high)


def _show(expr: Expr) -> str:
    if isinstance(expr, Str):
        return repr(expr.literal) if expr.literal is not None else "an interpolated string"
    if isinstance(expr, Num):
        return str(expr.value)
    if isinstance(expr, Bool):
        return "true" if expr.value else "false"
    return type(expr).__name__.lower()


def _describe(t: dict[str, Any], nodes: list[dict[str, Any]], depth: int = 0) -> str:
    kind = t["$type"]
    if kind == "StringLiteralType":
        return repr(t["value"])
    if kind == "UnionType" and depth < 2:
        return " | ".join(_describe(nodes[_ref(e)], nodes, depth + 1) for e in t["elements"])
    return {"StringType": "string", "IntegerType": "int", "BooleanType": "bool", "ArrayType": "array",
            "ObjectType": "object", "DiscriminatedObjectType": "object", "AnyType": "any"}.get(kind, kind)


def infra_texts() -> dict[str, str]:
    """Every .bicep file under infra/, by path relative to infra/."""
    return {p.relative_to(INFRA).as_posix(): p.read_text(encoding="utf-8") for p in sorted(INFRA.rglob("*.bicep"))}


def check(files: dict[str, str] | None = None) -> list[Problem]:
    """All problems in the given Bicep texts (default: infra/)."""
    return Checker(files if files is not None else infra_texts()).run()
