"""The AWS-published Powertools for AWS Lambda (Python) v3 layer, per partition and Region. Pure data, no CDK.

Source: the Powertools for AWS Lambda (Python) install docs (docs/index.md in aws-powertools/powertools-lambda-python):
every commercial Region from account 017000801446; AWS China only in cn-north-1 (498634801083); AWS GovCloud (US)
in us-gov-east-1 (165087284144) and us-gov-west-1 (165093116878). Anywhere else no layer is known, and the app says so
at synth instead of deploying a function that cannot import Powertools.
"""

from __future__ import annotations

POWERTOOLS_LAYER_VERSION = 38
"""The AWS-published Powertools for AWS Lambda (Python) v3 layer version, pinned here and only here."""
COMMERCIAL_ACCOUNT = "017000801446"
OTHER_PARTITIONS = {
    ("aws-cn", "cn-north-1"): "498634801083",
    ("aws-us-gov", "us-gov-east-1"): "165087284144",
    ("aws-us-gov", "us-gov-west-1"): "165093116878",
}


class NoLayerError(ValueError):
    """No Powertools layer is published where the function would run."""


def powertools_account(partition: str, region: str) -> str:
    """The account AWS publishes the layer from in `region`, or `NoLayerError`."""
    account = COMMERCIAL_ACCOUNT if partition == "aws" else OTHER_PARTITIONS.get((partition, region))
    if account is None:
        known = ", ".join(r for p, r in OTHER_PARTITIONS if p == partition) or "none"
        raise NoLayerError(
            f"no AWS-published Powertools layer is known in {region} (partition {partition}; Regions known there: "
            f"{known}); deploy the functions' home Region where AWS publishes it"
        )
    return account


def powertools_layer_arn(partition: str, region: str, *, python: str, architecture: str) -> str:
    """The layer for `python` (e.g. 'python314') on `architecture` ('arm64' | 'x86_64') in `region`."""
    account = powertools_account(partition, region)
    return (
        f"arn:{partition}:lambda:{region}:{account}:layer:AWSLambdaPowertoolsPythonV3-{python}-{architecture}:"
        f"{POWERTOOLS_LAYER_VERSION}"
    )
