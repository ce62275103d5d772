"""Tests: packages, so same-named modules (conftest.py) in different folders never clash."""
