"""Simulated twins of the kiosk's hardware and network."""
