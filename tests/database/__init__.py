"""Tests of `database/`."""
