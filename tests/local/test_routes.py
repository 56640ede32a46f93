"""Route templates read the way Azure Functions (ASP.NET Core routing) reads them."""

from __future__ import annotations

import pytest

from local.host.config import HostConfigError
from local.host.routes import compile_route, sort_key

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items/{id}", "items/42", {"id": "42"}),
        ("items/{id}", "ITEMS/42", {"id": "42"}),
        ("items/{id}", "items/42/more", None),
        ("items/{id:int}", "items/x", None),
        ("items/{id:int:min(2)}", "items/1", None),
        ("items/{id:int:range(1,9)}", "items/9", {"id": "9"}),
        ("items/{id:guid}", f"items/{GUID}", {"id": GUID}),
        ("items/{id:alpha:maxlength(3)}", "items/abcd", None),
        ("items/{id:bool}", "items/True", {"id": "True"}),
        ("items/{id?}", "items", {}),
        ("items/{page=1}", "items", {"page": "1"}),
        ("files/{*rest}", "files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("files/{*rest}", "files", {}),
        ("files/{name}.{ext}", "files/archive.tar.gz", {"name": "archive.tar", "ext": "gz"}),
        ("codes/{code:regex(^[a-z]{{3}}$)}", "codes/abc", {"code": "abc"}),
        ("codes/{code:regex(^[a-z]{{3}}$)}", "codes/abcd", None),
        ("users/{id}", "users/a%2Fb", {"id": "a/b"}),
    ],
)
def test_template_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    """Literals match in any case, params decode, constraints/optionals/defaults/catch-alls behave as on Azure."""
    assert compile_route(template).match(path) == expected


@pytest.mark.parametrize(
    "template",
    ["items/{id", "items/id}", "a/{*rest}/b", "a/{x}{y}", "a/{x}/{X}", "a/{x:nosuch}", "a//b", "a/{x:min(z)}"],
)
def test_malformed_templates_are_refused(template: str) -> None:
    """A template Functions would reject fails at start-up with HostConfigError, not at request time."""
    with pytest.raises(HostConfigError):
        compile_route(template)


def test_more_specific_templates_sort_first() -> None:
    """Literal beats constrained parameter beats parameter beats catch-all."""
    templates = ["items/{*rest}", "items/{id}", "items/{id:int}", "items/special"]
    ordered = sorted((compile_route(t) for t in templates), key=sort_key)
    assert [r.template for r in ordered] == ["items/special", "items/{id:int}", "items/{id}", "items/{*rest}"]
