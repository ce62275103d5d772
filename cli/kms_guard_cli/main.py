"""The `kms-guard` command. Contract (commands, JSON fields, exit codes): design.md, "The kms-guard command".

Exit codes: 0 compliant / handled, 1 non-compliant / cannot repair safely, 2 bad input, 3 at-risk, 4 (only with
`--strict-coverage`) the key is fine but the guard is blind in some Region (its coverage is not "ok").
Bad input never shows a traceback: one line on stderr that says what is wrong and where (a key list with several
problems: one line per problem, all of them at once).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TextIO

from kms_guard.core import profiles
from kms_guard.core.alerts import vendor_grantee
from kms_guard.core.arns import ArnError, KeyArn
from kms_guard.core.compliance import PolicyAssessment, assess_policy
from kms_guard.core.coverage import CoverageReport
from kms_guard.core.findings import Finding, KeyReport, RegionReport, Verdict, verdict_of, worst
from kms_guard.core.policy import MAX_POLICY_BYTES, PolicyError, parse_policy
from kms_guard.core.repair import StatementError, guard_statements, plan_repair
from kms_guard.core.second_opinion import Opinion, agrees, dispute, guard_view, reference_policy
from kms_guard.core.vendor import ACCOUNT_ID, ROCKSET, VendorProfile
from kms_guard.deployment import Deployment, DuplicateField, KeyListError, no_duplicate_fields, parse_key_list
from kms_guard.guard import Result, second_opinion_dicts
from kms_guard.memory import CollectingNotifier
from kms_guard.settings import Settings, SettingsError, build_settings
from kms_guard.wiring import wire, wire_fleet

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+\Z")

EXIT_OK = 0
EXIT_NON_COMPLIANT = 1
EXIT_BAD_INPUT = 2
EXIT_AT_RISK = 3
EXIT_BLIND = 4
"""`check` / `handle-event --strict-coverage`: the key is compliant (or the event handled) but coverage is not ok.
A key problem keeps its own code: it matters more than the guard's sight."""

VERDICT_EXIT: dict[Verdict, int] = {"compliant": EXIT_OK, "non-compliant": EXIT_NON_COMPLIANT, "at-risk": EXIT_AT_RISK}


class BadInput(Exception):
    """A user error: printed as one line (or one line per problem, all at once), exit 2."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{self.prog}: {message}")


def _read_input(path: str, what: str = "policy") -> str:
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read(4 * 1024 * 1024 + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {what} file {path}: {exc.strerror}") from None
    if len(data) > 4 * 1024 * 1024:
        raise BadInput(f"{what} file {path} is larger than 4 MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what} file {path} is not UTF-8 text (byte {exc.start})") from None


def _vendor_roles(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(r.strip() for item in (args.vendor_role or []) for r in item.split(",") if r.strip())


def _vendor_profile_text(args: argparse.Namespace) -> str | None:
    if args.vendor_profile is None:
        return None
    if args.vendor is not None:
        raise BadInput("--vendor and --vendor-profile: give one, not both")
    return _read_input(args.vendor_profile, "vendor profile")


def _vendor(args: argparse.Namespace) -> VendorProfile:
    """The vendor profile the options name: --vendor / --vendor-profile, --vendor-role, --vendor-account."""
    account = args.vendor_account
    if account is not None and not ACCOUNT_ID.match(account):
        raise BadInput(f"--vendor-account must be a 12-digit AWS account ID, not {account[:40]!r}")
    roles = _vendor_roles(args)
    text = _vendor_profile_text(args)
    try:
        if text is None and args.vendor is None and not roles:
            profile = ROCKSET if account is None else ROCKSET.with_account(account)
        else:
            profile = profiles.load(
                args.vendor, profile_text=text, profile_source=args.vendor_profile or "", roles=roles, account=account
            )
        key_arn = _key_arn(args) if getattr(args, "key_arn", None) else None
        if key_arn is not None:
            profiles.check_external(profile, KeyArn.parse(key_arn).account)
    except profiles.ProfileError as exc:
        raise BadInput(str(exc)) from None
    return profile


def _key_arn(args: argparse.Namespace) -> str | None:
    if args.key_arn is None:
        return None
    try:
        return str(KeyArn.parse(args.key_arn))
    except ArnError as exc:
        raise BadInput(f"--key-arn: {exc}") from None


def _policy_assessment(text: str, profile: VendorProfile, source: str, key_arn: str | None) -> PolicyAssessment:
    try:
        return assess_policy(parse_policy(text), profile, key_arn=key_arn)
    except PolicyError as exc:
        raise BadInput(f"{source}: {exc}") from None


def _source(path: str) -> str:
    return "stdin" if path == "-" else path


# --- text rendering --------------------------------------------------------------------------------------------

_VERDICT_TEXT: dict[Verdict, str] = {
    "compliant": "COMPLIANT",
    "at-risk": "AT RISK",
    "non-compliant": "NON-COMPLIANT",
}


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Control and format characters (newlines, ESC, bidi overrides, zero-width), lone surrogates, line separators."""


