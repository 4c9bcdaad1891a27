"""The console's browser tests use the session's one Playwright and Chromium
(`playwright`, `browser` in tests/conftest.py, shared with the kiosk's UI tests)."""
