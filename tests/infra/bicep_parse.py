"""A Bicep parser for the infra checks: tokens, expressions and declarations, with line numbers.

No Bicep compiler can be installed here (it downloads a binary), so tests/infra/bicep_check.py
type-checks the templates against Azure's published type data itself, and needs a real syntax
tree for that: objects and arrays (newline- or comma-separated), strings with `${}`
interpolation and `'''` multi-line strings, ternaries, binary and unary operators, member and
index access (with `.?`/`[?]`), calls (`az.`/`sys.` namespaced too), `[for ...]` loops and
`if (...)` conditions, decorators, and every declaration the templates use. Anything else is
a ParseError naming the line, never silently skipped, so a construct this parser does not
know cannot hide a mistake from the checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


class ParseError(Exception):
    """Bicep text this parser cannot read (with the file and line)."""


# --------------------------------------------------------------------------------------
# Syntax tree
# --------------------------------------------------------------------------------------
@dataclass
class Str:
    parts: list[str | Expr]
    line: int

    @property
    def literal(self) -> str | None:
        """The value when there is no interpolation, else None."""
        if all(isinstance(p, str) for p in self.parts):
            return "".join(p for p in self.parts if isinstance(p, str))
        return None


@dataclass
class Num:
    value: int
    line: int


@dataclass
class Bool:
    value: bool
    line: int


@dataclass
class Null:
    line: int


@dataclass
class Ident:
    name: str
    line: int


@dataclass
class Prop:
    key: Str | Ident
    value: Expr
    line: int

    @property
    def name(self) -> str | None:
        """The key's text; None for an interpolated ('${x}') key."""
        return self.key.name if isinstance(self.key, Ident) else self.key.literal


@dataclass
class Obj:
    props: list[Prop]
    line: int

    def get(self, name: str) -> Expr | None:
        for prop in self.props:
            if prop.name == name:
                return prop.value
        return None


@dataclass
class Arr:
    items: list[Expr]
    line: int


@dataclass
class For:
    names: list[str]
    iterable: Expr
    body: Expr
    line: int


@dataclass
class IfBody:
    condition: Expr
    body: Expr
    line: int


@dataclass
class Call:
    name: str
    args: list[Expr]
    line: int


@dataclass
class Member:
    target: Expr
    name: str
    line: int
    safe: bool = False


@dataclass
class Index:
    target: Expr
    index: Expr
    line: int
    safe: bool = False


@dataclass
class Ternary:
    condition: Expr
    then: Expr
    otherwise: Expr
    line: int


@dataclass
class Binary:
    op: str
    left: Expr
    right: Expr
    line: int


@dataclass
class Unary:
    op: str
    operand: Expr
    line: int


Expr = Str | Num | Bool | Null | Ident | Obj | Arr | For | IfBody | Call | Member | Index | Ternary | Binary | Unary


@dataclass
class Decorator:
    name: str
    args: list[Expr]
    line: int


@dataclass
class Param:
    name: str
    type: str
    default: Expr | None
    decorators: list[Decorator]
    line: int

    def decorator(self, name: str) -> Decorator | None:
        return next((d for d in self.decorators if d.name == name), None)


@dataclass
class Var:
    name: str
    value: Expr
    line: int


@dataclass
class Resource:
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: Expr
    line: int

    @property
    def object(self) -> Obj:
        """The resource's object body, through a loop and/or condition."""
        return _innermost_object(self.body)


@dataclass
class Module:
    symbol: str
    path: str
    body: Expr
    line: int

    @property
    def object(self) -> Obj:
        return _innermost_object(self.body)


@dataclass
class Output:
    name: str
    type: str
    value: Expr
    line: int


@dataclass
class BicepFile:
    path: Path
    target_scope: str = "resourceGroup"
    params: dict[str, Param] = field(default_factory=dict)
    vars: dict[str, Var] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    modules: dict[str, Module] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)


def _innermost_object(body: Expr) -> Obj:
    while isinstance(body, (For, IfBody)):
        body = body.body
    if not isinstance(body, Obj):
        raise ParseError(f"line {body.line}: a declaration body must be an object")
    return body


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------
@dataclass
class Token:
    kind: str  # NL, ID, STR, MSTR, NUM, OP, EOF
    value: object
    line: int


_OPS = ["??", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "=>", "::", ".?", "[?",
        "{", "}", "[", "]", "(", ")", ",", ":", ".", "?", "=", "<", ">", "!", "+", "-", "*", "/", "%", "@"]
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM = re.compile(r"[0-9]+")


