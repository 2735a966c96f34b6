"""Markdown to plain text, the way Coder shows template parameter descriptions.

Coder (``coderd/parameter.Plaintext``, v2) renders with glamour (goldmark, GFM)
in a style whose every element is empty, then trims.  markdown-it-py parses
(CommonMark, GFM tables, ``~``/``~~`` strikethrough, task items); the renderer
folds its tokens into glamour's visible output: markup disappears; a link reads
``text (url)``, or ``(url)`` when the text is the URL (as for autolinks and the
bare URLs GFM linkifies), or ``text`` for a ``#fragment`` target; an image reads
``alt (url)``; ordered items read ``N. text`` counted from the list start;
nested lists are indented by four spaces; line breaks stay; blocks are separated
by a blank line, but a heading by one newline; a table prints a line per row,
cells separated by `` | `` (glamour's padded grid is not reproduced).  Text
without markdown syntax is returned unchanged apart from trimming.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from api.coder.gotime import go_trim_space

_CONTAINERS = frozenset(
    {"blockquote", "bullet_list", "ordered_list", "list_item", "table", "thead", "tbody", "tr"}
)
_HTML_TAG = re.compile(r"<!--.*?-->|<[!?/]?[A-Za-z][^<>]*>", re.S)
# GFM's extended autolinks start a line or follow whitespace or one of `*_~(`.
_URL_START = re.compile(r"(?<![^\s*_~(])(?:(?:https?|ftp)://|www\.)")
_URL_STOP = re.compile(r"[\s<]")
_BARE_LINK = re.compile(
    _URL_START.pattern + r"[^\s<]+"
    r"|(?<![^\s*_~(])[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)


class _Parser(MarkdownIt):
    """Keeps link destinations as written, as glamour prints them: not percent-encoded,
    and with any scheme (markdown-it would not even parse a ``javascript:`` link)."""

    def normalizeLink(self, url: str) -> str:
        return url

    def normalizeLinkText(self, link: str) -> str:
        return link

    def validateLink(self, url: str) -> bool:
        return True


def _url_text(state: StateInline, silent: bool) -> bool:
    """Keep ``*``, ``_`` and ``~`` inside a bare URL as text, as GFM finds URLs before
    delimiters pair into emphasis (``https://x.io/__init__.py`` stays whole);
    ``_linkify`` makes the text a link later, except in a link's own text."""
    if silent or state.linkLevel or state.src[state.pos] not in "*_~":
        return False
    word = _URL_STOP.split(state.pending)[-1]  # pending holds the source since the last token
    begin = state.pos - len(word)
    start = _URL_START.search(state.src, begin, state.pos)
    if not start or not state.src.startswith(word, begin):
        return False
    stop = _URL_STOP.search(state.src, state.pos)
    url, _ = _trim_link_tail(state.src[start.start() : stop.start() if stop else len(state.src)])
    end = start.start() + len(url)
    if end <= state.pos:  # the URL ends before: a delimiter after all
        return False
    state.pending += state.src[state.pos : end]
    state.pos = end
    return True


# Single-tilde strikethrough and task items need markdown-it-py 4.1.  The
# commonmark preset's nesting limit of 20 drops whatever is nested deeper; 100 is
# markdown-it's default and keeps its recursion well inside Python's limit.
_MD = _Parser(
    "commonmark", {"maxNesting": 100, "strikethrough_single_tilde": True, "tasklists": True}
)
_MD.enable(["table", "strikethrough"])
_MD.inline.ruler.before("strikethrough", "url_text", _url_text)


@functools.lru_cache(maxsize=4096)  # every templates report renders every parameter's text
def plaintext(description: str) -> str:
    """Render *description* (markdown) as Coder's plain text."""
    # An explicit stack rather than a recursive walk, so that deeply nested
    # quotes or lists cannot exhaust Python's stack.
    stack = [_Container("root")]
    leaf = ""  # the block whose inline token comes next: paragraph, heading, th or td
    for token in _MD.parse(description):
        kind = token.type.removesuffix("_open").removesuffix("_close")
        if kind in _CONTAINERS and token.nesting == 1:
            stack.append(_Container.open(kind, token, stack[-1]))
        elif kind in _CONTAINERS:
            container = stack.pop()
            stack[-1].add(kind, container.render())
        elif token.nesting == 1:
            leaf = kind
        elif token.type == "inline":
            stack[-1].add(leaf, _spans(token.children or []))
        elif token.type in ("fence", "code_block"):
            stack[-1].add("code", token.content.removesuffix("\n"))
        elif token.type == "html_block":
            stack[-1].add("html", _HTML_TAG.sub("", token.content).strip())
    return go_trim_space(stack[0].render())


@dataclass
class _Container:
    """A block of blocks, or a table, row group or row, and its children's text."""

    kind: str
    prefix: str = ""
    start: int = 1  # an ordered list's first number
    parts: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) per child

    @classmethod
    def open(cls, kind: str, token: Token, parent: _Container) -> _Container:
        # glamour prints a task item without bullet or number.
        if kind == "list_item" and parent.kind == "ordered_list" and "checked" not in token.meta:
            return cls(kind, prefix=f"{parent.start + len(parent.parts)}. ")
        return cls(kind, start=int(token.attrs.get("start", 1)))

    def add(self, kind: str, text: str) -> None:
        self.parts.append((kind, text))

    def render(self) -> str:
        if self.kind in ("bullet_list", "ordered_list", "table", "thead", "tbody"):
            return "\n".join(text for _, text in self.parts)
        if self.kind == "tr":
            return " | ".join(text for _, text in self.parts)
        tight = self.kind == "list_item"  # an item's blocks are not separated by blank lines
        out = ""
        previous = ""
        for kind, text in self.parts:
            if tight and kind in ("bullet_list", "ordered_list"):
                text = "\n".join("    " + line for line in text.split("\n"))
            if not text:
                continue
            if out:
                out += "\n" if tight or previous == "heading" else "\n\n"
            out += text
            previous = kind
        return self.prefix + out


