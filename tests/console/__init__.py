"""Browser tests of central's operator console (Playwright driving Debian's Chromium)."""
