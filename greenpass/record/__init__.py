"""The record both ends share: what a kiosk writes and central re-checks.

Entries, their canonical bytes and hash chain (`entries`), ids (`ids`), the village
rules and their pricing (`rules`), personal-data commitments (`personal`) and the
reduction-unit methodology (`methodology`), with the shipped rules and methodology
files (`data/`). Pure: no database, no network, no screen; the kiosk (`edge/`),
central (`central/`), sync and any outside verifier import it, and it imports none
of them (docs/design.md §2).
"""
