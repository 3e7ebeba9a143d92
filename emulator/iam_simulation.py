"""IAM `SimulatePrincipalPolicy` for launch-gate's emulator (moto 5.2 answers it with
NotImplemented).

`install()` adds `simulate_principal_policy` to moto's `IamResponse`. The answer is an
`ActionResult` like every other moto IAM action's, so moto's query-protocol serializer
writes the XML from botocore's `SimulatePrincipalPolicy` output shape
(`<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult><EvaluationResults>
<member>...`), as boto3 and the AWS SDK for Rust parse it; errors are moto's IAM
`ErrorResponse`s (`NoSuchEntity`, `InvalidInput`).

Emulated (docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html,
reference_policies_evaluation-logic.html), as far as a setup checker needs:

* `PolicySourceArn` a role, user or group ARN of the calling account
  (`arn:aws:iam::ACCOUNT:role/PATH/NAME`, looked up by name); an unknown entity (or
  another account's) is `NoSuchEntity` ("The role with name X cannot be found."), an ARN
  that is no role, user or group ARN is `InvalidInput`;
* the entity's identity policies: its inline policies (`PutRolePolicy`, `PutUserPolicy`,
  `PutGroupPolicy`) and its attached managed policies (their default version); for a user,
  also the inline and attached policies of the groups it belongs to, as AWS does;
* one `EvaluationResults` member per action of `ActionNames` and resource of
  `ResourceArns` (default `*`, and then a statement applies only if its resource pattern
  matches the literal `*`, as in AWS's simulator), actions outer, with `EvalActionName`,
  `EvalResourceName`, `EvalDecision` (`explicitDeny` if any applicable statement denies,
  else `allowed` if any allows, else `implicitDeny`), `MatchedStatements` (the deny
  statements for `explicitDeny`, the allow statements for `allowed`, none for
  `implicitDeny`) and an empty `MissingContextValues`; `IsTruncated` (`MaxItems`,
  default 100, and `Marker` page the results);
* statements: `Statement` an object or a list; `Effect` `Allow` or `Deny` (anything else
  never applies); `Action`/`NotAction` and `Resource`/`NotResource` a string or a list;
  the wildcards `*` (any run of characters, `:` and `/` included) and `?` (one character),
  actions case-insensitively (`EC2:describe*` matches `ec2:DescribeInstances`), resources
  case-sensitively; a statement with neither `Resource` nor `NotResource` never applies;
* each matched statement as `SourcePolicyId` (the policy's name, inline or managed),
  `SourcePolicyType` (`role`, `user`, `group` for inline policies; `aws-managed` or
  `user-managed` for managed ones) and `StartPosition`/`EndPosition` (1-based line and
  column of the statement's `{`, and just after its `}`, in the stored document text; left
  out if the document cannot be scanned).

Not emulated:

* conditions: a statement with a `Condition` block is treated as if its condition held
  (it applies and is listed in `MatchedStatements`), whatever `ContextEntries` says;
  `ContextEntries` are ignored and `MissingContextValues` is always empty. AWS evaluates
  the condition against the context and, for a key missing from it, does not apply the
  statement and lists the key in `MissingContextValues`. So here a conditional Allow may
  say `allowed` (AWS: `implicitDeny`) and a conditional Deny `explicitDeny` (AWS: maybe
  `allowed`);
* policy variables (`${aws:username}` ...) in resources are matched literally;
* resource-based policies (`ResourcePolicy`, `ResourceOwner`, `CallerArn`,
  `ResourceHandlingOption`), `EvalDecisionDetails`, `ResourceSpecificResults`;
* permissions boundaries (neither the entity's own, set by `PutRolePermissionsBoundary`,
  nor `PermissionsBoundaryPolicyInputList`) and `PermissionsBoundaryDecisionDetail`;
* Organizations SCPs/RCPs and `OrganizationsDecisionDetail`; session policies;
* `PolicyInputList` and `PolicyExclusionList` (ignored); `SimulateCustomPolicy` and
  `GetContextKeysFor*Policy` (still NotImplemented);
* validation of action names against the service authorization reference, and the
  service-specific ARN segment rules for wildcards.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from moto.core.responses import ActionResult
from moto.iam import responses as iam_responses
from moto.iam.exceptions import InvalidInput, NoSuchEntity, NotFoundException

_PRINCIPAL_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(role|user|group)/(?:.*/)?([^/]+)$")
_DEFAULT_MAX_ITEMS = 100


# --- policy documents -----------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _matches_any(patterns: Any, value: str, ignore_case: bool) -> bool:
    return any(
        isinstance(p, str) and _glob(p, ignore_case).fullmatch(value) is not None
        for p in _as_list(patterns)
    )


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    """Whether the statement covers the action on the resource (conditions assumed true)."""
    if "Action" in statement:
        action_ok = _matches_any(statement["Action"], action, ignore_case=True)
    elif "NotAction" in statement:
        action_ok = not _matches_any(statement["NotAction"], action, ignore_case=True)
    else:
        return False
    if not action_ok:
        return False
    if "Resource" in statement:
        return _matches_any(statement["Resource"], resource, ignore_case=False)
    if "NotResource" in statement:
        return not _matches_any(statement["NotResource"], resource, ignore_case=False)
    return False


def _position(text: str, offset: int) -> dict[str, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return {"Line": text.count("\n", 0, offset) + 1, "Column": offset - line_start + 1}


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _statements(text: str) -> list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]]:
    """The document's statements, each with its start and end position (None if unknown).

    Scans the top-level object with json's own decoder so that the positions are those of
    the text as stored; falls back to json.loads without positions.
    """
    decoder = json.JSONDecoder()
    try:
        found: list[tuple[Any, int, int]] | None = None
        i = _skip_ws(text, 0)
        if text[i] != "{":
            raise ValueError("not an object")
        i = _skip_ws(text, i + 1)
        while text[i] != "}":
            key, i = json.decoder.scanstring(text, i + 1)  # text[i] is the opening quote
            i = _skip_ws(text, i)
            if text[i] != ":":
                raise ValueError("expected ':'")
            i = _skip_ws(text, i + 1)
            start = i
            value, i = decoder.raw_decode(text, i)
            if key == "Statement":  # the last one wins, as in json.loads
                if isinstance(value, list):
                    found, j = [], _skip_ws(text, start + 1)
                    for _ in value:
                        element, end = decoder.raw_decode(text, j)
                        found.append((element, j, end))
                        j = _skip_ws(text, end)
                        if text[j] == ",":
                            j = _skip_ws(text, j + 1)
                else:
                    found = [(value, start, i)]
            i = _skip_ws(text, i)
            if text[i] == ",":
                i = _skip_ws(text, i + 1)
            elif text[i] != "}":
                raise ValueError("expected ',' or '}'")
        return [
            (s, _position(text, start), _position(text, end))
            for s, start, end in (found or [])
            if isinstance(s, dict)
        ]
    except (ValueError, IndexError):
        pass
    try:
        document = json.loads(text)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    return [(s, None, None) for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


class _Policy:
    def __init__(self, name: str, policy_type: str, document: str) -> None:
        self.name = name
        self.policy_type = policy_type
        self.statements = _statements(document)

    def matched(self, effect: str, action: str, resource: str) -> list[dict[str, Any]]:
        out = []
        for statement, start, end in self.statements:
            if statement.get("Effect") == effect and _applies(statement, action, resource):
                entry: dict[str, Any] = {
                    "SourcePolicyId": self.name,
                    "SourcePolicyType": self.policy_type,
                }
                if start is not None and end is not None:
                    entry["StartPosition"] = start
                    entry["EndPosition"] = end
                out.append(entry)
        return out


# --- the principal's policies ---------------------------------------------------------------


def _default_document(policy: Any) -> str:
    for version in policy.versions:
        if version.version_id == policy.default_version_id:
            return version.document
    return ""


def _entity_policies(entity: Any, inline_type: str) -> Iterable[_Policy]:
    for name, document in entity.policies.items():
        yield _Policy(name, inline_type, document)
    for policy in entity.managed_policies.values():
        managed_type = "aws-managed" if ":iam::aws:policy/" in policy.arn else "user-managed"
        yield _Policy(policy.name, managed_type, _default_document(policy))


def _principal_policies(backend: Any, account_id: str, arn: str) -> list[_Policy]:
    match = _PRINCIPAL_ARN.match(arn or "")
    if not match:
        raise InvalidInput(f"Invalid ARN {arn!r}: PolicySourceArn must be the ARN of a user, group or role.")
    _, account, kind, name = match.groups()
    not_found = NoSuchEntity(f"The {kind} with name {name} cannot be found.")
    if account != account_id:
        raise not_found
    try:
        if kind == "role":
            return list(_entity_policies(backend.get_role(name), "role"))
        if kind == "group":
            return list(_entity_policies(backend.get_group(name), "group"))
        user = backend.get_user(name)
        policies = list(_entity_policies(user, "user"))
        for group in backend.get_groups_for_user(name):
            policies.extend(_entity_policies(group, "group"))
        return policies
    except (NotFoundException, NoSuchEntity):
        raise not_found from None


# --- the action -----------------------------------------------------------------------------


def _evaluate(policies: list[_Policy], action: str, resource: str) -> dict[str, Any]:
    denies = [m for p in policies for m in p.matched("Deny", action, resource)]
    allows = [m for p in policies for m in p.matched("Allow", action, resource)]
    if denies:
        decision, matched = "explicitDeny", denies
    elif allows:
        decision, matched = "allowed", allows
    else:
        decision, matched = "implicitDeny", []
    return {
        "EvalActionName": action,
        "EvalResourceName": resource,
        "EvalDecision": decision,
        "MatchedStatements": matched,
        "MissingContextValues": [],
    }


def simulate_principal_policy(self: Any) -> ActionResult:
    policies = _principal_policies(self.backend, self.current_account, self._get_param("PolicySourceArn"))
    actions = _as_list(self._get_param("ActionNames"))
    if not actions:
        raise InvalidInput("ActionNames must contain at least one action name.")
    resources = _as_list(self._get_param("ResourceArns")) or ["*"]
    # ContextEntries, PolicyInputList, ResourcePolicy ... are ignored (module docstring).
    results = [_evaluate(policies, a, r) for a in actions for r in resources]
    max_items = self._get_int_param("MaxItems", _DEFAULT_MAX_ITEMS)
    marker = self._get_param("Marker")
    try:
        start = int(marker) if marker else 0
    except ValueError:
        raise InvalidInput(f"Invalid Marker {marker!r}.") from None
    if max_items < 1 or start < 0:
        raise InvalidInput("MaxItems must be at least 1 and Marker a value from a previous answer.")
    page = results[start:start + max_items]
    result: dict[str, Any] = {"EvaluationResults": page, "IsTruncated": False}
    if start + max_items < len(results):
        result["IsTruncated"] = True
        result["Marker"] = str(start + max_items)
    return ActionResult(result)


def install() -> None:
    """Adds SimulatePrincipalPolicy to moto's IAM response class. Idempotent."""
    iam_responses.IamResponse.simulate_principal_policy = simulate_principal_policy
