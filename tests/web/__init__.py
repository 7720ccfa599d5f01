"""Tests of `web/`."""
