"""Documentation copies stay copies: README's deploy section is docs/deploy.md."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readmes_deploy_section_is_docs_deploy_md_verbatim() -> None:
    """README's "Deploy to Azure" section (between the deploy markers) is a copy of docs/deploy.md, not a drift."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n", readme.index("<!-- deploy:start")) + 1
    section = readme[start:readme.index("<!-- deploy:end -->")]
    assert section.strip() == (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").strip()
