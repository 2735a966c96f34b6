"""Markdown to plain text, the way Coder shows template parameter descriptions.

Coder (``coderd/parameter.Plaintext``, v2) renders the description with glamour
(goldmark with the GFM extensions) using a style whose every element is empty,
then applies ``strings.TrimSpace``.  The visible effect, reproduced here:

* markup disappears: emphasis, strong, strikethrough, code spans, heading
  hashes, quote markers, bullets, task boxes, fences, thematic breaks;
* a link becomes ``text (url)``, or ``(url)`` when the text is the URL (autolinks
  and bare URLs, which GFM linkifies); a ``#fragment``-only target is dropped;
  an image becomes ``alt (url)``;
* ordered items read ``N. text`` (N counted from the list start), nested
  lists are indented by four spaces;
* soft line breaks stay newlines; blocks are separated by a blank line, except
  that a heading is followed by a single newline.

Covered: paragraphs, ATX/setext headings, block quotes (with lazy lines),
bullet/ordered/task lists, fenced and indented code, inline and reference
links, autolinks, backslash escapes and entities.  Raw HTML tags are dropped.
Not covered: tables, and CommonMark's rarer emphasis delimiter corner cases
(pairing here is "nearest closing run").  Text without markdown syntax is
returned unchanged apart from trimming.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, replace

from api.coder.gotime import go_trim_space

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}#{1,6}(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(?:=+|-+)[ \t]*")
_THEMATIC = re.compile(r" {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})")
_QUOTE = re.compile(r" {0,3}> ?")
_ITEM = re.compile(r"( {0,3})(?:([-+*])|([0-9]{1,9})([.)]))(?:([ \t]+)(.*))?")
_TASK = re.compile(r"\[[ xX]\][ \t]+")
_DEFINITION = re.compile(
    r" {0,3}\[([^\]]+)\]:[ \t]*<?([^\s<>]*)>?(?:[ \t]+(?:\"[^\"]*\"|'[^']*'))?\s*"
)

_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_LINK = re.compile(
    r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]"
    r"(?:\(\s*(<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?\s*\)|\[([^\[\]]*)\])?"
)
_HTML_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>", re.S)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BARE_LINK = re.compile(
    r"(?<![^\s*_~(])(?:(?:https?|ftp)://|www\.)[^\s<\ue000]+"
    r"|(?<![^\s*_~(])[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
# Delimiter pairs, innermost first.  A run's content may not contain the run
# itself, which keeps matching linear and lets the loop peel nested pairs.
_EMPHASIS = (
    re.compile(r"\*\*(?=\S)((?:[^*]|\*(?!\*))+?)(?<=\S)\*\*"),
    re.compile(r"(?<![^\W_])__(?=\S)((?:[^_]|_(?!_))+?)(?<=\S)__(?![^\W_])"),
    re.compile(r"\*(?=\S)([^*]+?)(?<=\S)\*"),
    re.compile(r"(?<![^\W_])_(?=\S)([^_]+?)(?<=\S)_(?![^\W_])"),
    re.compile(r"~~(?=\S)((?:[^~]|~(?!~))+?)(?<=\S)~~"),
    re.compile(r"(?<!~)~(?=[^\s~])([^~]+?)(?<=[^\s~])~(?!~)"),
)
_MAX_NESTING = 32
_HARD_BREAK = re.compile(r"(?<!\\)\\\n")
_SLOT = re.compile("\ue000([0-9]+)\ue001")  # private-use marks around saved text


@dataclass
class _Block:
    kind: str  # paragraph, heading, code, quote or list
    text: str = ""
    children: list[_Block] = field(default_factory=list)
    items: list[list[_Block]] = field(default_factory=list)
    ordered: bool = False
    start: int = 1  # number of an ordered list's first item


def plaintext(description: str) -> str:
    """Render *description* (markdown) as Coder's plain text."""
    refs: dict[str, str] = {}
    lines = description.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks = _parse_blocks([_expand_indent(line) for line in lines], refs)
    return go_trim_space(_render_blocks(blocks, _Inline(refs), tight=False))


def _expand_indent(line: str) -> str:
    """Tabs in the indentation count to the next multiple of four columns."""
    body = line.lstrip(" \t")
    return line[: len(line) - len(body)].expandtabs(4) + body


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _interrupts(item: re.Match[str] | None) -> bool:
    """Only a non-empty bullet or an ordered item numbered 1 may interrupt a paragraph."""
    return bool(item and item.group(6) and item.group(3) in (None, "1"))


def _starts_block(line: str) -> bool:
    """Whether *line* opens a block, which ends a lazy continuation."""
    if _FENCE.match(line) or _QUOTE.match(line) or _interrupts(_ITEM.fullmatch(line)):
        return True
    return bool(_ATX.fullmatch(line) or _THEMATIC.fullmatch(line))


def _fence(line: str) -> str:
    """The opening fence of a fenced code block, or "" (backtick info may not hold a backtick)."""
    fence = _FENCE.match(line)
    if not fence or (fence.group(1)[0] == "`" and "`" in line[fence.end() :]):
        return ""
    return fence.group(1)