def tokenize(text: str, line: int = 1) -> list[Token]:
    """Tokens of Bicep source; strings keep their interpolations as raw (text, source) parts."""
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            tokens.append(Token("NL", None, line))
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ParseError(f"line {line}: unterminated comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif text.startswith("'''", i):
            end = text.find("'''", i + 3)
            if end < 0:
                raise ParseError(f"line {line}: unterminated multi-line string")
            body = text[i + 3 : end]
            if body.startswith("\r\n"):
                body = body[2:]
            elif body.startswith("\n"):
                body = body[1:]
            tokens.append(Token("MSTR", body, line))
            line += text.count("\n", i, end)
            i = end + 3
        elif ch == "'":
            parts, i, line = _read_string(text, i + 1, line)
            tokens.append(Token("STR", parts, line))
        elif m := _ID.match(text, i):
            tokens.append(Token("ID", m.group(0), line))
            i = m.end()
        elif m := _NUM.match(text, i):
            tokens.append(Token("NUM", int(m.group(0)), line))
            i = m.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise ParseError(f"line {line}: unexpected character {ch!r}")
            tokens.append(Token("OP", op, line))
            i += len(op)
    tokens.append(Token("EOF", None, line))
    return tokens


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", "$": "$"}


def _read_string(text: str, i: int, line: int) -> tuple[list[tuple[str, str] | str], int, int]:
    """Parts of a single-quoted string starting after its quote: str text or ('expr', source, line)."""
    parts: list[tuple[str, str] | str] = []
    buf: list[str] = []
    start_line = line
    while True:
        if i >= len(text) or text[i] == "\n":
            raise ParseError(f"line {start_line}: unterminated string")
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt == "u" and text.startswith("{", i + 2):
                end = text.index("}", i + 3)
                buf.append(chr(int(text[i + 3 : end], 16)))
                i = end + 1
                continue
            if nxt not in _ESCAPES:
                raise ParseError(f"line {line}: unknown escape \\{nxt}")
            buf.append(_ESCAPES[nxt])
            i += 2
        elif ch == "'":
            if buf:
                parts.append("".join(buf))
            return parts, i + 1, line
        elif text.startswith("${", i):
            if buf:
                parts.append("".join(buf))
                buf = []
            depth = 1
            j = i + 2
            in_str = False
            while depth:
                if j >= len(text):
                    raise ParseError(f"line {line}: unterminated interpolation")
                c = text[j]
                if in_str:
                    if c == "\\":
                        j += 1
                    elif c == "'":
                        in_str = False
                elif c == "'":
                    in_str = True
                elif c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                j += 1
            parts.append(("expr", text[i + 2 : j - 1]))
            i = j
        else:
            buf.append(ch)
            i += 1


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------
_BINARY = [["??"], ["||"], ["&&"], ["==", "!=", "=~", "!~"], ["<", ">", "<=", ">="], ["+", "-"], ["*", "/", "%"]]


class Parser:
    def __init__(self, tokens: list[Token], where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.where = where

    # --- token helpers ---
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def fail(self, message: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.peek()
        return ParseError(f"{self.where}:{tok.line}: {message} (at {tok.kind} {tok.value!r})")

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "OP" and tok.value in ops

    def is_id(self, *names: str) -> bool:
        tok = self.peek()
        return tok.kind == "ID" and (not names or tok.value in names)

    def expect_op(self, op: str) -> Token:
        if not self.is_op(op):
            raise self.fail(f"expected {op!r}")
        return self.next()

    def expect_id(self, name: str | None = None) -> str:
        tok = self.peek()
        if tok.kind != "ID" or (name is not None and tok.value != name):
            raise self.fail(f"expected {name or 'an identifier'}")
        self.next()
        return str(tok.value)

    def skip_newlines(self) -> None:
        while self.peek().kind == "NL":
            self.next()

    def end_of_statement(self) -> None:
        tok = self.peek()
        if tok.kind not in ("NL", "EOF"):
            raise self.fail("expected the end of the line")
        self.skip_newlines()

    # --- file ---
    def parse_file(self, path: Path) -> BicepFile:
        out = BicepFile(path)
        self.skip_newlines()
        while self.peek().kind != "EOF":
            decorators = self.decorators()
            keyword = self.expect_id()
            line = self.tokens[self.pos - 1].line
            if keyword == "targetScope":
                self.expect_op("=")
                value = self.expression()
                if not isinstance(value, Str) or value.literal is None:
                    raise self.fail("targetScope must be a string literal")
                out.target_scope = value.literal
            elif keyword == "param":
                name = self.expect_id()
                type_text = self.type_expression()
                default = None
                if self.is_op("="):
                    self.next()
                    default = self.expression()
                out.params[name] = Param(name, type_text, default, decorators, line)
            elif keyword == "var":
                name = self.expect_id()
                self.expect_op("=")
                out.vars[name] = Var(name, self.expression(), line)
            elif keyword == "resource":
                symbol = self.expect_id()
                type_tok = self.next()
                type_str = self.string_literal(type_tok)
                if "@" not in type_str:
                    raise self.fail("resource type needs '@<apiVersion>'", type_tok)
                rtype, api = type_str.split("@", 1)
                existing = False
                if self.is_id("existing"):
                    self.next()
                    existing = True
                self.expect_op("=")
                out.resources[symbol] = Resource(symbol, rtype, api, existing, self.declaration_body(), line)
            elif keyword == "module":
                symbol = self.expect_id()
                path_str = self.string_literal(self.next())
                self.expect_op("=")
                out.modules[symbol] = Module(symbol, path_str, self.declaration_body(), line)
            elif keyword == "output":
                name = self.expect_id()
                type_text = self.type_expression()
                self.expect_op("=")
                out.outputs[name] = Output(name, type_text, self.expression(), line)
            else:
                raise self.fail(f"unsupported declaration {keyword!r}")
            self.end_of_statement()
        return out

    def string_literal(self, tok: Token) -> str:
        if tok.kind != "STR" or not all(isinstance(p, str) for p in tok.value):  # type: ignore[union-attr]
            raise self.fail("expected a plain string literal", tok)
        return "".join(tok.value)  # type: ignore[arg-type]

    def decorators(self) -> list[Decorator]:
        out: list[Decorator] = []
        while self.is_op("@"):
            line = self.next().line
            name = self.expect_id()
            if self.is_op("."):  # sys.description(...)
                self.next()
                name = self.expect_id()
            self.expect_op("(")
            out.append(Decorator(name, self.arguments(), line))
            self.skip_newlines()
        return out

    def type_expression(self) -> str:
        """A parameter/output type: a name (string, int, bool, object, array), `T[]`, or `T?`."""
        name = self.expect_id()
        if name not in ("string", "int", "bool", "object", "array", "resource"):
            raise self.fail(f"unsupported type {name!r}")
        while self.is_op("["):
            self.next()
            self.expect_op("]")
            name += "[]"
        if self.is_op("?"):
            self.next()
            name += "?"
        return name

    def declaration_body(self) -> Expr:
        if self.is_id("if"):
            line = self.next().line
            self.expect_op("(")
            self.skip_newlines()
            condition = self.expression()
            self.skip_newlines()
            self.expect_op(")")
            return IfBody(condition, self.primary(), line)
        return self.expression()

    # --- expressions ---
    def expression(self) -> Expr:
        condition = self.binary(0)
        if self.is_op("?"):
            line = self.next().line
            self.skip_newlines()
            then = self.expression()
            self.skip_newlines()
            self.expect_op(":")
            self.skip_newlines()
            otherwise = self.expression()
            return Ternary(condition, then, otherwise, line)
        return condition

    def binary(self, level: int) -> Expr:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.is_op(*_BINARY[level]):
            tok = self.next()
            self.skip_newlines()
            left = Binary(str(tok.value), left, self.binary(level + 1), tok.line)
        return left

    def unary(self) -> Expr:
        if self.is_op("!", "-"):
            tok = self.next()
            return Unary(str(tok.value), self.unary(), tok.line)
        return self.postfix(self.primary())

    def postfix(self, expr: Expr) -> Expr:
        while True:
            if self.is_op(".", ".?"):
                safe = self.next().value == ".?"
                tok = self.peek()
                name = self.expect_id()
                if self.is_op("(") and isinstance(expr, Ident) and expr.name in ("az", "sys"):
                    self.next()
                    expr = Call(f"{expr.name}.{name}", self.arguments(), tok.line)
                elif self.is_op("("):
                    raise self.fail("method calls on values are not supported")
                else:
                    expr = Member(expr, name, tok.line, safe)
            elif self.is_op("::"):
                raise self.fail("nested resource access (::) is not supported")
            elif self.is_op("[", "[?"):
                tok = self.next()
                self.skip_newlines()
                index = self.expression()
                self.skip_newlines()
                self.expect_op("]")
                expr = Index(expr, index, tok.line, tok.value == "[?")
            elif self.is_op("!"):
                self.next()  # `x!` right after an expression: the non-null assertion
            else:
                return expr

    def arguments(self) -> list[Expr]:
        args: list[Expr] = []
        self.skip_newlines()
        while not self.is_op(")"):
            args.append(self.expression())
            self.skip_newlines()
            if self.is_op(","):
                self.next()
                self.skip_newlines()
            elif not self.is_op(")"):
                raise self.fail("expected ',' or ')' in an argument list")
        self.next()
        return args

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "STR":
            self.next()
            return self.string(tok)
        if tok.kind == "MSTR":
            self.next()
            return Str([str(tok.value)], tok.line)
        if tok.kind == "NUM":
            self.next()
            return Num(int(tok.value), tok.line)  # type: ignore[call-overload]
        if tok.kind == "ID":
            self.next()
            name = str(tok.value)
            if name in ("true", "false"):
                return Bool(name == "true", tok.line)
            if name == "null":
                return Null(tok.line)
            if self.is_op("("):
                self.next()
                return Call(name, self.arguments(), tok.line)
            if self.is_op("=>"):
                raise self.fail("lambdas are not supported")
            return Ident(name, tok.line)
        if tok.kind == "OP" and tok.value == "(":
            self.next()
            self.skip_newlines()
            inner = self.expression()
            self.skip_newlines()
            self.expect_op(")")
            return inner
        if tok.kind == "OP" and tok.value == "{":
            return self.object()
        if tok.kind == "OP" and tok.value == "[":
            return self.array()
        raise self.fail("expected an expression")

    def string(self, tok: Token) -> Str:
        parts: list[str | Expr] = []
        for part in tok.value:  # type: ignore[union-attr]
            if isinstance(part, tuple):
                sub = Parser(tokenize(part[1], tok.line), self.where)
                expr = sub.expression()
                sub.skip_newlines()
                if sub.peek().kind != "EOF":
                    raise sub.fail("unexpected text in an interpolation")
                parts.append(expr)
            else:
                parts.append(part)
        return Str(parts, tok.line)

    def object(self) -> Obj:
        line = self.expect_op("{").line
        props: list[Prop] = []
        self.skip_newlines()
        while not self.is_op("}"):
            tok = self.next()
            if tok.kind == "ID":
                key: Str | Ident = Ident(str(tok.value), tok.line)
            elif tok.kind == "STR":
                key = self.string(tok)
            else:
                raise self.fail("expected a property name", tok)
            self.expect_op(":")
            self.skip_newlines()
            props.append(Prop(key, self.expression(), tok.line))
            if self.is_op(","):
                self.next()
            elif not self.is_op("}") and self.peek().kind != "NL":
                raise self.fail("expected a new line, ',' or '}' after a property")
            self.skip_newlines()
        self.next()
        return Obj(props, line)

    def array(self) -> Expr:
        line = self.expect_op("[").line
        self.skip_newlines()
        if self.is_id("for"):
            self.next()
            names: list[str] = []
            if self.is_op("("):
                self.next()
                names.append(self.expect_id())
                while self.is_op(","):
                    self.next()
                    names.append(self.expect_id())
                self.expect_op(")")
            else:
                names.append(self.expect_id())
            self.expect_id("in")
            iterable = self.expression()
            self.expect_op(":")
            self.skip_newlines()
            body = self.declaration_body()
            self.skip_newlines()
            self.expect_op("]")
            return For(names, iterable, body, line)
        items: list[Expr] = []
        while not self.is_op("]"):
            items.append(self.expression())
            if self.is_op(","):
                self.next()
            elif not self.is_op("]") and self.peek().kind != "NL":
                raise self.fail("expected a new line, ',' or ']' after an item")
            self.skip_newlines()
        self.next()
        return Arr(items, line)


def parse_text(text: str, path: Path) -> BicepFile:
    """The declarations of one Bicep file's text."""
    return Parser(tokenize(text), path.name).parse_file(path)


def parse_file(path: Path) -> BicepFile:
    return parse_text(path.read_text(encoding="utf-8"), path)


def walk(expr: Expr) -> list[Expr]:
    """expr and every expression inside it (depth-first)."""
    out: list[Expr] = [expr]
    children: list[Expr] = []
    if isinstance(expr, Str):
        children = [p for p in expr.parts if not isinstance(p, str)]
    elif isinstance(expr, Obj):
        for prop in expr.props:
            if isinstance(prop.key, Str):
                children.append(prop.key)
            children.append(prop.value)
    elif isinstance(expr, Arr):
        children = list(expr.items)
    elif isinstance(expr, For):
        children = [expr.iterable, expr.body]
    elif isinstance(expr, IfBody):
        children = [expr.condition, expr.body]
    elif isinstance(expr, Call):
        children = list(expr.args)
    elif isinstance(expr, (Member,)):
        children = [expr.target]
    elif isinstance(expr, Index):
        children = [expr.target, expr.index]
    elif isinstance(expr, Ternary):
        children = [expr.condition, expr.then, expr.otherwise]
    elif isinstance(expr, Binary):
        children = [expr.left, expr.right]
    elif isinstance(expr, Unary):
        children = [expr.operand]
    for child in children:
        out.extend(walk(child))
    return out
