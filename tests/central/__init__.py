"""Central server: store, ingest, state and reports, on SQLite and PostgreSQL."""
