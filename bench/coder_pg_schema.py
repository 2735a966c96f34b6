"""Coder's PostgreSQL schema for the tables its insights queries read, for bench_coder_pg.py.

The DDL lives with the Coder importer, which knows this schema (coder/coder
``coderd/database/dump.sql`` at commit 94187117111b52f0c10a165d03c5db97f537b01a): see
``streams/coder_import/coder_schema.py``.  ``TYPES`` and ``TABLES`` run before the data is
loaded; ``CONSTRAINTS`` (keys, indexes and foreign keys, in dump order) after it, as
``pg_restore`` does, so the bulk load is not slowed by index maintenance.
"""

from __future__ import annotations

from streams.coder_import.coder_schema import CONSTRAINTS, TABLES, TYPES

__all__ = ["CONSTRAINTS", "TABLES", "TYPES"]