def _spans(tokens: list[Token], linkify: bool = True) -> str:
    out: list[str] = []
    links: list[tuple[int, str]] = []  # where each open link's text starts, and its URL
    previous = ""
    for token in tokens:
        if token.type == "text":
            linked = linkify and not links  # GFM does not linkify a link's text
            # A bare link may follow a delimiter or a line break, not other markup.
            delimiter = previous.startswith(("em_", "strong_", "s_"))
            boundary = delimiter or previous in ("", "softbreak", "hardbreak")
            out.append(_linkify(token.content, boundary) if linked else token.content)
        elif token.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif token.type == "code_inline":
            out.append(token.content)
        elif token.type == "link_open":
            links.append((len(out), str(token.attrs["href"])))
        elif token.type == "link_close" and links:
            begin, url = links.pop()
            out[begin:] = [_link_text("".join(out[begin:]), url)]
        elif token.type == "image":  # glamour: the alt text, then " (url)"
            url = str(token.attrs["src"])
            out.append(_spans(token.children or [], linkify=False) + (f" ({url})" if url else ""))
        previous = token.type  # emphasis and raw HTML print nothing
    return "".join(out)


def _linkify(text: str, boundary: bool) -> str:
    # A space or a letter stands in for what precedes the text, for the
    # pattern's lookbehind to decide whether a link may start the text.
    return _BARE_LINK.sub(_bare_link, (" " if boundary else "x") + text)[1:]


def _bare_link(match: re.Match[str]) -> str:
    text, tail = _trim_link_tail(match.group(0))
    if text.startswith("www."):
        url = "http://" + text
    elif "://" in text:
        url = text
    elif "@" in text:
        url = "mailto:" + text
    else:  # only "www" is left once trailing punctuation is cut
        return match.group(0)
    return _link_text(text, url) + tail


def _link_text(text: str, url: str) -> str:
    """glamour's link: the text unless it is the URL, then "(url)" unless a same-page anchor."""
    parts = (text if text != url else "", "" if url.startswith("#") else f"({url})")
    return " ".join(part for part in parts if part)


def _trim_link_tail(text: str) -> tuple[str, str]:
    """GFM autolinks do not end in punctuation or an unbalanced parenthesis."""
    end = len(text)
    unmatched = text.count(")") - text.count("(")
    while end and (text[end - 1] in "?!.,:*_~'\"" or (text[end - 1] == ")" and unmatched > 0)):
        unmatched -= text[end - 1] == ")"
        end -= 1
    return text[:end], text[end:]