def _parse_blocks(lines: list[str], refs: dict[str, str], depth: int = 0) -> list[_Block]:
    blocks: list[_Block] = []
    para: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if para and _SETEXT.fullmatch(line):
            blocks.append(_Block("heading", "\n".join(para)))
            para, i = [], i + 1
            continue
        opened = _open_block(lines, i, bool(para), refs, depth)
        if opened is None:
            definition = None if para else _DEFINITION.fullmatch(line)
            if definition:
                refs.setdefault(_label(definition.group(1)), definition.group(2))
            else:
                para.append(line.strip(" \t"))
            i += 1
            continue
        if para:
            blocks.append(_Block("paragraph", "\n".join(para)))
            para = []
        block, i = opened
        if block is not None:
            blocks.append(block)
    if para:
        blocks.append(_Block("paragraph", "\n".join(para)))
    return blocks


def _open_block(
    lines: list[str], i: int, in_paragraph: bool, refs: dict[str, str], depth: int
) -> tuple[_Block | None, int] | None:
    """The block opening at line *i* (``None`` inside it for blank lines and breaks)."""
    line = lines[i]
    if not line.strip() or _THEMATIC.fullmatch(line):
        return None, i + 1
    if fence := _fence(line):
        return _take_fenced(lines, i, fence)
    if not in_paragraph and _indent(line) >= 4:
        return _take_indented(lines, i)
    if heading := _ATX.fullmatch(line):
        return _Block("heading", heading.group(1) or ""), i + 1
    if depth >= _MAX_NESTING:  # deeper quotes and lists stay text: bounded recursion
        return None
    if _QUOTE.match(line):
        quote, end = _take_quote(lines, i)
        return _Block("quote", children=_parse_blocks(quote, refs, depth + 1)), end
    item = _ITEM.fullmatch(line)
    if item and (not in_paragraph or _interrupts(item)):
        bodies, end = _take_items(lines, i, _item_kind(item))
        start = int(item.group(3) or 1)
        children = [_parse_blocks(body, refs, depth + 1) for body in bodies]
        return _Block("list", items=children, ordered=bool(item.group(3)), start=start), end
    return None


