"""Operator-configured tokens with deployment or template scope (insights-api.md section 2)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from multidict import CIMultiDictProxy


@dataclass(frozen=True)
class Scope:
    deployment: bool
    templates: frozenset[str] = frozenset()

    def allows(self, template_ids: tuple[str, ...]) -> bool:
        """Template-scoped tokens need a non-empty list entirely inside their scope."""
        if self.deployment:
            return True
        return bool(template_ids) and all(t in self.templates for t in template_ids)


class TokenConfigError(ValueError):
    pass


def parse_token_specs(text: str) -> list[tuple[bytes, Scope]]:
    """``TOKEN`` (deployment) or ``TOKEN=uuid|uuid`` (templates); comma or newline separated."""
    out: list[tuple[bytes, Scope]] = []
    for n, raw in enumerate(text.replace("\n", ",").split(","), start=1):
        spec = raw.strip()
        if not spec or spec.startswith("#"):
            continue
        token, sep, scope = spec.partition("=")
        token = token.strip()
        if not token:
            raise TokenConfigError(f"token spec #{n} has an empty token")
        if not sep:
            out.append((token.encode(), Scope(True)))
            continue
        templates = frozenset(t.strip().lower() for t in scope.split("|") if t.strip())
        if not templates:
            raise TokenConfigError(f"token spec #{n} names no template")
        out.append((token.encode(), Scope(False, templates)))
    return out


class TokenRegistry:
    def __init__(self, specs: list[tuple[bytes, Scope]]) -> None:
        self._specs = specs

    @classmethod
    def from_settings(cls, tokens: str, token_file: str) -> TokenRegistry:
        text = tokens
        if token_file:
            text += "\n" + Path(token_file).read_text()
        return cls(parse_token_specs(text))

    def __len__(self) -> int:
        return len(self._specs)

    def lookup(self, presented: str) -> Scope | None:
        """Compare with every configured token in constant time, never short-circuiting."""
        candidate = presented.encode()
        found: Scope | None = None
        for token, scope in self._specs:
            if hmac.compare_digest(token, candidate) and found is None:
                found = scope
        return found


def presented_token(headers: CIMultiDictProxy[str]) -> str:
    """``Coder-Session-Token`` wins over ``Authorization: Bearer``; empty counts as absent."""
    session = headers.get("Coder-Session-Token", "")
    if session:
        return session
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return ""
