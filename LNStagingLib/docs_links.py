"""Links to the documentation for what the command line prints: an installed wheel carries no docs/ folder, so a
``docs/NAME.md`` named in a message or a help text is shown as its address (pyproject.toml's Documentation URL)."""

from __future__ import annotations

import re

DOCS_URL = "https://github.com/lnstaging/LNStaging/blob/main/docs/"
_DOCS_PAGE = re.compile(r"(?<![\w/.])docs/([A-Za-z0-9_]+\.md)")


def link_docs(text: str) -> str:
    """``text`` with every ``docs/NAME.md`` replaced by that page's URL."""
    return _DOCS_PAGE.sub(lambda page: DOCS_URL + page.group(1), text)