def _take_fenced(lines: list[str], i: int, fence: str) -> tuple[_Block, int]:
    end = i + 1
    closing = re.compile(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*")
    while end < len(lines) and not closing.fullmatch(lines[end]):
        end += 1
    return _Block("code", "\n".join(lines[i + 1 : end])), end + 1


def _take_indented(lines: list[str], i: int) -> tuple[_Block, int]:
    end = i
    while end < len(lines) and (_indent(lines[end]) >= 4 or not lines[end].strip()):
        end += 1
    body = [line[4:] for line in lines[i:end]]
    return _Block("code", "\n".join(body).rstrip("\n")), end


def _take_quote(lines: list[str], i: int) -> tuple[list[str], int]:
    body: list[str] = []
    while i < len(lines):
        line = lines[i]
        marker = _QUOTE.match(line)
        if marker:
            body.append(line[marker.end() :])
        elif line.strip() and body and body[-1].strip() and not _starts_block(line):
            body.append(line)  # lazy continuation of the quoted paragraph
        else:
            break
        i += 1
    return body, i


def _item_kind(item: re.Match[str]) -> str:
    return item.group(2) or item.group(4)


def _take_items(lines: list[str], i: int, kind: str) -> tuple[list[list[str]], int]:
    """Consecutive items with the same bullet or delimiter; bodies are dedented."""
    items: list[list[str]] = []
    while i < len(lines):
        item = _ITEM.fullmatch(lines[i])
        if not item or _item_kind(item) != kind or _THEMATIC.fullmatch(lines[i]):
            break
        body, i = _take_item_body(lines, i, item, kind)
        items.append(body)
        while i < len(lines) and not lines[i].strip() and _continues(lines, i, 0, kind):
            i += 1
    return items, i


def _take_item_body(
    lines: list[str], i: int, item: re.Match[str], kind: str
) -> tuple[list[str], int]:
    # Continuation lines are indented to the item's content column.
    offset = len(item.group(0)) - len(item.group(6) or "") + (item.group(6) is None)
    body = [item.group(6) or ""]
    i += 1
    while i < len(lines):
        line = lines[i]
        if _indent(line) >= offset or (not line.strip() and _continues(lines, i, offset)):
            body.append(line[offset:])
        elif line.strip() and body[-1].strip() and not _sibling_or_block(line, kind):
            body.append(line)  # lazy continuation
        else:
            break
        i += 1
    return body, i


def _sibling_or_block(line: str, kind: str) -> bool:
    sibling = _ITEM.fullmatch(line)
    return bool(sibling and _item_kind(sibling) == kind) or _starts_block(line)


def _continues(lines: list[str], i: int, offset: int, kind: str = "") -> bool:
    """Whether the next non-blank line still belongs to the item (or, given *kind*, the list)."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i == len(lines):
        return False
    if kind:
        item = _ITEM.fullmatch(lines[i])
        return bool(item and _item_kind(item) == kind)
    return _indent(lines[i]) >= offset


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


def _render_blocks(blocks: list[_Block], inline: _Inline, tight: bool) -> str:
    out = ""
    previous = ""
    for block in blocks:
        text = _render_block(block, inline)
        if tight and block.kind == "list":
            text = "\n".join("    " + line for line in text.split("\n"))
        if not text:
            continue
        if out:
            out += "\n" if tight or previous == "heading" else "\n\n"
        out += text
        previous = block.kind
    return out


def _render_block(block: _Block, inline: _Inline) -> str:
    if block.kind in ("paragraph", "heading"):
        return inline.render(_HARD_BREAK.sub("\n", block.text))
    if block.kind == "quote":
        return _render_blocks(block.children, inline, tight=False)
    if block.kind == "list":
        return "\n".join(_render_item(block, n, item, inline) for n, item in enumerate(block.items))
    return block.text


def _render_item(block: _Block, index: int, item: list[_Block], inline: _Inline) -> str:
    prefix = f"{block.start + index}. " if block.ordered else ""
    first = item[0] if item else None
    if first is not None and first.kind == "paragraph" and (task := _TASK.match(first.text)):
        # glamour renders a task item without bullet or number.
        item = [replace(first, text=first.text[task.end() :]), *item[1:]]
        prefix = ""
    return prefix + _render_blocks(item, inline, tight=True)


class _Inline:
    """Inline markup of one paragraph or heading.

    Finished pieces (code, escaped characters, rendered links) are parked in
    numbered slots so that later passes, emphasis above all, cannot touch them.
    """

    def __init__(self, refs: dict[str, str]) -> None:
        self._refs = refs
        self._saved: list[str] = []

    def render(self, text: str, linkify: bool = True) -> str:
        return self._restore(self._markup(text, linkify))

    def _save(self, text: str) -> str:
        self._saved.append(text)
        return f"\ue000{len(self._saved) - 1}\ue001"

    def _restore(self, text: str) -> str:
        while _SLOT.search(text):
            text = _SLOT.sub(lambda m: self._saved[int(m.group(1))], text)
        return text

    def _markup(self, text: str, linkify: bool) -> str:
        text = _CODE_SPAN.sub(lambda m: self._save(_code_text(m.group(2))), text)
        text = _AUTOLINK.sub(lambda m: self._save(_autolink(m.group(1))), text)
        text = _ESCAPE.sub(lambda m: self._save(m.group(1)), text)
        text = _ENTITY.sub(lambda m: self._save(html.unescape(m.group(0))), text)
        text = _HTML_TAG.sub("", text)
        text = _LINK.sub(self._link, text)
        text = _strip_emphasis(text)
        return _BARE_LINK.sub(self._bare_link, text) if linkify else text

    def _link(self, match: re.Match[str]) -> str:
        image, label, destination, reference = match.group(1, 2, 3, 4)
        if destination is None:
            destination = self._refs.get(_label(reference or label))
            if destination is None:
                return match.group(0)  # not a link: brackets stay literal
        if destination.startswith("<") and destination.endswith(">"):
            destination = destination[1:-1]
        url = self._restore(destination)
        text = self.render(label, linkify=False)  # GFM does not linkify inside links
        return self._save(_image_text(text, url) if image else _link_text(text, url))

    def _bare_link(self, match: re.Match[str]) -> str:
        text, tail = _trim_link_tail(match.group(0))
        if text.startswith("www."):
            url = "http://" + text
        elif "://" in text:
            url = text
        else:
            url = "mailto:" + text
        return self._save(_link_text(text, url)) + tail


def _strip_emphasis(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for pattern in _EMPHASIS:
            text, count = pattern.subn(r"\1", text)
            changed = changed or count > 0
    return text


def _code_text(content: str) -> str:
    content = content.replace("\n", " ")
    if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
        return content[1:-1]
    return content


def _autolink(target: str) -> str:
    if ":" not in target:  # an e-mail address
        return _link_text(target, "mailto:" + target)
    return _link_text(target, target)


def _link_text(text: str, url: str) -> str:
    """glamour's link: the text (unless it is the URL), then the URL in parentheses."""
    show_url = not url.startswith("#")  # a same-page anchor is not shown
    suffix = f"({url})" if show_url else ""
    if text and text != url:
        return f"{text} {suffix}" if suffix else text
    return suffix


def _image_text(alt: str, url: str) -> str:
    return alt + (f" ({url})" if url else "")


def _trim_link_tail(text: str) -> tuple[str, str]:
    """GFM autolinks do not end in punctuation or an unbalanced parenthesis."""
    end = len(text)
    while end:
        char = text[end - 1]
        unbalanced = char == ")" and text[:end].count("(") < text[:end].count(")")
        if char not in "?!.,:*_~'\"" and not unbalanced:
            break
        end -= 1
    return text[:end], text[end:]