def safe_text(text: object) -> str:
    """Text from a policy, an event or AWS, made safe for one line of a terminal: every control, format or surrogate
    character becomes a `\\uXXXX` escape, so a Sid or condition key cannot start a forged line, move the cursor,
    reorder what follows or fail to encode. JSON output needs none of this (it escapes on its own)."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
        if unicodedata.category(c) in _UNSAFE_CATEGORIES
        else c
        for c in text
    )


def render_finding(finding: Finding) -> str:
    where = f" [{safe_text(finding.region)}]" if finding.region else ""
    stmt = f" (statement {safe_text(finding.statement)})" if finding.statement is not None else ""
    return f"  {finding.severity.upper():8} {finding.code}{where}{stmt}: {safe_text(finding.message)}"


def _print_policy_verdict(assessment: PolicyAssessment, profile: VendorProfile, out: TextIO) -> None:
    verdict = verdict_of(assessment.findings)
    print(f"{_VERDICT_TEXT[verdict]}: key policy for {profile.display_name} ({vendor_grantee(profile)})", file=out)
    if assessment.granted:
        print(f"  granted:     {', '.join(assessment.granted)}", file=out)
    if assessment.missing:
        print(f"  missing:     {', '.join(assessment.missing)}", file=out)
    if assessment.conditional:
        print(f"  conditional: {', '.join(assessment.conditional)}", file=out)
    for finding in assessment.findings:
        print(render_finding(finding), file=out)


def _emit_json(payload: dict[str, Any], out: TextIO) -> None:
    json.dump(payload, out, indent=2, sort_keys=False)
    out.write("\n")


# --- commands --------------------------------------------------------------------------------------------------


def _second_opinion_on_policy(text: str, profile: VendorProfile, key_arn: str | None) -> Opinion:
    """CheckNoNewAccess with the user's AWS credentials, in the key's Region (or the configured one)."""
    from botocore.session import get_session
    from kms_guard.aws.access_analyzer import AccessAnalyzerReasoner
    from kms_guard.aws.clients import ClientFactory

    session = get_session()
    region = key_arn.split(":")[3] if key_arn else session.get_config_variable("region")
    if not region:
        raise BadInput("--second-opinion needs a Region: give --key-arn, or set AWS_REGION")
    opinion = AccessAnalyzerReasoner(ClientFactory(session)).check_no_new_access(
        region, text, reference_policy(profile, region)
    )
    if opinion.result == "ERROR":
        raise BadInput(f"--second-opinion: no answer from IAM Access Analyzer: {opinion.message}")
    return opinion


def _print_second_opinion(opinion: Opinion, agreed: bool | None, out: TextIO) -> None:
    verdict = {True: "agrees", False: "DISAGREES", None: "no answer"}[agreed]
    print(f"  second opinion (IAM Access Analyzer CheckNoNewAccess): {verdict}: {safe_text(opinion.text())}", file=out)


def cmd_check_policy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    profile = _vendor(args)
    text = _read_input(args.file)
    key_arn = _key_arn(args)
    assessment = _policy_assessment(text, profile, _source(args.file), key_arn)
    findings = list(assessment.findings)
    opinion: Opinion | None = None
    if args.second_opinion:
        opinion = _second_opinion_on_policy(text, profile, key_arn)
        region = key_arn.split(":")[3] if key_arn else None
        disputed = dispute(RegionReport(region or "", key_arn or "", None, tuple(findings), text), opinion, profile)
        if disputed is not None:
            findings.append(dataclasses.replace(disputed, region=region))
    verdict = verdict_of(findings)
    view = guard_view(RegionReport("", "", None, assessment.findings, text)) or "granted"
    if args.output == "json":
        payload: dict[str, Any] = {
            "verdict": verdict,
            "granted_actions": list(assessment.granted),
            "missing_actions": list(assessment.missing),
            "conditional_actions": list(assessment.conditional),
            "findings": [f.to_dict() for f in findings],
        }
        if opinion is not None:
            payload["second_opinion"] = {**opinion.to_dict(), "agrees": agrees(view, opinion)}
        _emit_json(payload, out)
    else:
        _print_policy_verdict(assessment, profile, out)
        for finding in findings[len(assessment.findings) :]:
            print(render_finding(finding), file=out)
        if opinion is not None:
            _print_second_opinion(opinion, agrees(view, opinion), out)
    return VERDICT_EXIT[verdict]


def cmd_fix_policy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    profile = _vendor(args)
    text = _read_input(args.file)
    try:
        plan = plan_repair("restore-statement", text, profile, key_arn=_key_arn(args))
    except PolicyError as exc:
        raise BadInput(f"{_source(args.file)}: {exc}") from None
    if args.output == "json":
        policies = {"repair": plan.policy, "already-compliant": text, "refused": None}
        _emit_json({**plan.to_dict(), "policy": policies[plan.status]}, out)
    else:
        if plan.status == "repair" and plan.policy is not None:
            out.write(plan.policy if plan.policy.endswith("\n") else plan.policy + "\n")
        elif plan.status == "already-compliant":
            out.write(text if text.endswith("\n") else text + "\n")
        prefix = {"repair": "repaired", "already-compliant": "unchanged", "refused": "cannot repair safely"}
        print(f"{prefix[plan.status]}: {safe_text(plan.description)}", file=err)
    return EXIT_NON_COMPLIANT if plan.status == "refused" else EXIT_OK


GUARD_SID = "KmsGuardMonitorAndRepair"


def guard_role_statement(role_arns: list[str], remediation: str, restore_key_state: bool) -> dict[str, Any]:
    """What the key policy must allow the guard's own roles: read always, write only what is switched on."""
    from kms_guard.aws.kms import KEY_STATE_ACTIONS, POLICY_WRITE_ACTIONS, READ_ACTIONS

    actions = list(READ_ACTIONS)
    if remediation != "off":
        actions += POLICY_WRITE_ACTIONS
    if restore_key_state:
        actions += KEY_STATE_ACTIONS
    return {
        "Sid": GUARD_SID,
        "Effect": "Allow",
        "Principal": {"AWS": role_arns[0] if len(role_arns) == 1 else role_arns},
        "Action": actions,
        "Resource": "*",
    }


