"""The key list (kms_guard.deployment): every problem at once, the deployed keys file, and the Lambda's choice between
the keys file and the single-key variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kms_guard.core.arns import KeyArn
from kms_guard.deployment import (
    MAX_KEYS,
    Deployment,
    KeyListError,
    deployment_from_env,
    deployment_from_file,
    keys_document,
    parse_key_list,
)
from kms_guard.settings import ENV_NAMES, SettingsError

ACCOUNT = "111122223333"
MRK = "arn:aws:kms:us-east-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef"
MRK2 = "arn:aws:kms:eu-west-1:111122223333:key/mrk-fedcba9876543210fedcba9876543210"
SINGLE = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PROFILE = Path(__file__).resolve().parents[2] / "functions" / "kms_guard" / "data" / "vendors" / "elastic.json"


def problems(raw: Any, **options: Any) -> list[str]:
    with pytest.raises(KeyListError) as caught:
        parse_key_list(raw, **options)
    return caught.value.problems


def test_a_list_of_keys_with_their_own_vendors_regions_and_modes() -> None:
    deployment = parse_key_list(
        [
            {"keyArn": MRK, "regions": "us-east-1,us-west-2", "remediation": "revert", "restoreKeyState": "true"},
            {"keyArn": SINGLE, "vendor": "databricks-storage"},
            {"keyArn": MRK2, "vendor": "elastic", "regions": ["eu-west-1", "eu-central-1"]},
        ],
        shared={"topic_arn": "arn:aws:sns:us-east-1:111122223333:alerts", "dry_run": True},
    )
    first, single, third = deployment.keys
    assert (first.vendor.name, first.regions, first.remediation, first.restore_key_state) == (
        "rockset",
        ("us-east-1", "us-west-2"),
        "revert",
        True,
    )
    assert (single.vendor.name, single.regions, single.remediation) == ("databricks-storage", ("us-west-2",), "off")
    assert third.vendor.name == "elastic"
    assert all(s.dry_run and s.topic_arn for s in deployment.keys)  # what the deployment shares, every key has
    assert deployment.home == "us-east-1"
    assert all(s.home == "us-east-1" for s in deployment.keys)
    assert deployment.regions == ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1")


def test_every_problem_of_the_list_is_reported_at_once_naming_its_entry() -> None:
    found = problems(
        [
            {"keyArn": "arn:aws:kms:us-east-1:111122223333:alias/vendor"},
            {"keyArn": SINGLE},  # Rockset (the default) requires a multi-Region key
            {"keyArn": MRK},
            {"keyArn": MRK.replace("us-east-1", "us-west-2")},  # the same key named in another Region
            {"keyArn": MRK2, "remediation": "fix-it"},
            {"keyArn": MRK2.replace("fedcba", "abcdef"), "regions": ["us-east-1"]},
            {"keyArn": MRK2.replace(ACCOUNT, "444455556666").replace("fedcba", "aaaaaa")},
            {"vendor": "elastic"},
            {"keyArn": MRK2.replace("fedcba", "bbbbbb"), "colour": "blue"},
            "arn:aws:kms:us-east-1:111122223333:key/mrk-00000000000000000000000000000000",
            {
                "keyArn": SINGLE.replace("1234abcd", "9999abcd"),
                "vendor": "elastic",
                "regions": ["us-west-2", "us-east-1"],
            },
        ]
    )
    assert found[0].startswith("keys[0].keyArn: alias ARNs are not supported")
    assert found[1].startswith("keys[1].keyArn:")
    assert "requires one" in found[1]
    assert "multi-Region" in found[1]
    assert found[2].startswith("keys[3]: key mrk-0123456789abcdef0123456789abcdef is already keys[2]")
    assert found[3].startswith("keys[4].remediation: unknown mode 'fix-it'")
    assert found[4].startswith("keys[5].regions:")
    assert "eu-west-1" in found[4]
    assert found[5].startswith("keys[6].keyArn: account 444455556666")
    assert found[6].startswith("keys[7].keyArn: required")
    assert found[7].startswith("keys[8]: unknown field 'colour'")
    assert found[8].startswith("keys[9]: must be an object")
    assert found[9].startswith("keys[10].regions:")
    assert "single-Region key" in found[9]
    assert len(found) == 10
    assert all("\n" not in line and "Traceback" not in line for line in found)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"keyArn": MRK}, "keys: must be a list"),
        ([], "keys: the list is empty"),
        ("not json", "keys: must be a list"),
        ([{"keyArn": MRK, "vendorRoles": 5}], "keys[0].vendorRoles: must be a list of strings"),
        ([{"keyArn": MRK, "restoreKeyState": 1}], "keys[0].restoreKeyState: must be true or false"),
        ([{"keyArn": MRK, "restoreKeyState": "maybe"}], "keys[0].restoreKeyState: must be true or false"),
        ([{"keyArn": MRK, "vendor": "acme"}], "keys[0].vendor: unknown vendor"),
        ([{"keyArn": MRK, "vendor": 3}], "keys[0].vendor: must be a string"),
    ],
)
def test_bad_entries_say_what_is_wrong_in_one_line(raw: Any, expected: str) -> None:
    [line] = problems(raw)
    assert line.startswith(expected), line


def test_at_most_100_keys() -> None:
    def arn(n: int) -> str:
        return f"arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-{n:032x}"

    assert len(parse_key_list([{"keyArn": arn(n)} for n in range(MAX_KEYS)]).keys) == MAX_KEYS
    [line] = problems([{"keyArn": arn(n)} for n in range(MAX_KEYS + 1)])
    assert line == f"keys: {MAX_KEYS + 1} keys; one deployment guards at most {MAX_KEYS} (split the list)"
    # a hostile list is read only as far as the limit
    assert len(problems([{"keyArn": arn(0)}] * 100_000)) <= MAX_KEYS + 2


def test_a_vendor_profile_path_is_read_validated_and_embedded() -> None:
    seen: list[str] = []

    def read(path: str) -> str:
        seen.append(path)
        return PROFILE.read_text()

    deployment = parse_key_list([{"keyArn": MRK, "vendorProfile": "profiles/mine.json"}], read_file=read)
    assert seen == ["profiles/mine.json"]
    assert deployment.keys[0].vendor.name == "elastic"
    assert deployment.entries[0]["vendorProfile"].startswith("zlib+base64:")
    # the deployed file embeds it: read back without any file access
    again = deployment_from_file(keys_document(deployment), shared={}, label="keys.json")
    assert again.keys == deployment.keys
    # without a reader (the runtime), a path is refused
    [line] = problems([{"keyArn": MRK, "vendorProfile": "profiles/mine.json"}])
    assert line.startswith("keys[0].vendorProfile: expected an embedded profile")
    [line] = problems(
        [{"keyArn": MRK, "vendorProfile": "x.json"}], read_file=lambda p: (_ for _ in ()).throw(OSError(2, "gone"))
    )
    assert line == "keys[0].vendorProfile: cannot read 'x.json': gone"


def test_the_keys_document_writes_every_regions_list_out() -> None:
    deployment = parse_key_list(
        [{"keyArn": MRK}, {"keyArn": SINGLE, "vendor": "tidb", "vendorAccount": "444455556666", "vendorRoles": []}]
    )
    document = json.loads(keys_document(deployment))
    assert document == {
        "format": 1,
        "keys": [
            {"keyArn": MRK, "regions": ["us-east-1"]},
            {"keyArn": SINGLE, "regions": ["us-west-2"], "vendor": "tidb", "vendorAccount": "444455556666"},
        ],
    }


def env(tmp_path: Path, document: str | None, **extra: str) -> dict[str, str]:
    values = {ENV_NAMES["state_table"]: "kms-guard-state", **extra}
    if document is not None:
        path = tmp_path / "keys.json"
        path.write_text(document)
        values[ENV_NAMES["keys_file"]] = str(path)
    return values


def test_the_lambda_reads_the_keys_file_with_the_shared_variables(tmp_path: Path) -> None:
    deployment = parse_key_list([{"keyArn": MRK, "remediation": "restore-statement"}, {"keyArn": MRK2}])
    loaded = deployment_from_env(
        env(tmp_path, keys_document(deployment), **{ENV_NAMES["dry_run"]: "true", ENV_NAMES["security_hub"]: "true"})
    )
    assert [s.key for s in loaded.keys] == [KeyArn.parse(MRK), KeyArn.parse(MRK2)]
    assert loaded.keys[0].remediation == "restore-statement"
    assert loaded.keys[1].remediation == "off"
    assert all(s.dry_run and s.security_hub and s.state_table == "kms-guard-state" for s in loaded.keys)


def test_without_a_keys_file_the_single_key_variables_make_one_key(tmp_path: Path) -> None:
    loaded = deployment_from_env(env(tmp_path, None, **{ENV_NAMES["key_arn"]: MRK}))
    assert isinstance(loaded, Deployment)
    assert [s.key_arn for s in loaded.keys] == [MRK]


@pytest.mark.parametrize(
    ("document", "extra", "expected"),
    [
        ("{}", {}, "KMS_GUARD_KEYS_FILE: not a kms-guard keys file"),
        ("[", {}, "KMS_GUARD_KEYS_FILE: not JSON"),
        ('{"format": 1, "keys": [{"keyArn": "x"}]}', {}, "KMS_GUARD_KEYS_FILE keys[0].keyArn: not a KMS key ARN"),
        ('{"format": 1, "keys": []}', {ENV_NAMES["key_arn"]: MRK}, "KMS_GUARD_KEYS_FILE and KMS_GUARD_KEY_ARN"),
    ],
)
def test_a_bad_keys_file_fails_the_cold_start_naming_it(
    tmp_path: Path, document: str, extra: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        deployment_from_env(env(tmp_path, document, **extra))
    assert str(caught.value).startswith(expected), caught.value


def test_a_missing_keys_file_fails_the_cold_start_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^KMS_GUARD_KEYS_FILE: cannot read .*nowhere\.json"):
        deployment_from_env({ENV_NAMES["keys_file"]: str(tmp_path / "nowhere.json")})


def test_single_region_keys_only_for_vendors_that_allow_them() -> None:
    deployment = parse_key_list([{"keyArn": SINGLE, "vendor": "elastic"}])
    assert deployment.keys[0].regions == ("us-west-2",)
    [line] = problems([{"keyArn": SINGLE}])
    assert "Rockset requires one" in line


def test_one_entrys_problems_are_all_reported_and_a_shared_one_once() -> None:
    found = problems(
        [
            {"keyArn": MRK, "regions": ["eu-west-1"], "remediation": "x", "restoreKeyState": "maybe", "vendor": "acme"},
            {"keyArn": MRK2},
        ],
        shared={"state_table": "x"},
    )
    assert sum(line.startswith("keys[0].") for line in found) == 4
    assert found.count("state_table: not a DynamoDB table name: 'x'") == 1
    assert len(found) == 5


@pytest.mark.parametrize(
    "key_id",
    ["MRK-0123456789ABCDEF0123456789ABCDEF", "1234ABCD-12AB-34CD-56EF-1234567890AB", "x", "mrk-123"],
)
def test_a_key_id_kms_would_never_issue_is_refused(key_id: str) -> None:
    """CloudTrail names keys by their IDs as KMS issues them (lower case): any other spelling would never be matched
    by an event, so the key would be guarded by the schedule alone, silently."""
    [line] = problems([{"keyArn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}", "vendor": "elastic"}])
    assert line.startswith("keys[0].keyArn:")
    assert "is not a KMS key ID" in line


def test_a_hostile_keys_file_is_a_one_line_error(tmp_path: Path) -> None:
    import base64
    import zlib

    deep = '{"format": 1, "keys": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(SettingsError) as caught:
        deployment_from_env(env(tmp_path, deep))
    assert str(caught.value).startswith("KMS_GUARD_KEYS_FILE: not JSON")
    bomb = "zlib+base64:" + base64.b64encode(zlib.compress(b" " * 50_000_000, 9)).decode()
    document = json.dumps({"format": 1, "keys": [{"keyArn": MRK, "vendorProfile": bomb}]})
    with pytest.raises(SettingsError) as caught:
        deployment_from_env(env(tmp_path, document))
    assert "the embedded profile is larger than 65536 bytes" in str(caught.value)


@pytest.mark.parametrize("variable", ["remediation", "regions", "restore_key_state", "vendor_roles", "vendor_account"])
def test_a_per_key_variable_beside_the_keys_file_fails_the_cold_start(tmp_path: Path, variable: str) -> None:
    document = keys_document(parse_key_list([{"keyArn": MRK}]))
    with pytest.raises(SettingsError) as caught:
        deployment_from_env(env(tmp_path, document, **{ENV_NAMES[variable]: "anything"}))
    assert str(caught.value).startswith(f"KMS_GUARD_KEYS_FILE and {ENV_NAMES[variable]}")


def test_an_entry_with_an_unknown_field_still_has_its_other_problems_reported() -> None:
    found = problems([{"keyArn": MRK, "colour": "blue", "remediation": "fix-it"}])
    assert found[0].startswith("keys[0]: unknown field 'colour'")
    assert found[1].startswith("keys[0].remediation: unknown mode 'fix-it'")
    assert len(found) == 2


def test_a_field_given_twice_in_the_keys_file_is_refused(tmp_path: Path) -> None:
    """Which of two `remediation` fields JSON keeps is the parser's choice, never the user's intent."""
    document = f'{{"format": 1, "keys": [{{"keyArn": "{MRK}", "remediation": "off", "remediation": "revert"}}]}}'
    with pytest.raises(SettingsError) as caught:
        deployment_from_env(env(tmp_path, document))
    assert str(caught.value) == ("KMS_GUARD_KEYS_FILE: not JSON (the field 'remediation' appears twice in one object)")
