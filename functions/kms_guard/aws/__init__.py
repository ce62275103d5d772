"""Adapters: the only code that calls AWS. Each declares the IAM actions it needs next to the calls that need them."""