def cmd_statement(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    profile = _vendor(args)
    key_arn = _key_arn(args)
    try:
        statements = guard_statements(profile, key_arn.split(":")[3] if key_arn else None)
    except StatementError as exc:
        raise BadInput(str(exc)) from None
    vendor_count = len(statements)
    roles = [r.strip() for r in (args.guard_role_arn or []) for r in r.split(",") if r.strip()]
    for role in roles:
        if not _ROLE_ARN.match(role):
            raise BadInput(f"--guard-role-arn: not an IAM role ARN: {role[:120]!r}")
    if args.remediation not in ("off", "restore-statement", "revert"):
        raise BadInput(f"--remediation: unknown mode {args.remediation[:40]!r} (one of off, restore-statement, revert)")
    if roles:
        statements.append(guard_role_statement(roles, args.remediation, args.restore_key_state))
    if args.output == "json":
        _emit_json({"vendor": profile.name, "statements": statements}, out)
    else:
        grant = "grant" if vendor_count == 1 else f"{vendor_count} statements"
        print(
            f"# Add to the key policy in every Region: {profile.display_name}'s {grant} ({vendor_grantee(profile)})"
            + (", and the guard's own access" if roles else "")
            + ". They go in the Statement list."
            + (f" If {profile.display_name} loses the key: {profile.outage_text}" if profile.outage else ""),
            file=out,
        )
        body = statements[0] if len(statements) == 1 else statements
        print(json.dumps(body, indent=2), file=out)
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return build_settings(
            key_arn=args.key_arn,
            regions=args.regions,
            vendor_account=args.vendor_account,
            vendor=args.vendor,
            vendor_roles=_vendor_roles(args),
            vendor_profile=_vendor_profile_text(args),
            topic_arn=getattr(args, "topic_arn", None),
            state_table=getattr(args, "state_table", None),
            remediation=getattr(args, "remediation", "off"),
            restore_key_state=getattr(args, "restore_key_state", False),
            dry_run=getattr(args, "dry_run", False),
            trusted_principals=getattr(args, "trusted_principals", None),
            security_hub=getattr(args, "security_hub", False),
            finding_events=getattr(args, "finding_events", False),
            second_opinion=getattr(args, "second_opinion", False),
            names=CLI_NAMES,
        )
    except SettingsError as exc:
        raise BadInput(str(exc)) from None


CLI_NAMES = {
    "key_arn": "--key-arn",
    "regions": "--regions",
    "topic_arn": "--topic-arn",
    "state_table": "--state-table",
    "remediation": "--remediation",
    "restore_key_state": "--restore-key-state",
    "dry_run": "--dry-run",
    "trusted_principals": "--trusted-principals",
    "vendor_account": "--vendor-account",
    "vendor": "--vendor",
    "vendor_roles": "--vendor-role",
    "vendor_profile": "--vendor-profile",
    "security_hub": "--security-hub",
    "finding_events": "--finding-events",
    "second_opinion": "--second-opinion",
}


def _print_report(report: KeyReport, vendor: VendorProfile, out: TextIO) -> None:
    print(
        f"{_VERDICT_TEXT[report.verdict]}: {report.key_arn} ({vendor.display_name}: {vendor_grantee(vendor)})", file=out
    )
    for region in report.regions:
        state = safe_text(region.key_state or "-")
        print(f"  {region.region:16} {state:24} {_VERDICT_TEXT[region.verdict]}", file=out)
        for finding in region.findings:
            print("  " + render_finding(finding), file=out)


_COVERAGE_TEXT = {"ok": "OK", "blind": "BLIND", "unknown": "UNKNOWN"}


def _print_coverage(coverage: CoverageReport, out: TextIO) -> None:
    verdict = coverage.verdict
    note = "" if verdict == "ok" else " (the key's verdict is unaffected; changes there are seen by the schedule only)"
    print(f"COVERAGE: {_COVERAGE_TEXT[verdict]}{note}", file=out)
    for region in coverage.regions:
        print(f"  {region.region:16} {_COVERAGE_TEXT[region.status]}", file=out)
        for finding in region.findings:
            print(f"    WARNING  {finding.code} [{finding.region}]: {safe_text(finding.message)}", file=out)
            for command in finding.fix:
                print(f"      fix: {safe_text(command)}", file=out)


def _with_coverage(code: int, coverage: CoverageReport | None, strict: bool) -> int:
    """Coverage changes the exit code only with --strict-coverage, and only where the key itself is fine."""
    if strict and code == EXIT_OK and coverage is not None and coverage.verdict != "ok":
        return EXIT_BLIND
    return code


def _check_payload(report: KeyReport, result: Result) -> dict[str, Any]:
    """One key's check object (design.md): what `check --key-arn` prints, and each entry of `check --config`'s keys."""
    payload = report.to_dict()
    if result.opinions:
        payload["second_opinion"] = second_opinion_dicts(report, result.opinions)
    return payload


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.config is not None:
        return cmd_check_config(args, out, err)
    settings = _settings(args)
    guard = wire(settings).guard
    result = guard.check_result()
    report = result.report or KeyReport(settings.key_arn, ())
    coverage = guard.check_coverage()
    if args.output == "json":
        payload = _check_payload(report, result)
        if coverage is not None:
            payload["coverage"] = coverage.to_dict()
        _emit_json(payload, out)
    else:
        _print_report(report, settings.vendor, out)
        _print_opinions(report, result.opinions, out)
        if coverage is not None:
            _print_coverage(coverage, out)
    return _with_coverage(VERDICT_EXIT[report.verdict], coverage, args.strict_coverage)


SINGLE_KEY_FLAGS = {
    "regions": "--regions",
    "vendor": "--vendor",
    "vendor_profile": "--vendor-profile",
    "vendor_role": "--vendor-role",
    "vendor_account": "--vendor-account",
}
"""What each entry of a key list sets for itself: with --config these flags would be ambiguous, so they are refused."""
MAX_PROFILE_FILE = 1024 * 1024


def _profile_reader(base: Path) -> Callable[[str], str]:
    """Reads a key entry's `vendorProfile` path: relative to the configuration file's directory (the current
    directory for stdin), so a configuration and the profiles beside it work from wherever the command runs. Every
    failure is an OSError naming the file it looked for (parse_key_list turns it into one line for that entry)."""

    def read(path: str) -> str:
        try:
            resolved = base / Path(path).expanduser()
            with open(resolved, "rb") as handle:
                data = handle.read(MAX_PROFILE_FILE + 1)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror or exc} ({safe_text(str(base / path)[:200])})") from None
        except (ValueError, RuntimeError) as exc:  # a NUL or an unencodable character, an unknown ~user
            raise OSError(0, f"not a usable path ({safe_text(str(exc)[:120])})") from None
        if len(data) > MAX_PROFILE_FILE:
            raise OSError(0, f"{resolved} is larger than 1 MB")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OSError(0, f"{resolved} is not UTF-8 text (byte {exc.start})") from None

    return read


