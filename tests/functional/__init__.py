"""Test packages."""
