"""Tests of `auth/`."""