def _config_deployment(args: argparse.Namespace) -> Deployment:
    """The key list of `check --config FILE`, validated as the CDK app validates the context `keys`: every problem at
    once, one line each, naming the entry."""
    given = [flag for name, flag in SINGLE_KEY_FLAGS.items() if getattr(args, name, None) not in (None, [])]
    if given:
        raise BadInput(
            f"--config and {', '.join(given)}: with --config every key's vendor and Regions come from its entry in "
            "the file (vendor, vendorRoles, vendorProfile, regions)"
        )
    source = _source(args.config)
    text = _read_input(args.config, "config")
    try:
        raw = json.loads(text, object_pairs_hook=no_duplicate_fields)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except DuplicateField as exc:
        raise BadInput(f"{source}: {exc}") from None
    except RecursionError:
        raise BadInput(f"{source}: not valid JSON: nested too deeply") from None
    base = Path.cwd() if args.config == "-" else Path(args.config).absolute().parent
    shared = {
        "security_hub": args.security_hub,
        "finding_events": args.finding_events,
        "second_opinion": args.second_opinion,
    }
    try:
        return parse_key_list(raw, shared=shared, label=source, read_file=_profile_reader(base))
    except KeyListError as exc:
        raise BadInput(str(exc), exc.problems) from None
    except SettingsError as exc:
        raise BadInput(str(exc)) from None


