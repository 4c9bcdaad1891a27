"""The central server: ingest, balances, downlink, admin API, reports, and the broker config."""
