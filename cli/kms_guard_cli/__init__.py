"""The `kms-guard` command and the demo: tools for people and CI, beside the Lambda code and never part of its asset.

The Lambda asset is `functions/` as it stands (only `kms_guard`); this package imports `kms_guard`, never the reverse.
"""
