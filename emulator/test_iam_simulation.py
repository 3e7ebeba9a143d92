"""Tests of IAM SimulatePrincipalPolicy (iam_simulation.py) through boto3.

The emulator runs as a subprocess on a free loopback port, started by a small runner that
installs iam_simulation and then calls launch_gate_emulator.main() (which installs the
other patches itself), so launch_gate_emulator.py needs no change for these tests.
Nothing leaves 127.0.0.0/8; the credentials are dummies.

Run: `.venv/bin/python -m unittest emulator/test_iam_simulation.py`
"""

from __future__ import annotations

import json
import sys
import unittest
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
ACCOUNT = "123456789012"
ASG = f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:0f5e2d4c-1111-2222-3333-444455556666"
WEB_GROUP = f"{ASG}:autoScalingGroupName/web"
BATCH_GROUP = f"{ASG}:autoScalingGroupName/batch"
TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})
# The emulator installs the simulation itself (launch_gate_emulator.install()).
from test_emulator import start_emulator, stop_emulator  # noqa: E402


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=4)


class SimulatePrincipalPolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.proc, cls.url = start_emulator()
        cls.iam = boto3.client(
            "iam", endpoint_url=cls.url, region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30),
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    @classmethod
    def tearDownClass(cls) -> None:
        stop_emulator(cls.proc)

    # --- helpers ---

    def role(self, inline: dict[str, str] | None = None, managed: dict[str, str] | None = None,
             path: str = "/") -> str:
        """A new role with the given inline and (new, attached) managed policies; its ARN."""
        name = f"role-{uuid.uuid4().hex[:8]}"
        arn = self.iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        for policy_name, document in (inline or {}).items():
            self.iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=document)
        for policy_name, document in (managed or {}).items():
            policy_arn = self.iam.create_policy(
                PolicyName=f"{policy_name}-{uuid.uuid4().hex[:6]}", PolicyDocument=document
            )["Policy"]["Arn"]
            self.iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        return arn

    def simulate(self, arn: str, actions: list[str], resources: list[str] | None = None,
                 **extra: Any) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"PolicySourceArn": arn, "ActionNames": actions, **extra}
        if resources is not None:
            kwargs["ResourceArns"] = resources
        answer = self.iam.simulate_principal_policy(**kwargs)
        self.assertFalse(answer["IsTruncated"])
        return answer["EvaluationResults"]

    def decisions(self, arn: str, actions: list[str], resources: list[str] | None = None) -> dict[tuple[str, str], str]:
        return {
            (r["EvalActionName"], r["EvalResourceName"]): r["EvalDecision"]
            for r in self.simulate(arn, actions, resources)
        }

    def gate_role(self) -> str:
        """The launch-gate setup: CompleteLifecycleAction on one group, ec2:Describe* anywhere."""
        return self.role(
            inline={"complete-lifecycle": policy({
                "Sid": "Complete", "Effect": "Allow",
                "Action": "autoscaling:CompleteLifecycleAction", "Resource": WEB_GROUP,
            })},
            managed={"ec2-describe": policy({
                "Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*",
            })},
        )

    # --- the tests ---

    def test_inline_and_managed_policies(self) -> None:
        arn = self.gate_role()
        results = self.simulate(
            arn,
            ["autoscaling:CompleteLifecycleAction", "ec2:DescribeInstances", "ec2:TerminateInstances"],
            [WEB_GROUP, BATCH_GROUP],
        )
        self.assertEqual(
            [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results],
            [
                ("autoscaling:CompleteLifecycleAction", WEB_GROUP, "allowed"),
                ("autoscaling:CompleteLifecycleAction", BATCH_GROUP, "implicitDeny"),
                ("ec2:DescribeInstances", WEB_GROUP, "allowed"),
                ("ec2:DescribeInstances", BATCH_GROUP, "allowed"),
                ("ec2:TerminateInstances", WEB_GROUP, "implicitDeny"),
                ("ec2:TerminateInstances", BATCH_GROUP, "implicitDeny"),
            ],
        )
        [complete] = results[0]["MatchedStatements"]
        self.assertEqual(complete["SourcePolicyId"], "complete-lifecycle")
        self.assertEqual(complete["SourcePolicyType"], "role")
        # json.dumps(indent=4): the statement's `{` is on line 4, column 9; its `}` on line 9.
        self.assertEqual(complete["StartPosition"], {"Line": 4, "Column": 9})
        self.assertEqual(complete["EndPosition"], {"Line": 9, "Column": 10})
        [describe] = results[2]["MatchedStatements"]
        self.assertTrue(describe["SourcePolicyId"].startswith("ec2-describe-"))
        self.assertEqual(describe["SourcePolicyType"], "user-managed")
        self.assertEqual(results[1]["MatchedStatements"], [])

    def test_default_resource_is_star(self) -> None:
        # Without ResourceArns the resource is "*": a statement for one group ARN does not
        # match it, one for "*" does.
        arn = self.gate_role()
        self.assertEqual(
            self.decisions(arn, ["autoscaling:CompleteLifecycleAction", "ec2:DescribeSubnets"]),
            {("autoscaling:CompleteLifecycleAction", "*"): "implicitDeny",
             ("ec2:DescribeSubnets", "*"): "allowed"},
        )

    def test_explicit_deny_wins(self) -> None:
        arn = self.role(
            inline={
                "allow-all": policy({"Effect": "Allow", "Action": "*", "Resource": "*"}),
                "no-terminate": policy(
                    {"Effect": "Deny", "Action": ["ec2:TerminateInstances"], "Resource": "*"},
                    {"Effect": "Deny", "Action": "autoscaling:*", "Resource": BATCH_GROUP},
                ),
            },
        )
        results = self.simulate(
            arn, ["ec2:TerminateInstances", "ec2:DescribeInstances", "autoscaling:CompleteLifecycleAction"],
            [WEB_GROUP, BATCH_GROUP],
        )
        decisions = {(r["EvalActionName"], r["EvalResourceName"]): r for r in results}
        terminate = decisions[("ec2:TerminateInstances", WEB_GROUP)]
        self.assertEqual(terminate["EvalDecision"], "explicitDeny")
        self.assertEqual([m["SourcePolicyId"] for m in terminate["MatchedStatements"]], ["no-terminate"])
        self.assertEqual(decisions[("ec2:DescribeInstances", BATCH_GROUP)]["EvalDecision"], "allowed")
        self.assertEqual(
            decisions[("autoscaling:CompleteLifecycleAction", WEB_GROUP)]["EvalDecision"], "allowed")
        self.assertEqual(
            decisions[("autoscaling:CompleteLifecycleAction", BATCH_GROUP)]["EvalDecision"], "explicitDeny")

    def test_deny_in_managed_policy_wins_over_inline_allow(self) -> None:
        arn = self.role(
            inline={"allow": policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"})},
            managed={"deny": policy({"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*"})},
        )
        self.assertEqual(
            self.decisions(arn, ["ec2:RunInstances", "ec2:StopInstances"]),
            {("ec2:RunInstances", "*"): "explicitDeny", ("ec2:StopInstances", "*"): "allowed"},
        )

    def test_wildcards(self) -> None:
        arn = self.role(inline={"wild": policy(
            {"Effect": "Allow", "Action": "EC2:describe*", "Resource": "*"},
            {"Effect": "Allow", "Action": "autoscaling:?ompleteLifecycleAction",
             "Resource": f"{ASG}:autoScalingGroupName/w*"},
            {"Effect": "Allow", "Action": "elasticloadbalancing:DescribeTarget????th",
             "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/app-?/*"},
        )})
        tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app-1/0123456789abcdef"
        other_tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app-10/0123456789abcdef"
        self.assertEqual(
            self.decisions(
                arn,
                ["ec2:DescribeInstances", "ec2:describeinstancestatus", "ec2:RunInstances",
                 "autoscaling:CompleteLifecycleAction", "elasticloadbalancing:DescribeTargetHealth"],
                [WEB_GROUP, BATCH_GROUP, tg, other_tg],
            ),
            {
                **{("ec2:DescribeInstances", r): "allowed" for r in (WEB_GROUP, BATCH_GROUP, tg, other_tg)},
                **{("ec2:describeinstancestatus", r): "allowed" for r in (WEB_GROUP, BATCH_GROUP, tg, other_tg)},
                **{("ec2:RunInstances", r): "implicitDeny" for r in (WEB_GROUP, BATCH_GROUP, tg, other_tg)},
                ("autoscaling:CompleteLifecycleAction", WEB_GROUP): "allowed",
                ("autoscaling:CompleteLifecycleAction", BATCH_GROUP): "implicitDeny",
                ("autoscaling:CompleteLifecycleAction", tg): "implicitDeny",
                ("autoscaling:CompleteLifecycleAction", other_tg): "implicitDeny",
                ("elasticloadbalancing:DescribeTargetHealth", WEB_GROUP): "implicitDeny",
                ("elasticloadbalancing:DescribeTargetHealth", BATCH_GROUP): "implicitDeny",
                ("elasticloadbalancing:DescribeTargetHealth", tg): "allowed",
                ("elasticloadbalancing:DescribeTargetHealth", other_tg): "implicitDeny",
            },
        )

    def test_not_action_and_not_resource(self) -> None:
        arn = self.role(inline={
            "all-but-iam": policy({"Effect": "Allow", "NotAction": ["iam:*", "sts:*"], "Resource": "*"}),
            "not-batch": policy({"Effect": "Deny", "Action": "autoscaling:*", "NotResource": [WEB_GROUP]}),
        })
        self.assertEqual(
            self.decisions(arn, ["ec2:DescribeInstances", "iam:PassRole", "autoscaling:CompleteLifecycleAction"],
                           [WEB_GROUP, BATCH_GROUP]),
            {
                ("ec2:DescribeInstances", WEB_GROUP): "allowed",
                ("ec2:DescribeInstances", BATCH_GROUP): "allowed",
                ("iam:PassRole", WEB_GROUP): "implicitDeny",
                ("iam:PassRole", BATCH_GROUP): "implicitDeny",
                ("autoscaling:CompleteLifecycleAction", WEB_GROUP): "allowed",
                ("autoscaling:CompleteLifecycleAction", BATCH_GROUP): "explicitDeny",
            },
        )

    def test_statement_object_and_condition(self) -> None:
        # Statement as a single object; a Condition is taken as satisfied (see the module).
        document = json.dumps({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction", "Resource": "*",
            "Condition": {"StringEquals": {"autoscaling:ResourceTag/app": "web"}},
        }})
        arn = self.role(inline={"conditional": document})
        [result] = self.simulate(
            arn, ["autoscaling:CompleteLifecycleAction"], [WEB_GROUP],
            ContextEntries=[{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["127.0.0.1"],
                             "ContextKeyType": "ip"}],
        )
        self.assertEqual(result["EvalDecision"], "allowed")
        [matched] = result["MatchedStatements"]
        self.assertEqual(matched["SourcePolicyId"], "conditional")
        # One line: `{"Version": "2012-10-17", "Statement": {` puts the `{` in column 40.
        self.assertEqual(matched["StartPosition"], {"Line": 1, "Column": 40})
        self.assertEqual(matched["EndPosition"], {"Line": 1, "Column": len(document)})

    def test_role_with_path(self) -> None:
        arn = self.role(path="/launch-gate/", managed={"describe": policy(
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"})})
        self.assertIn(":role/launch-gate/role-", arn)
        [result] = self.simulate(arn, ["ec2:DescribeInstances"])
        self.assertEqual(result["EvalDecision"], "allowed")

    def test_aws_managed_policy_type(self) -> None:
        # The emulator does not load AWS managed policies (moto's
        # MOTO_IAM_LOAD_MANAGED_POLICIES), so this checks the classification in-process.
        sys.path.insert(0, str(HERE))
        import iam_simulation

        class Version:
            version_id, document = "v3", policy({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"})

        class Managed:
            name, arn = "AmazonEC2ReadOnlyAccess", "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess"
            default_version_id, versions = "v3", [Version()]

        class Entity:
            policies: dict[str, str] = {}
            managed_policies = {Managed.arn: Managed()}

        [managed] = iam_simulation._entity_policies(Entity(), "role")
        [matched] = managed.matched("Allow", "ec2:DescribeImages", "*")
        self.assertEqual(matched["SourcePolicyId"], "AmazonEC2ReadOnlyAccess")
        self.assertEqual(matched["SourcePolicyType"], "aws-managed")

    def test_user_with_group_policies(self) -> None:
        user, group = f"user-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
        user_arn = self.iam.create_user(UserName=user)["User"]["Arn"]
        self.iam.create_group(GroupName=group)
        self.iam.add_user_to_group(GroupName=group, UserName=user)
        self.iam.put_user_policy(UserName=user, PolicyName="own", PolicyDocument=policy(
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}))
        self.iam.put_group_policy(GroupName=group, PolicyName="team", PolicyDocument=policy(
            {"Effect": "Allow", "Action": "autoscaling:Describe*", "Resource": "*"}))
        results = {r["EvalActionName"]: r for r in self.simulate(
            user_arn, ["ec2:DescribeInstances", "autoscaling:DescribeAutoScalingGroups", "ec2:RunInstances"])}
        self.assertEqual(results["ec2:DescribeInstances"]["EvalDecision"], "allowed")
        self.assertEqual(results["ec2:DescribeInstances"]["MatchedStatements"][0]["SourcePolicyType"], "user")
        self.assertEqual(results["autoscaling:DescribeAutoScalingGroups"]["EvalDecision"], "allowed")
        [team] = results["autoscaling:DescribeAutoScalingGroups"]["MatchedStatements"]
        self.assertEqual((team["SourcePolicyId"], team["SourcePolicyType"]), ("team", "group"))
        self.assertEqual(results["ec2:RunInstances"]["EvalDecision"], "implicitDeny")

    def test_unknown_principal_is_no_such_entity(self) -> None:
        for arn, kind in ((f"arn:aws:iam::{ACCOUNT}:role/no-such-role", "role"),
                          (f"arn:aws:iam::{ACCOUNT}:user/no-such-user", "user"),
                          ("arn:aws:iam::210987654321:role/elsewhere", "role")):
            with self.subTest(arn=arn):
                with self.assertRaises(ClientError) as caught:
                    self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["ec2:DescribeInstances"])
                error = caught.exception.response
                self.assertEqual(error["Error"]["Code"], "NoSuchEntity")
                self.assertIn(f"The {kind} with name", error["Error"]["Message"])
                self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 404)

    def test_invalid_arn_is_invalid_input(self) -> None:
        with self.assertRaises(ClientError) as caught:
            self.iam.simulate_principal_policy(
                PolicySourceArn="arn:aws:s3:::launch-gate-bucket", ActionNames=["ec2:DescribeInstances"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidInput")

    def test_pagination(self) -> None:
        arn = self.gate_role()
        actions = ["ec2:DescribeInstances", "ec2:DescribeSubnets", "ec2:RunInstances"]
        first = self.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=2)
        self.assertTrue(first["IsTruncated"])
        self.assertEqual(len(first["EvaluationResults"]), 2)
        second = self.iam.simulate_principal_policy(
            PolicySourceArn=arn, ActionNames=actions, MaxItems=2, Marker=first["Marker"])
        self.assertFalse(second["IsTruncated"])
        self.assertNotIn("Marker", second)
        self.assertEqual(
            [r["EvalActionName"] for r in first["EvaluationResults"] + second["EvaluationResults"]], actions)
        paginated = [
            r["EvalDecision"]
            for page in self.iam.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=arn, ActionNames=actions, PaginationConfig={"PageSize": 1})
            for r in page["EvaluationResults"]
        ]
        self.assertEqual(paginated, ["allowed", "allowed", "implicitDeny"])

    def test_raw_query_xml(self) -> None:
        # The wire format the AWS SDK for Rust parses: awsQuery XML, lists as <member>.
        arn = self.gate_role()
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = (f"Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn={arn}"
                "&ActionNames.member.1=ec2%3ADescribeInstances")
        request = AWSRequest(method="POST", url=self.url + "/", data=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(session.get_credentials(), "iam", "us-east-1").add_auth(request)
        http = urllib.request.Request(self.url + "/", data=body.encode(), method="POST",
                                      headers=dict(request.headers.items()))
        with urllib.request.urlopen(http, timeout=10) as response:
            xml = response.read().decode()
        self.assertIn("<SimulatePrincipalPolicyResponse", xml)
        self.assertIn("<SimulatePrincipalPolicyResult>", xml)
        self.assertIn("<EvaluationResults><member>", xml.replace(" ", "").replace("\n", ""))
        self.assertIn("<EvalDecision>allowed</EvalDecision>", xml)
        self.assertIn("<IsTruncated>false</IsTruncated>", xml)
        self.assertIn("<RequestId>", xml)


if __name__ == "__main__":
    unittest.main()