def cmd_check_config(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Every key of the list, as `check --key-arn` checks one, concurrently; the guard's sight read once for the
    union of the keys' Regions, alongside them."""
    deployment = _config_deployment(args)
    fleet = wire_fleet(deployment).fleet
    sight = fleet.sight or fleet.guards[0]  # one key: its own guard holds the sight, as `check --key-arn`
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="coverage") as pool:
        reading = pool.submit(sight.check_coverage)
        checked = fleet.check()
        coverage = reading.result()
    keys = [
        (settings, result.report or KeyReport(arn, ()), result)
        for settings, (arn, result) in zip(deployment.keys, checked, strict=True)
    ]
    verdict = worst([report.verdict for _, report, _ in keys])
    if args.output == "json":
        payload: dict[str, Any] = {
            "verdict": verdict,
            "keys": [_check_payload(report, result) for _, report, result in keys],
        }
        if coverage is not None:
            payload["coverage"] = coverage.to_dict()
        _emit_json(payload, out)
    else:
        for settings, report, result in keys:
            _print_report(report, settings.vendor, out)
            _print_opinions(report, result.opinions, out)
            print("", file=out)
        if coverage is not None:
            _print_coverage(coverage, out)
        counts = {v: sum(report.verdict == v for _, report, _ in keys) for v in _VERDICT_TEXT}
        tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        noun = "key" if len(keys) == 1 else "keys"
        print(f"WORST VERDICT: {_VERDICT_TEXT[verdict]} ({len(keys)} {noun}: {tally})", file=out)
    return _with_coverage(VERDICT_EXIT[verdict], coverage, args.strict_coverage)


def _print_opinions(report: KeyReport, opinions: dict[str, Opinion], out: TextIO) -> None:
    for item in second_opinion_dicts(report, opinions):
        verdict = {True: "agrees", False: "DISAGREES", None: "no answer"}[item["agrees"]]
        opinion = opinions[item["region"]]
        text = safe_text(opinion.text())
        print(f"  second opinion [{item['region']}] (IAM Access Analyzer): {verdict}: {text}", file=out)


