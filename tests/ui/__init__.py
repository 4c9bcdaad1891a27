"""Browser tests for the kiosk's touchscreen UI: Playwright driving Debian's Chromium.

Fixtures are in `conftest.py`; `cjk.assert_cjk_renders` proves Chinese text is drawn
with real glyphs, not empty boxes.
"""
