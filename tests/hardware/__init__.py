"""Tests of hardware/ drivers and their simulated twins."""
