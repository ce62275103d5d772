"""Security Hub: the key's findings as ASFF, imported into the home Region with the account's own product ARN.

Opt-in (`securityHub`). What to import is decided in kms_guard.core.asff (created, updated, resolved); this adapter
sends it, at most 100 findings per BatchImportFindings call. Security Hub not enabled (InvalidAccessException) or
any other failure is one warning in the log, never a failed evaluation: SNS alerts and the state do not depend on it.
BatchImportFindings reports per-finding failures in its answer (FailedFindings) instead of raising: logged too.
"""

from __future__ import annotations

import logging
from typing import Any

from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.errors import INVALID_ACCESS, error_code, error_text
from kms_guard.core.arns import KeyArn
from kms_guard.core.asff import batches, product_arn, securityhub_findings
from kms_guard.guard import FindingUpdate

IMPORT_ACTIONS = ("securityhub:BatchImportFindings",)
"""Granted on the product ARN only (infra.function); updates and resolutions are imports of the same Id."""

logger = logging.getLogger("kms_guard")


def product_resource(key: KeyArn) -> str:
    """The IAM resource of IMPORT_ACTIONS: the account's default (custom) product in the home Region."""
    return product_arn(key)


class SecurityHubSink:
    def __init__(self, clients: ClientFactory, key: KeyArn) -> None:
        self._clients = clients
        self._key = key

    def publish(self, update: FindingUpdate) -> None:
        findings = securityhub_findings(
            update.key, update.vendor, update.previous, update.found, update.final, update.now
        )
        if not findings:
            return
        client: Any = self._clients.client("securityhub", self._key.region)
        failed: list[str] = []
        for batch in batches(findings):
            try:
                response = client.batch_import_findings(Findings=batch)
            except Exception as exc:
                if error_code(exc) == INVALID_ACCESS:
                    logger.warning(
                        "Security Hub is not enabled in %s for account %s: %d kms-guard findings not imported "
                        "(enable Security Hub there, or turn the securityHub option off). %s",
                        self._key.region,
                        self._key.account,
                        len(findings),
                        error_text(exc),
                    )
                else:
                    logger.warning(
                        "Security Hub import failed in %s: %d kms-guard findings not imported: %s",
                        self._key.region,
                        len(findings),
                        error_text(exc),
                    )
                return
            failed += [
                f"{f.get('Id')}: {f.get('ErrorCode')} {f.get('ErrorMessage')}"
                for f in response.get("FailedFindings", [])
            ]
        if failed:
            logger.warning(
                "Security Hub refused %d of %d kms-guard findings: %s", len(failed), len(findings), "; ".join(failed)
            )