def cmd_handle_event(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = _settings(args)
    if settings.writes_enabled and not settings.dry_run and settings.state_table is None:
        # The write limit (3 per key per Region per hour), the dedupe of deliveries and the holds live in the state
        # table: without one, every run would start afresh and could write again.
        raise BadInput(
            "--remediation / --restore-key-state write to the key: give --state-table (the write limit and the "
            "dedupe live there), or add --dry-run"
        )
    text = _read_input(args.file, "event")
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{_source(args.file)}: event is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise BadInput(f"{_source(args.file)}: event is not valid JSON: nested too deeply") from None
    wired = wire(settings)
    result = wired.guard.handle(event)
    if result.decision == "evaluated" and result.coverage is None:
        # The Lambda checks coverage on the schedule only (cost); from the command line it is always shown. An
        # ignored event stays free of AWS calls.
        result.coverage = wired.guard.check_coverage()
    printed = wired.notifier.alerts if isinstance(wired.notifier, CollectingNotifier) else []
    if args.output == "json":
        payload = result.to_dict()
        if printed:
            payload["alert_messages"] = [
                {"subject": a.subject, "body": a.body, "attributes": a.attributes()} for a in printed
            ]
        _emit_json(payload, out)
    elif result.decision == "ignored":
        print(f"IGNORED: {safe_text(result.reason)}", file=out)
    elif result.report is not None:
        event_line = safe_text(f"{result.event.name} in {result.event.region}") if result.event else "event"
        print(f"EVALUATED after {event_line}", file=out)
        _print_report(result.report, settings.vendor, out)
        _print_opinions(result.found or result.report, result.opinions, out)
        for outcome in result.remediation:
            verified = {True: " (verified)", False: " (NOT verified)", None: ""}[outcome.verified]
            description = safe_text(outcome.description)
            print(f"  remediation [{outcome.region}] {outcome.status}{verified}: {description}", file=out)
        for alert in result.alerts:
            where = "printed below" if printed else f"published to {settings.topic_arn}"
            print(f"  alert ({where}): {safe_text(alert.subject)}", file=out)
        if result.coverage is not None:
            _print_coverage(result.coverage, out)
        for alert in printed:
            print(f"\n--- {alert.subject}\n{alert.body}", file=out)
    if result.report is not None and result.report.verdict == "non-compliant":
        return EXIT_NON_COMPLIANT
    return _with_coverage(EXIT_OK, result.coverage, args.strict_coverage)


def cmd_vendors(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        if args.vendor_profile is not None:
            documents = [profiles.parse(_read_input(args.vendor_profile, "vendor profile"), args.vendor_profile)]
        elif args.name is not None:
            documents = [profiles.shipped(args.name)]
        else:
            documents = [profiles.shipped(name) for name in profiles.SHIPPED]
    except profiles.ProfileError as exc:
        raise BadInput(str(exc)) from None
    summaries = [profiles.summary(d) for d in documents]
    if args.output == "json":
        _emit_json({"vendors": summaries}, out)
        return EXIT_OK
    for i, item in enumerate(summaries):
        if i:
            print("", file=out)
        _print_vendor(item, out)
    return EXIT_OK


def _print_vendor(item: dict[str, Any], out: TextIO) -> None:
    status = item["status"] + (f" since {item['discontinued']}" if item["discontinued"] else "")
    default = " (default)" if item["name"] == profiles.DEFAULT else ""
    print(f"{item['name']}{default}: {item['display_name']}, {status}", file=out)
    for grant in item["grants"]:
        who = {
            "account": f"account {grant.get('account') or '(ask: --vendor-account)'}",
            "vendor-roles": "roles " + (", ".join(grant.get("roles") or []) or "(ask: --vendor-role)"),
            "pinned-wildcard": 'Principal "*" pinned by '
            + "; ".join(f"{c['operator']} {c['key']} {', '.join(c['values'])}" for c in grant.get("conditions", [])),
            "customer-role": "a role in your own account (not evaluated yet)",
        }[grant["kind"]]
        optional = " [optional, not guarded]" if grant.get("optional") else ""
        print(f"  grant {grant['label']}{optional}: {who}", file=out)
        print(f"    actions: {', '.join(grant['actions'])}", file=out)
    rules = item["key_rules"]
    multi = rules["multi_region"] or "unknown"
    alias = {True: "accepted", False: "not accepted", None: "unknown"}[rules["alias_accepted"]]
    print(f"  key: {rules['key_spec']}, {rules['key_usage']}, multi-Region {multi}, alias {alias}", file=out)
    print(f"  Regions: {', '.join(item['regions']) or 'the vendor resource Region'}", file=out)
    minutes = item["outage"]["minutes"]
    print(
        f"  outage: {'within ' + str(minutes) + ' minutes' if minutes is not None else 'time not published'}: "
        f"{item['outage']['text']}",
        file=out,
    )
    print(f"  recovery: {item['outage']['recovery']}", file=out)
    for entry in item["unconfirmed"]:
        print(f"  unconfirmed {entry['fact']}: {entry['ask']}", file=out)
    for source in item["sources"]:
        print(f"  source: {source}", file=out)


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kms_guard_cli.demo import DemoError, run_demo

    try:
        summary = run_demo(out if args.output == "text" else None)
    except DemoError as exc:
        print(f"kms-guard: demo failed: {exc}", file=err)
        return EXIT_NON_COMPLIANT
    if args.output == "json":
        _emit_json(summary, out)
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def build_parser() -> argparse.ArgumentParser:
    output = _Parser(add_help=False)
    output.add_argument("--output", choices=("text", "json"), default="text", help="text for people (default), json")
    common = _Parser(add_help=False, parents=[output])
    common.add_argument(
        "--vendor",
        metavar="NAME",
        help=f"a shipped vendor profile (default {profiles.DEFAULT}; `kms-guard vendors` lists them): "
        + ", ".join(profiles.SHIPPED),
    )
    common.add_argument("--vendor-profile", metavar="FILE", help="your own vendor profile file (README, Vendors)")
    common.add_argument(
        "--vendor-role",
        action="append",
        metavar="ARN",
        help="a role ARN the vendor issued for you (repeat, or comma-separate; ClickHouse, Confluent)",
    )
    common.add_argument(
        "--vendor-account",
        metavar="ACCOUNT_ID",
        help=f"the vendor's AWS account ID (default: the profile's; Rockset's is {ROCKSET.account}; TiDB asks for it)",
    )
    parser = _Parser(
        prog="kms-guard", description="Guard a customer-managed KMS key that a SaaS vendor needs (kms-guard vendors)."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check_policy = sub.add_parser(
        "check-policy",
        parents=[common],
        help="evaluate a key policy document offline",
        description=f"Evaluate a key policy (at most {MAX_POLICY_BYTES} bytes in KMS). Exit 0 compliant, "
        "1 non-compliant, 3 at-risk, 2 bad input.",
    )
    check_policy.add_argument("file", metavar="FILE", help="policy JSON file, or - for stdin")
    check_policy.add_argument("--key-arn", help="the key's ARN, to decide statements whose Resource names a key ARN")
    check_policy.add_argument(
        "--second-opinion",
        action="store_true",
        help="also ask IAM Access Analyzer (CheckNoNewAccess, one charged call; AWS credentials, the key's Region or "
        "AWS_REGION); a disagreement is a VERDICT_DISPUTED warning",
    )
    check_policy.set_defaults(func=cmd_check_policy)

    fix_policy = sub.add_parser(
        "fix-policy",
        parents=[common],
        help="print the repaired key policy (stdout) and what changed (stderr)",
        description="Add the missing actions to the guard-owned statement; never weakens a Deny or drops a "
        "statement. Exit 0 repaired or already fine, 1 cannot repair safely, 2 bad input.",
    )
    fix_policy.add_argument("file", metavar="FILE", help="policy JSON file, or - for stdin")
    fix_policy.add_argument("--key-arn", help="the key's ARN, to decide statements whose Resource names a key ARN")
    fix_policy.set_defaults(func=cmd_fix_policy)

    statement = sub.add_parser(
        "statement",
        parents=[common],
        help="print the statement to add to a key policy",
        description="Prints the vendor's grant; with --guard-role-arn also the statement that lets the guard's roles "
        "read the key (and repair it, with --remediation / --restore-key-state as deployed).",
    )
    statement.add_argument(
        "--guard-role-arn",
        action="append",
        metavar="ARN",
        help="the guard's role ARN (repeat, or comma-separate; from the KmsGuard stack outputs)",
    )
    statement.add_argument("--key-arn", help="the key's ARN (its Region fills a pinned kms:ViaService, e.g. TiDB)")
    statement.add_argument("--remediation", default="off", help="the remediation mode deployed (default off)")
    statement.add_argument("--restore-key-state", action="store_true", help="restoreKeyState is deployed on")
    statement.set_defaults(func=cmd_statement)

    key = _Parser(add_help=False)
    key.add_argument("--key-arn", required=True, help="the key's full ARN (arn:aws:kms:REGION:ACCOUNT:key/mrk-...)")
    key.add_argument(
        "--regions", help="comma-separated Rockset Regions, the key's own included (default: the key's Region)"
    )
    live = _Parser(add_help=False)
    live.add_argument(
        "--security-hub", action="store_true", help="import the findings into Security Hub (the key's home Region)"
    )
    live.add_argument(
        "--finding-events", action="store_true", help="put a KMS Guard Finding event per change on the default bus"
    )
    live.add_argument(
        "--second-opinion",
        action="store_true",
        help="confirm each Region's verdict with IAM Access Analyzer CheckNoNewAccess (charged per call)",
    )
    live.add_argument(
        "--strict-coverage",
        action="store_true",
        help="exit 4 when the key is fine but the guard's coverage is not ok (a Region where it cannot see events)",
    )

    check = sub.add_parser(
        "check",
        parents=[common, live],
        help="evaluate the live key (or every key of a configuration file) in every Region",
        description="Read the key (DescribeKey, GetKeyPolicy) in every Region with the default credentials "
        "(AWS_ENDPOINT_URL honoured) and evaluate it; then check the guard's coverage (trails, its rules) in every "
        "Region. With --config FILE, every key of the list, concurrently, and the coverage once for all their "
        "Regions; the exit code is the worst key's. "
        "Exit 0 compliant, 1 non-compliant, 3 at-risk, 2 bad input; 4 compliant but blind, with --strict-coverage.",
    )
    which = check.add_mutually_exclusive_group(required=True)
    which.add_argument("--key-arn", help="the key's full ARN (arn:aws:kms:REGION:ACCOUNT:key/mrk-...)")
    which.add_argument(
        "--config",
        metavar="FILE",
        help="a JSON key list, as the CDK context `keys` ([{keyArn, vendor, vendorRoles, vendorProfile, regions, "
        'remediation, restoreKeyState}], or {"keys": [...]}), - for stdin; vendorProfile paths are relative to '
        "the file's directory",
    )
    check.add_argument(
        "--regions", help="comma-separated Rockset Regions, the key's own included (default: the key's Region)"
    )
    check.set_defaults(func=cmd_check)

    handle = sub.add_parser(
        "handle-event",
        parents=[common, key, live],
        help="run one EventBridge event through the same code path as the Lambda",
        description="Exit 0 handled or ignored, 1 non-compliant, 2 bad input, 4 handled but blind with "
        "--strict-coverage. Without --state-table no state is kept; without --topic-arn alerts are printed instead "
        "of published.",
    )
    handle.add_argument("file", metavar="FILE", help="EventBridge event JSON file, or - for stdin")
    handle.add_argument("--remediation", default="off", help="off (default) | restore-statement | revert")
    handle.add_argument("--restore-key-state", action="store_true", help="EnableKey / CancelKeyDeletion as needed")
    handle.add_argument("--dry-run", action="store_true", help="plan and report repairs, write nothing")
    handle.add_argument("--trusted-principals", help="comma-separated role/user ARNs whose changes are alert-only")
    handle.add_argument("--state-table", help="DynamoDB state table (in the key's Region)")
    handle.add_argument("--topic-arn", help="SNS topic to publish alerts to")
    handle.set_defaults(func=cmd_handle_event)

    vendors = sub.add_parser(
        "vendors",
        parents=[output],
        help="list the vendor profiles",
        description="Lists the shipped vendor profiles (or one, or your own with --vendor-profile): how the vendor is "
        "granted, the actions, key rules, Regions, time to outage, what is unconfirmed, sources.",
    )
    vendors.add_argument("name", nargs="?", metavar="NAME", help="one shipped profile")
    vendors.add_argument("--vendor-profile", metavar="FILE", help="show your own profile file (validated)")
    vendors.set_defaults(func=cmd_vendors)

    demo = sub.add_parser(
        "demo",
        parents=[output],  # the story's vendors are fixed: a --vendor it would ignore is refused, not accepted
        help="run the whole guard end to end against an embedded, simulated AWS account",
        description="Runs the real Lambda handlers against moto in process. Exit 0 when every step turns out as "
        "the story says, 1 otherwise.",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    try:
        args = build_parser().parse_args(list(argv))
        func: Command = args.func
        return func(args, out, err)
    except BadInput as exc:
        for problem in exc.problems:
            print(f"kms-guard: error: {safe_text(problem)}", file=err)
        return EXIT_BAD_INPUT


def _never_raise_on_encoding(*streams: TextIO) -> None:
    """Whatever slips past `safe_text` (a policy echoed by fix-policy) is escaped by the stream, never a traceback."""
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _never_raise_on_encoding(sys.stdout, sys.stderr)
    try:
        return run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kms-guard ... | head`: the reader left; nothing to report
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush cannot fail
        return 0


if __name__ == "__main__":
    sys.exit(main())
