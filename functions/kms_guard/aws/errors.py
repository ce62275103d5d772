"""Reading an AWS error: the one place that knows botocore's error shape.

botocore raises `ClientError` with `response["Error"]` = {"Code", "Message"}; connection and parameter errors carry no
response. Every adapter turns errors into text through here, so a message is bounded and shaped the same everywhere.
"""

from __future__ import annotations

from typing import Any

CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"
NOT_FOUND = "NotFoundException"
INVALID_ACCESS = "InvalidAccessException"
"""Security Hub's answer when it is not enabled in the account and Region ("not subscribed to AWS Security Hub")."""
RESOURCE_NOT_FOUND = "ResourceNotFoundException"


def _error(exc: BaseException) -> dict[str, Any] | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict):
            return error
    return None


def error_code(exc: BaseException) -> str:
    """The AWS error code (`AccessDeniedException`), or the exception's class name when AWS gave none."""
    error = _error(exc)
    if error is not None and error.get("Code"):
        return str(error["Code"])
    return type(exc).__name__


def error_text(exc: BaseException, limit: int = 200) -> str:
    """`Code: message`, one line, at most `limit` characters of message."""
    error = _error(exc)
    message = str(error.get("Message", "")) if error is not None else str(exc)
    message = " ".join(message.split())[:limit]
    code = error_code(exc)
    return f"{code}: {message}" if message else code
