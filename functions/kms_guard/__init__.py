"""kms-guard: keep a customer-managed multi-Region KMS key usable by the SaaS vendor that needs it."""

__version__ = "0.1.0"
