"""Markdown from catalog data (aboutText, usageText) to safe HTML.

markdown-it-py renders CommonMark plus tables with raw HTML turned off (so a <script> is shown as
text), and nh3 then keeps only harmless tags and attributes, as a second line of defence.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_RENDERER = MarkdownIt("commonmark", {"html": False}).enable("table")


def render(text: str | None) -> Markup:
    html = _RENDERER.render(text or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow"))
