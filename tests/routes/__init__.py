"""Tests of `routes/`."""
