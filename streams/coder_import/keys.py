"""The importer's Redis keys, built in this one module.

They follow the store's convention (``aggregators/store/keys.py``): the ``cis:`` root and a
format version, here the importer's own (``cis:coderimport:v1:...``), so the store's
rebuild, which deletes ``cis:v<N>:...`` keys of older store formats and old generations,
never touches them, and a change of this layout can live beside the old one.

One hash per (Coder database, topic prefix): the positions are where *that* database's rows
were produced to *those* topics; another prefix, or another database, starts from nothing.
"""

from __future__ import annotations

import hashlib
from typing import Final

VERSION: Final = "v1"
ROOT: Final = f"cis:coderimport:{VERSION}"


def source_id(host: str, port: str, dbname: str) -> str:
    """A short stable name of a Coder database (credentials never enter it)."""
    digest = hashlib.sha256(f"{host}\0{port}\0{dbname}".encode()).hexdigest()
    return digest[:16]


def positions(source: str, topic_prefix: str) -> str:
    """Hash: table -> JSON position (``streams.coder_import.positions``)."""
    prefix = hashlib.sha256(topic_prefix.encode()).hexdigest()[:8]
    return f"{ROOT}:{{{source}}}:{prefix}:positions"
