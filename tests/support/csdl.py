"""The Microsoft Graph v1.0 CSDL as a checker for payloads the service builds or parses.

Why: Graph silently ignores (or rejects at run time, in one tenant out of many) a
misspelt property, a wrong enum member or a ``dateTimeTimeZone`` with an offset. The
official metadata (``../shared/graph/graph-v1.0-csdl.xml`` beside the project root)
is the authority, so tests check every request body, every ``$select`` field and
every docs-shaped response fixture against it instead of against our own memory.

    model = graph_model()
    assert model.validate("event", body) == []
    assert model.validate_action_body("getSchedule", "calendar", body) == []
    assert {"start", "end"} <= model.properties("event")

Type names may be given as ``event``, ``graph.event`` or ``microsoft.graph.event``.
Keys starting with ``@`` or containing ``@odata`` (annotations) are ignored; a payload's
``@odata.type`` switches validation to that (derived) type.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_DEFAULT_NS = "microsoft.graph"
_COLLECTION = re.compile(r"^Collection\((.+)\)$")
# dateTimeTimeZone.dateTime is a local wall-clock time: no offset, no "Z" (the zone is in timeZone).
_LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?$")

CSDL_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "graph" / "graph-v1.0-csdl.xml"


@dataclass(slots=True)
class StructuredType:
    """An EntityType or ComplexType: its own (not inherited) properties and its base."""

    name: str  # fully qualified
    kind: str  # "entity" | "complex"
    base: str | None
    properties: dict[str, str] = field(default_factory=dict)  # name -> qualified type
    navigation: dict[str, str] = field(default_factory=dict)
    open_type: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """An Action or Function: bound type (qualified, maybe Collection(...)) and parameters."""

    name: str
    kind: str  # "action" | "function"
    binding_type: str | None
    parameters: dict[str, str]  # parameter name -> qualified type (binding parameter excluded)


@dataclass(frozen=True, slots=True)
class EnumType:
    name: str
    members: frozenset[str]
    is_flags: bool


class GraphModel:
    """The parsed metadata: structured types, enums and operations, with lookups and validation."""

    def __init__(self, root: ET.Element) -> None:
        self.types: dict[str, StructuredType] = {}
        self.enums: dict[str, EnumType] = {}
        self.operations: list[Operation] = []
        self._aliases: dict[str, str] = {}
        schemas = list(root.iter(f"{_EDM}Schema"))
        for schema in schemas:
            ns = schema.attrib["Namespace"]
            self._aliases[ns] = ns
            if "Alias" in schema.attrib:
                self._aliases[schema.attrib["Alias"]] = ns
        for schema in schemas:
            self._load_schema(schema)

    # --- loading -------------------------------------------------------------------

    def _qualify(self, type_ref: str, ns: str = _DEFAULT_NS) -> str:
        """Expand an alias-qualified or bare name to a fully qualified one; keeps Collection()."""
        match = _COLLECTION.match(type_ref)
        if match:
            return f"Collection({self._qualify(match.group(1), ns)})"
        if type_ref.startswith("Edm."):
            return type_ref
        if "." not in type_ref:
            return f"{ns}.{type_ref}"
        prefix, _, local = type_ref.rpartition(".")
        return f"{self._aliases.get(prefix, prefix)}.{local}"

    def _load_schema(self, schema: ET.Element) -> None:
        ns = schema.attrib["Namespace"]
        for child in schema:
            tag = child.tag.removeprefix(_EDM)
            if tag in ("EntityType", "ComplexType"):
                qname = f"{ns}.{child.attrib['Name']}"
                base = child.attrib.get("BaseType")
                stype = StructuredType(
                    name=qname,
                    kind="entity" if tag == "EntityType" else "complex",
                    base=self._qualify(base, ns) if base else None,
                    open_type=child.attrib.get("OpenType") == "true",
                )
                for prop in child:
                    ptag = prop.tag.removeprefix(_EDM)
                    if ptag == "Property":
                        stype.properties[prop.attrib["Name"]] = self._qualify(prop.attrib["Type"], ns)
                    elif ptag == "NavigationProperty":
                        stype.navigation[prop.attrib["Name"]] = self._qualify(prop.attrib["Type"], ns)
                self.types[qname] = stype
            elif tag == "EnumType":
                qname = f"{ns}.{child.attrib['Name']}"
                members = frozenset(m.attrib["Name"] for m in child if m.tag == f"{_EDM}Member")
                self.enums[qname] = EnumType(qname, members, child.attrib.get("IsFlags") == "true")
            elif tag in ("Action", "Function"):
                params = [p for p in child if p.tag == f"{_EDM}Parameter"]
                binding: str | None = None
                if child.attrib.get("IsBound") == "true" and params:
                    binding = self._qualify(params[0].attrib["Type"], ns)
                    params = params[1:]
                self.operations.append(
                    Operation(
                        name=child.attrib["Name"],
                        kind=tag.lower(),
                        binding_type=binding,
                        parameters={p.attrib["Name"]: self._qualify(p.attrib["Type"], ns) for p in params},
                    )
                )

    # --- lookups -------------------------------------------------------------------

    def resolve(self, type_name: str) -> str:
        """The fully qualified name of a structured or enum type; KeyError if unknown."""
        name = type_name.lstrip("#")
        for candidate in (name, self._qualify(name)):
            if candidate in self.types or candidate in self.enums:
                return candidate
        # Graph writes some type names with other casing on the wire, e.g. change
        # notifications carry "#Microsoft.Graph.Event" in resourceData.
        folded = {n.lower(): n for n in (*self.types, *self.enums)}
        for candidate in (name, self._qualify(name)):
            if candidate.lower() in folded:
                return folded[candidate.lower()]
        raise KeyError(f"unknown Graph type {type_name!r}")

    def lineage(self, type_name: str) -> list[StructuredType]:
        """The type and its BaseType chain, most derived first."""
        chain: list[StructuredType] = []
        current: str | None = self.resolve(type_name)
        while current is not None:
            stype = self.types[current]
            chain.append(stype)
            current = stype.base
        return chain

    def is_a(self, type_name: str, ancestor: str) -> bool:
        """True when ``type_name`` is ``ancestor`` or derives from it."""
        target = self.resolve(ancestor)
        return any(t.name == target for t in self.lineage(type_name))

    def property_types(self, type_name: str) -> dict[str, str]:
        """Every structural and navigation property (inherited included) with its qualified type."""
        out: dict[str, str] = {}
        for stype in reversed(self.lineage(type_name)):
            out.update(stype.properties)
            out.update(stype.navigation)
        return out

    def properties(self, type_name: str) -> set[str]:
        """Property names usable in ``$select``/``$expand``, inherited and navigation included."""
        return set(self.property_types(type_name))

    def enum_members(self, name: str) -> set[str]:
        """Members of an EnumType (e.g. ``attendeeType`` -> required, optional, resource)."""
        return set(self.enums[self.resolve(name)].members)

    def find_operations(self, name: str, binding_type: str | None) -> list[Operation]:
        """Actions/functions called ``name`` bound to ``binding_type`` (or a base of it), or unbound."""
        found: list[Operation] = []
        for op in self.operations:
            if op.name != name:
                continue
            if binding_type is None:
                if op.binding_type is None:
                    found.append(op)
                continue
            if op.binding_type is None:
                continue
            want_coll = _COLLECTION.match(binding_type)
            have_coll = _COLLECTION.match(op.binding_type)
            if bool(want_coll) != bool(have_coll) and want_coll is not None:
                continue
            want = want_coll.group(1) if want_coll else binding_type
            have = have_coll.group(1) if have_coll else op.binding_type
            if have in self.types and self.is_a(want, have):
                found.append(op)
        return found

    # --- validation ----------------------------------------------------------------

    def validate(self, type_name: str, payload: Any) -> list[str]:
        """Problems with ``payload`` as an instance of ``type_name`` (empty list = valid)."""
        problems: list[str] = []
        qname = self.resolve(type_name)
        self._check_value(f"Collection({qname})" if isinstance(payload, list) else qname, payload,
                          qname.rpartition(".")[2], problems)
        return problems

    def validate_action_body(self, action_name: str, binding_type: str | None, payload: Any) -> list[str]:
        """Problems with a POST body for an action (parameter names match case-insensitively,
        as Graph does: the CSDL spells getSchedule's ``Schedules``, clients send ``schedules``)."""
        ops = [op for op in self.find_operations(action_name, binding_type) if op.kind == "action"]
        if not ops:
            return [f"no action {action_name!r} bound to {binding_type!r}"]
        if not isinstance(payload, dict):
            return [f"{action_name}: body must be a JSON object"]
        best: list[str] | None = None
        for op in ops:
            problems: list[str] = []
            params = {k.lower(): (k, t) for k, t in op.parameters.items()}
            for key, value in payload.items():
                if _is_annotation(key):
                    continue
                if key.lower() not in params:
                    problems.append(f"{action_name}: unknown parameter {key!r}")
                    continue
                _name, ptype = params[key.lower()]
                self._check_value(ptype, value, f"{action_name}.{key}", problems)
            if not problems:
                return []
            if best is None or len(problems) < len(best):
                best = problems
        return best or []

    def _check_value(self, type_ref: str, value: Any, path: str, problems: list[str]) -> None:
        if value is None:
            return
        coll = _COLLECTION.match(type_ref)
        if coll:
            if not isinstance(value, list):
                problems.append(f"{path}: expected a JSON array for {type_ref}")
                return
            for i, item in enumerate(value):
                self._check_value(coll.group(1), item, f"{path}[{i}]", problems)
            return
        if type_ref.startswith("Edm."):
            _check_primitive(type_ref, value, path, problems)
            return
        if type_ref in self.enums:
            self._check_enum(self.enums[type_ref], value, path, problems)
            return
        if type_ref in self.types:
            self._check_structured(type_ref, value, path, problems)
            return
        problems.append(f"{path}: type {type_ref} is not in the metadata")

    def _check_enum(self, enum: EnumType, value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, str):
            problems.append(f"{path}: enum {enum.name} needs a string, got {type(value).__name__}")
            return
        parts = [p.strip() for p in value.split(",")] if enum.is_flags else [value]
        for part in parts:
            if part not in enum.members:
                problems.append(f"{path}: {part!r} is not a member of {enum.name.rpartition('.')[2]}")

    def _check_structured(self, type_ref: str, value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a JSON object for {type_ref}")
            return
        actual = type_ref
        odata_type = value.get("@odata.type")
        if isinstance(odata_type, str):
            try:
                actual = self.resolve(odata_type)
            except KeyError:
                problems.append(f"{path}: @odata.type {odata_type!r} is not in the metadata")
                return
            declared = self.types.get(self.resolve(type_ref))
            open_declared = declared is not None and declared.open_type
            # An open type (e.g. resourceData) may carry an instance of any type.
            if actual in self.types and not open_declared and not self.is_a(actual, type_ref):
                problems.append(f"{path}: @odata.type {odata_type!r} does not derive from {type_ref}")
                return
        props = self.property_types(actual)
        for key, item in value.items():
            if _is_annotation(key):
                continue
            if key not in props:
                problems.append(f"{path}: unknown property {key!r} of {actual.rpartition('.')[2]}")
                continue
            self._check_value(props[key], item, f"{path}.{key}", problems)
        if actual == f"{_DEFAULT_NS}.dateTimeTimeZone":
            _check_date_time_time_zone(value, path, problems)


def _is_annotation(key: str) -> bool:
    return key.startswith("@") or "@odata" in key


def _check_date_time_time_zone(value: dict[str, Any], path: str, problems: list[str]) -> None:
    """``dateTime`` is wall-clock time without offset; ``timeZone`` names its zone."""
    dt = value.get("dateTime")
    if not isinstance(dt, str) or not _LOCAL_DATETIME.match(dt):
        problems.append(f"{path}.dateTime: expected local 'YYYY-MM-DDTHH:MM:SS[.fffffff]' without offset, got {dt!r}")
    tz = value.get("timeZone")
    if tz is not None and (not isinstance(tz, str) or not tz):
        problems.append(f"{path}.timeZone: expected a time-zone name, got {tz!r}")


def _check_primitive(type_ref: str, value: Any, path: str, problems: list[str]) -> None:
    ok: bool
    if type_ref in ("Edm.String", "Edm.Guid", "Edm.Date", "Edm.TimeOfDay", "Edm.Duration", "Edm.Binary"):
        ok = isinstance(value, str)
    elif type_ref == "Edm.Boolean":
        ok = isinstance(value, bool)
    elif type_ref in ("Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_ref in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif type_ref == "Edm.DateTimeOffset":
        ok = isinstance(value, str) and _parses_with_offset(value)
    else:  # Edm.Stream, Edm.Untyped, geography types: anything goes
        ok = True
    if not ok:
        problems.append(f"{path}: {value!r} is not a valid {type_ref}")


def _parses_with_offset(text: str) -> bool:
    try:
        # Graph sends up to 7 fractional digits; Python parses at most 6.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text)
        parsed = datetime.fromisoformat(trimmed.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


@functools.cache
def graph_model(path: str | None = None) -> GraphModel:
    """The parsed Graph v1.0 metadata (parsed once per test session)."""
    source = Path(path) if path else CSDL_PATH
    if not source.is_file():
        raise FileNotFoundError(
            f"Graph CSDL not found at {source}: shared/ must sit beside the project root (see shared/graph/README.md)"
        )
    return GraphModel(ET.parse(source).getroot())  # noqa: S314 - trusted, read-only Microsoft metadata
