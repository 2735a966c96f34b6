"""Import a running Coder's history from its PostgreSQL database, and follow it live.

Coder already records what this service needs: agents' stats reports
(``workspace_agent_stats``), app sessions (``workspace_app_stats``), builds and their
parameters, users, templates and apps.  ``insights coder import`` reads those tables
(read-only) and produces the contract's events (``docs/events.md``), so a Coder deployment
gets these insights with its retained history without a change to Coder.

* ``coder_schema``: the Coder schema this importer knows (dump.sql at a named commit);
* ``schema_check``: refuse a database that is not that schema, in one line;
* ``mapping``: rows -> events, pure;
* ``readers``: keyset-paginated chunks of each table;
* ``positions`` and ``keys``: where each table stands, in Redis;
* ``importer``: the run (catch up, then follow).
"""
