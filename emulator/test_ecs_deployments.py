"""Tests of the emulator's ECS blue/green service deployments with Lambda lifecycle hooks
(ecs_deployments.py), through the ECS, ELBv2 and EC2 APIs (boto3) and the control surface.

The emulator runs as a subprocess on a free loopback port, as in test_emulator.py; the
services' tasks get addresses from a subnet 127.0.1.0/24 of a VPC 127.0.0.0/16. Nothing
leaves 127.0.0.0/8; the credentials are dummies. The test plays Lambda: it fetches the
due hook invocations and posts each function's output.

Run: `.venv/bin/python -m unittest discover -s emulator -p 'test_*.py'`
"""

from __future__ import annotations

import datetime
import json
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_emulator import eventually, start_emulator, stop_emulator  # noqa: E402

HOOK = "arn:aws:lambda:us-east-1:123456789012:function:launch-gate"
HOOK_ROLE = "arn:aws:iam::123456789012:role/ecs-lambda-invoke"
PORT = 8080
HOOK_STAGES = (
    "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
)


class EcsDeploymentsTest(unittest.TestCase):
    """A cluster, three revisions of a task definition, and a BLUE_GREEN service per test."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.proc, cls.url = start_emulator()
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30)

        def client(service: str) -> Any:
            return boto3.client(
                service, endpoint_url=cls.url, region_name="us-east-1", config=config,
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )

        cls.ec2, cls.elbv2, cls.ecs = client("ec2"), client("elbv2"), client("ecs")
        cls.vpc = cls.ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        cls.subnet = cls.ec2.create_subnet(
            VpcId=cls.vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="us-east-1a"
        )["Subnet"]["SubnetId"]
        cls.security_group = cls.ec2.create_security_group(
            GroupName="app", Description="app", VpcId=cls.vpc
        )["GroupId"]
        cls.cluster = "launch-gate"
        cls.ecs.create_cluster(clusterName=cls.cluster)
        cls.definitions = [
            cls.ecs.register_task_definition(
                family="app", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                cpu="256", memory="512",
                containerDefinitions=[{
                    "name": "web", "image": f"app:{version}", "memory": 512,
                    "portMappings": [{"containerPort": PORT}],
                }],
            )["taskDefinition"]["taskDefinitionArn"]
            for version in (1, 2, 3)
        ]

    @classmethod
    def tearDownClass(cls) -> None:
        stop_emulator(cls.proc)

    def setUp(self) -> None:
        self.control("POST", "/_launch_gate/ecs/settings", {"ecs_hook_minute_seconds": 60})
        self.invocations()  # nothing left over from another test

    # --- the control surface ---

    def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def invocations(self) -> list[dict[str, Any]]:
        status, body = self.control("GET", "/_launch_gate/ecs/hook-invocations")
        self.assertEqual(status, 200)
        return body

    def invocation(self, timeout: float = 5.0) -> dict[str, Any]:
        """The one invocation that comes due next."""
        [invocation] = eventually(self.invocations, timeout=timeout, what="a hook invocation")
        return invocation

    def respond(self, invocation: dict[str, Any], response: Any, error: bool = False) -> dict[str, Any]:
        status, body = self.control("POST", "/_launch_gate/ecs/hook-response", {
            "executionId": invocation["executionId"], "response": response, "error": error})
        self.assertEqual(status, 200, body)
        return body

    # --- AWS resources ---

    def target_group(self) -> str:
        return self.elbv2.create_target_group(
            Name=f"tg-{uuid.uuid4().hex[:8]}", Protocol="HTTP", Port=PORT, VpcId=self.vpc,
            TargetType="ip", HealthCheckPath="/health",
        )["TargetGroups"][0]["TargetGroupArn"]

    def service(self, hooks: list[dict[str, Any]] | None = None, strategy: str = "BLUE_GREEN",
                count: int = 2) -> tuple[str, str, str]:
        """A service of the first task definition with `count` tasks, behind two IP target
        groups; returns its name and its (production, alternate) target groups."""
        name = f"svc-{uuid.uuid4().hex[:8]}"
        blue, green = self.target_group(), self.target_group()
        self.ecs.create_service(
            cluster=self.cluster, serviceName=name, taskDefinition=self.definitions[0],
            desiredCount=count, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": [self.subnet], "securityGroups": [self.security_group]}},
            loadBalancers=[{
                "targetGroupArn": blue, "containerName": "web", "containerPort": PORT,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": green,
                    "productionListenerRule": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3",
                    "testListenerRule": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/4",
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-elb",
                },
            }],
            deploymentConfiguration={"strategy": strategy, "bakeTimeInMinutes": 0, "lifecycleHooks": hooks or []},
        )
        return name, blue, green

    def hook(self, *stages: str, **extra: Any) -> dict[str, Any]:
        return {"hookTargetArn": HOOK, "roleArn": HOOK_ROLE, "lifecycleStages": list(stages), **extra}

    def describe_service(self, name: str) -> dict[str, Any]:
        return self.ecs.describe_services(cluster=self.cluster, services=[name])["services"][0]

    def deploy(self, name: str, definition: int) -> str:
        """UpdateService to another task definition; returns the new deployment's ARN."""
        service = self.ecs.update_service(
            cluster=self.cluster, service=name, taskDefinition=self.definitions[definition])["service"]
        return service["currentServiceDeployment"]

    def deployment(self, arn: str) -> dict[str, Any]:
        return self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]

    def revision(self, arn: str) -> dict[str, Any]:
        return self.ecs.describe_service_revisions(serviceRevisionArns=[arn])["serviceRevisions"][0]

    def ended(self, arn: str) -> dict[str, Any]:
        return eventually(
            lambda: (lambda d: d if d["status"] not in ("IN_PROGRESS", "ROLLBACK_IN_PROGRESS") else None)(
                self.deployment(arn)),
            what="the deployment's end",
        )

    def tasks(self, arns: list[str]) -> list[dict[str, Any]]:
        if not arns:
            return []
        return self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"]

    def revision_tasks(self, name: str, revision_arn: str, status: str = "RUNNING") -> list[dict[str, Any]]:
        """The service's tasks of one revision (its number is their startedBy's)."""
        arns = self.ecs.list_tasks(cluster=self.cluster, serviceName=name, desiredStatus=status)["taskArns"]
        number = revision_arn.rsplit("/", 1)[-1]
        return [t for t in self.tasks(arns) if t["startedBy"] == f"ecs-svc/{number}"]

    @staticmethod
    def ip(task: dict[str, Any]) -> str:
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        return details["privateIPv4Address"]

    def registered(self, target_group: str) -> set[tuple[str, int]]:
        health = self.elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        return {(h["Target"]["Id"], h["Target"]["Port"]) for h in health}

    def succeed_first_deployment(self, name: str) -> tuple[str, dict[str, Any]]:
        """Deploys the second task definition, answering every hook SUCCEEDED."""
        arn = self.deploy(name, 1)
        while self.deployment(arn)["status"] == "IN_PROGRESS":
            for invocation in self.invocations():
                self.respond(invocation, {"hookStatus": "SUCCEEDED"})
            time.sleep(0.05)
        done = self.deployment(arn)
        self.assertEqual(done["status"], "SUCCESSFUL")
        return arn, done

    # --- tests ---

    def test_create_service_starts_blue_tasks_in_the_production_target_group(self) -> None:
        instance_ip = self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet
        )["Instances"][0]["PrivateIpAddress"]
        name, blue, green = self.service([self.hook("POST_SCALE_UP")])
        service = self.describe_service(name)
        self.assertEqual(service["deploymentConfiguration"]["strategy"], "BLUE_GREEN")
        self.assertEqual(service["deploymentConfiguration"]["lifecycleHooks"][0]["hookTargetArn"], HOOK)
        self.assertEqual(service["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"], green)
        self.assertEqual((service["runningCount"], service["pendingCount"]), (2, 0))
        [current] = service["currentServiceRevisions"]
        self.assertRegex(current["arn"], rf"^arn:aws:ecs:us-east-1:123456789012:service-revision/{self.cluster}/{name}/\d{{19}}$")
        self.assertEqual((current["requestedTaskCount"], current["runningTaskCount"], current["pendingTaskCount"]), (2, 2, 0))
        creation = self.deployment(service["currentServiceDeployment"])
        self.assertEqual((creation["status"], creation["targetServiceRevision"]["arn"]), ("SUCCESSFUL", current["arn"]))
        self.assertEqual(creation["sourceServiceRevisions"], [])

        tasks = self.revision_tasks(name, current["arn"])
        self.assertEqual(len(tasks), 2)
        for task in tasks:
            self.assertEqual((task["lastStatus"], task["desiredStatus"]), ("RUNNING", "RUNNING"))
            self.assertEqual(task["group"], f"service:{name}")
            self.assertEqual(task["taskDefinitionArn"], self.definitions[0])
            self.assertTrue(self.ip(task).startswith("127.0.1."))
            self.assertEqual(task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"], self.ip(task))
        ips = {self.ip(t) for t in tasks}
        self.assertNotIn(instance_ip, ips)
        later_ip = self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet
        )["Instances"][0]["PrivateIpAddress"]
        self.assertNotIn(later_ip, ips)  # the subnet's one allocator
        # Described again: still RUNNING (moto would move them towards STOPPED).
        self.assertEqual({t["lastStatus"] for t in self.tasks([t["taskArn"] for t in tasks])}, {"RUNNING"})
        self.assertEqual(self.registered(blue), {(ip, PORT) for ip in ips})
        self.assertEqual(self.registered(green), set())
        resolved = self.revision(current["arn"])["resolvedConfiguration"]["loadBalancers"]
        self.assertEqual([r["targetGroupArn"] for r in resolved], [blue])

    def test_hook_in_progress_then_succeeded_completes_the_deployment(self) -> None:
        name, blue, green = self.service([self.hook("POST_SCALE_UP", hookDetails={"bucket": "approvals"})])
        [source] = self.describe_service(name)["currentServiceRevisions"]
        blue_tasks = self.revision_tasks(name, source["arn"])
        arn = self.deploy(name, 1)
        self.assertRegex(arn, rf"^arn:aws:ecs:us-east-1:123456789012:service-deployment/{self.cluster}/{name}/[A-Za-z0-9]{{21}}$")

        invocation = self.invocation()
        self.assertEqual(self.invocations(), [])  # handed out once
        deployment = self.deployment(arn)
        target = deployment["targetServiceRevision"]["arn"]
        self.assertEqual((deployment["status"], deployment["lifecycleStage"]), ("IN_PROGRESS", "POST_SCALE_UP"))
        self.assertEqual([s["arn"] for s in deployment["sourceServiceRevisions"]], [source["arn"]])
        self.assertEqual(deployment["targetServiceRevision"]["requestedProductionTrafficWeight"], 0.0)
        [hook] = deployment["lifecycleHookDetails"]
        self.assertEqual((hook["hookId"], hook["targetType"], hook["targetArn"], hook["status"]),
                         (invocation["executionId"], "AWS_LAMBDA", HOOK, "IN_PROGRESS"))
        self.assertEqual((invocation["hookTargetArn"], invocation["roleArn"]), (HOOK, HOOK_ROLE))
        service_arn = self.describe_service(name)["serviceArn"]
        self.assertEqual(invocation["payload"], {
            "executionId": invocation["executionId"],
            "lifecycleStage": "POST_SCALE_UP",
            "resourceArn": arn,
            "executionDetails": {
                "serviceArn": service_arn,
                "targetServiceRevisionArn": target,
                "testTrafficWeights": {},
                "productionTrafficWeights": {},
            },
            "hookDetails": {"bucket": "approvals"},
        })

        # The green tasks: RUNNING, on loopback, registered with the other target group.
        green_tasks = self.revision_tasks(name, target)
        self.assertEqual(len(green_tasks), 2)
        self.assertEqual({t["taskDefinitionArn"] for t in green_tasks}, {self.definitions[1]})
        green_ips = {self.ip(t) for t in green_tasks}
        self.assertTrue(all(ip.startswith("127.0.1.") for ip in green_ips))
        self.assertEqual(self.registered(green), {(ip, PORT) for ip in green_ips})
        self.assertEqual(self.registered(blue), {(self.ip(t), PORT) for t in blue_tasks})
        revision = self.revision(target)
        self.assertEqual(revision["taskDefinition"], self.definitions[1])
        self.assertEqual(revision["loadBalancers"][0]["advancedConfiguration"]["alternateTargetGroupArn"], green)
        self.assertEqual(revision["resolvedConfiguration"]["loadBalancers"][0]["targetGroupArn"], green)
        self.assertEqual(
            [r["arn"] for r in self.describe_service(name)["currentServiceRevisions"]], [source["arn"], target])

        # IN_PROGRESS: invoked again after callBackDelay, with the merged hookDetails.
        answered = time.monotonic()
        self.assertEqual(self.respond(invocation, {"hookStatus": "IN_PROGRESS", "callBackDelay": 1,
                                                   "hookDetails": {"a": 1}})["outcome"], "IN_PROGRESS")
        self.assertEqual(self.invocations(), [])
        again = self.invocation()
        self.assertGreaterEqual(time.monotonic() - answered, 0.9)
        self.assertEqual(again["executionId"], invocation["executionId"])
        self.assertEqual(again["payload"]["hookDetails"], {"bucket": "approvals", "a": 1})
        self.assertEqual(self.deployment(arn)["status"], "IN_PROGRESS")

        self.assertEqual(self.respond(again, {"hookStatus": "SUCCEEDED"})["deploymentStatus"], "SUCCESSFUL")
        done = self.deployment(arn)
        self.assertEqual((done["status"], done["lifecycleStage"]), ("SUCCESSFUL", "CLEAN_UP"))
        self.assertIn("finishedAt", done)
        self.assertEqual(done["lifecycleHookDetails"][0]["status"], "SUCCEEDED")
        self.assertEqual(done["targetServiceRevision"]["requestedProductionTrafficWeight"], 100.0)
        service = self.describe_service(name)
        self.assertEqual([r["arn"] for r in service["currentServiceRevisions"]], [target])
        self.assertEqual(service["taskDefinition"], self.definitions[1])
        self.assertEqual(self.registered(blue), set())
        self.assertEqual(self.registered(green), {(ip, PORT) for ip in green_ips})
        self.assertEqual({t["lastStatus"] for t in self.tasks([t["taskArn"] for t in blue_tasks])}, {"STOPPED"})
        self.assertEqual(set(self.ecs.list_tasks(cluster=self.cluster, serviceName=name)["taskArns"]),
                         {t["taskArn"] for t in green_tasks})
        responses = [r for r in self.control("GET", "/_launch_gate/ecs/hook-responses")[1]
                     if r["executionId"] == invocation["executionId"]]
        self.assertEqual([(r["outcome"], r["lifecycleStage"]) for r in responses],
                         [("IN_PROGRESS", "POST_SCALE_UP"), ("SUCCEEDED", "POST_SCALE_UP")])

    def test_second_deployment_answered_failed_rolls_back(self) -> None:
        name, blue, green = self.service([self.hook("POST_SCALE_UP")])
        _, first = self.succeed_first_deployment(name)
        production = first["targetServiceRevision"]["arn"]
        production_tasks = self.revision_tasks(name, production)
        self.assertEqual(self.registered(green), {(self.ip(t), PORT) for t in production_tasks})

        arn = self.deploy(name, 2)
        invocation = self.invocation()
        target = self.deployment(arn)["targetServiceRevision"]["arn"]
        # Production is on the alternate target group now: green goes to the first one.
        self.assertEqual(self.revision(target)["resolvedConfiguration"]["loadBalancers"][0]["targetGroupArn"], blue)
        new_tasks = self.revision_tasks(name, target)
        self.assertEqual(self.registered(blue), {(self.ip(t), PORT) for t in new_tasks})

        self.assertEqual(self.respond(invocation, {"hookStatus": "FAILED"})["deploymentStatus"], "ROLLBACK_IN_PROGRESS")
        done = self.ended(arn)
        reason = f"lifecycle hook {HOOK} returned FAILED at POST_SCALE_UP"
        self.assertEqual((done["status"], done["statusReason"]), ("ROLLBACK_SUCCESSFUL", reason))
        self.assertEqual((done["rollback"]["reason"], done["rollback"]["serviceRevisionArn"]), (reason, production))
        self.assertIn("startedAt", done["rollback"])
        self.assertEqual(done["targetServiceRevision"]["requestedProductionTrafficWeight"], 0.0)
        self.assertEqual(done["lifecycleHookDetails"][0]["status"], "FAILED")
        self.assertEqual({t["lastStatus"] for t in self.tasks([t["taskArn"] for t in new_tasks])}, {"STOPPED"})
        self.assertEqual(self.registered(blue), set())
        # Production untouched: the first deployment's tasks run, registered where they were.
        self.assertEqual(self.registered(green), {(self.ip(t), PORT) for t in production_tasks})
        self.assertEqual({t["lastStatus"] for t in self.tasks([t["taskArn"] for t in production_tasks])}, {"RUNNING"})
        service = self.describe_service(name)
        self.assertEqual([r["arn"] for r in service["currentServiceRevisions"]], [production])
        self.assertEqual(service["taskDefinition"], self.definitions[1])
        self.assertEqual(service["currentServiceDeployment"], arn)
        # Answering again: nothing awaits an answer any more.
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response",
                                 {"executionId": invocation["executionId"], "response": {"hookStatus": "SUCCEEDED"}})
        self.assertEqual(status, 409)

    def test_function_error_rolls_back(self) -> None:
        name, blue, green = self.service([self.hook("POST_SCALE_UP")])
        arn = self.deploy(name, 1)
        invocation = self.invocation()
        target = self.deployment(arn)["targetServiceRevision"]["arn"]
        green_tasks = self.revision_tasks(name, target)
        self.respond(invocation, {"errorMessage": "boom", "errorType": "RuntimeError"}, error=True)
        done = self.ended(arn)
        self.assertEqual(done["status"], "ROLLBACK_SUCCESSFUL")
        self.assertEqual(done["statusReason"], f"lifecycle hook {HOOK} failed (function error) at POST_SCALE_UP")
        self.assertEqual({t["lastStatus"] for t in self.tasks([t["taskArn"] for t in green_tasks])}, {"STOPPED"})
        self.assertEqual(self.registered(green), set())
        self.assertEqual(len(self.registered(blue)), 2)

    def test_invalid_outputs_roll_back(self) -> None:
        for output, why in (
            ({"hookStatus": "DONE"}, 'hookStatus "DONE" is not SUCCEEDED, FAILED or IN_PROGRESS'),
            ({"status": "SUCCEEDED"}, "hookStatus null is not SUCCEEDED, FAILED or IN_PROGRESS"),
            ("SUCCEEDED", "the output is not a JSON object"),
            ({"hookStatus": "IN_PROGRESS", "callBackDelay": "5"}, 'callBackDelay "5" is not an integer >= 0'),
        ):
            with self.subTest(output=output):
                name, _, _ = self.service([self.hook("POST_SCALE_UP")], count=1)
                arn = self.deploy(name, 1)
                self.assertEqual(self.respond(self.invocation(), output)["outcome"], "INVALID")
                done = self.ended(arn)
                self.assertEqual(done["status"], "ROLLBACK_SUCCESSFUL")
                self.assertEqual(done["statusReason"],
                                 f"lifecycle hook {HOOK} returned an invalid response at POST_SCALE_UP: {why}")

    def test_hook_timeout_rolls_back(self) -> None:
        self.control("POST", "/_launch_gate/ecs/settings", {"ecs_hook_minute_seconds": 0.5})
        name, blue, green = self.service([self.hook(
            "POST_SCALE_UP", timeoutConfiguration={"timeoutInMinutes": 1, "action": "ROLLBACK"})])
        arn = self.deploy(name, 1)
        invocation = self.invocation()
        hook = self.deployment(arn)["lifecycleHookDetails"][0]
        self.assertEqual(hook["timeoutAction"], "ROLLBACK")
        done = self.ended(arn)
        self.assertEqual(done["status"], "ROLLBACK_SUCCESSFUL")
        self.assertEqual(done["statusReason"], f"lifecycle hook {HOOK} timed out at POST_SCALE_UP")
        self.assertEqual(done["lifecycleHookDetails"][0]["status"], "TIMED_OUT")
        self.assertEqual(self.registered(green), set())
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response",
                                 {"executionId": invocation["executionId"], "response": {"hookStatus": "SUCCEEDED"}})
        self.assertEqual(status, 409)  # too late
        late = [r for r in self.control("GET", "/_launch_gate/ecs/hook-responses")[1]
                if r["executionId"] == invocation["executionId"]]
        self.assertEqual([(r["accepted"], r["outcome"]) for r in late], [(False, None)])

    def test_hook_timeout_with_continue_moves_on(self) -> None:
        self.control("POST", "/_launch_gate/ecs/settings", {"ecs_hook_minute_seconds": 0.3})
        name, blue, green = self.service([self.hook(
            "POST_SCALE_UP", timeoutConfiguration={"timeoutInMinutes": 1, "action": "CONTINUE"})])
        arn = self.deploy(name, 1)
        done = self.ended(arn)
        self.assertEqual(done["status"], "SUCCESSFUL")
        self.assertEqual(done["lifecycleHookDetails"][0]["status"], "TIMED_OUT")
        self.assertEqual(len(self.registered(green)), 2)
        self.assertEqual(self.registered(blue), set())

    def test_weights_by_stage_and_hook_details_as_a_string(self) -> None:
        name, blue, green = self.service([self.hook(*HOOK_STAGES, hookDetails='{"from": "cloudformation"}')],
                                         count=1)
        [source] = self.describe_service(name)["currentServiceRevisions"]
        arn = self.deploy(name, 1)
        target = self.deployment(arn)["targetServiceRevision"]["arn"]
        blue_arn = source["arn"]
        expected = {
            "PRE_SCALE_UP": ({}, {}),
            "POST_SCALE_UP": ({}, {}),
            "TEST_TRAFFIC_SHIFT": ({target: 100, blue_arn: 0}, {}),
            "POST_TEST_TRAFFIC_SHIFT": ({}, {}),
            "PRE_PRODUCTION_TRAFFIC_SHIFT": ({}, {target: 0, blue_arn: 100}),
            "PRODUCTION_TRAFFIC_SHIFT": ({}, {target: 100, blue_arn: 0}),
            "POST_PRODUCTION_TRAFFIC_SHIFT": ({}, {}),
        }
        seen = []
        for stage in HOOK_STAGES:
            invocation = self.invocation()
            payload = invocation["payload"]
            seen.append(payload["lifecycleStage"])
            self.assertEqual(self.deployment(arn)["lifecycleStage"], stage)
            details = payload["executionDetails"]
            self.assertEqual((details["testTrafficWeights"], details["productionTrafficWeights"]), expected[stage])
            self.assertEqual(payload["hookDetails"], {"from": "cloudformation"})
            if stage == "PRE_SCALE_UP":
                self.assertEqual(self.revision_tasks(name, target), [])  # green not started yet
            self.respond(invocation, {"hookStatus": "SUCCEEDED"})
        self.assertEqual(seen, list(HOOK_STAGES))
        done = self.deployment(arn)
        self.assertEqual(done["status"], "SUCCESSFUL")
        self.assertEqual(len(done["lifecycleHookDetails"]), len(HOOK_STAGES))

    def test_unknown_arns_are_missing(self) -> None:
        unknown = "arn:aws:ecs:us-east-1:123456789012:service-deployment/launch-gate/none/AAAAAAAAAAAAAAAAAAAAA"
        answer = self.ecs.describe_service_deployments(serviceDeploymentArns=[unknown])
        self.assertEqual(answer["serviceDeployments"], [])
        self.assertEqual(answer["failures"], [{"arn": unknown, "reason": "MISSING"}])
        revision = "arn:aws:ecs:us-east-1:123456789012:service-revision/launch-gate/none/1234567890123456789"
        answer = self.ecs.describe_service_revisions(serviceRevisionArns=[revision])
        self.assertEqual(answer["failures"], [{"arn": revision, "reason": "MISSING"}])

    def test_list_tasks_filters_by_service_name(self) -> None:
        first, _, _ = self.service(count=2)
        second, _, _ = self.service(count=1)
        listed = lambda **filters: set(self.ecs.list_tasks(cluster=self.cluster, **filters)["taskArns"])
        mine, theirs = listed(serviceName=first), listed(serviceName=second)
        self.assertEqual((len(mine), len(theirs)), (2, 1))
        self.assertEqual({t["group"] for t in self.tasks(list(mine))}, {f"service:{first}"})
        self.assertLessEqual(mine | theirs, listed())
        # Scaling in stops one task: listed only with desiredStatus STOPPED.
        self.ecs.update_service(cluster=self.cluster, service=first, desiredCount=1)
        self.assertEqual(len(listed(serviceName=first)), 1)
        [stopped] = listed(serviceName=first, desiredStatus="STOPPED")
        self.assertEqual(self.tasks([stopped])[0]["lastStatus"], "STOPPED")
        self.assertEqual(self.describe_service(first)["runningCount"], 1)

    def test_list_service_deployments(self) -> None:
        name, _, _ = self.service([self.hook("POST_SCALE_UP")], count=1)
        creation = self.describe_service(name)["currentServiceDeployment"]
        arn = self.deploy(name, 1)
        self.invocation()
        listed = self.ecs.list_service_deployments(cluster=self.cluster, service=name)["serviceDeployments"]
        self.assertEqual([d["serviceDeploymentArn"] for d in listed], [arn, creation])  # newest first
        self.assertEqual(listed[0]["status"], "IN_PROGRESS")
        self.assertEqual(listed[0]["targetServiceRevisionArn"],
                         self.deployment(arn)["targetServiceRevision"]["arn"])
        only = self.ecs.list_service_deployments(cluster=self.cluster, service=name, status=["SUCCESSFUL"])
        self.assertEqual([d["serviceDeploymentArn"] for d in only["serviceDeployments"]], [creation])
        page = self.ecs.list_service_deployments(cluster=self.cluster, service=name, maxResults=1)
        self.assertEqual(len(page["serviceDeployments"]), 1)
        rest = self.ecs.list_service_deployments(cluster=self.cluster, service=name, nextToken=page["nextToken"])
        self.assertEqual([d["serviceDeploymentArn"] for d in rest["serviceDeployments"]], [creation])
        created = self.deployment(arn)["createdAt"]
        after = self.ecs.list_service_deployments(cluster=self.cluster, service=name, createdAt={"after": created})
        self.assertEqual([d["serviceDeploymentArn"] for d in after["serviceDeployments"]], [arn])
        before = self.ecs.list_service_deployments(
            cluster=self.cluster, service=name, createdAt={"before": created - datetime.timedelta(microseconds=1)})
        self.assertEqual([d["serviceDeploymentArn"] for d in before["serviceDeployments"]], [creation])

    def test_a_new_update_stops_the_deployment_in_progress(self) -> None:
        name, blue, green = self.service([self.hook("POST_SCALE_UP")], count=1)
        first = self.deploy(name, 1)
        self.invocation()
        second = self.deploy(name, 2)
        stopped = self.deployment(first)
        self.assertEqual(stopped["status"], "STOPPED")
        self.assertEqual(stopped["statusReason"], f"stopped: service deployment {second} started")
        self.assertIn("stoppedAt", stopped)
        invocation = self.invocation()
        self.assertEqual(invocation["payload"]["resourceArn"], second)
        self.assertEqual(len(self.registered(green)), 1)  # only the second deployment's task

    def test_rolling_service_update_keeps_moto_behaviour(self) -> None:
        name, _, _ = self.service(strategy="ROLLING", count=1)
        before = self.describe_service(name)
        self.deploy(name, 1)
        after = self.describe_service(name)
        self.assertEqual(after["currentServiceDeployment"], before["currentServiceDeployment"])
        self.assertEqual(after["currentServiceRevisions"][0]["arn"], before["currentServiceRevisions"][0]["arn"])
        self.assertEqual(after["taskDefinition"], self.definitions[1])

    def test_control_errors_and_settings(self) -> None:
        self.assertEqual(self.control("GET", "/_launch_gate/ecs/settings"), (200, {"ecs_hook_minute_seconds": 60.0}))
        self.assertEqual(self.control("POST", "/_launch_gate/ecs/settings", {"minute": 1})[0], 400)
        self.assertEqual(self.control("POST", "/_launch_gate/ecs/settings", {"ecs_hook_minute_seconds": 0})[0], 400)
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response",
                                 {"executionId": str(uuid.uuid4()), "response": {"hookStatus": "SUCCEEDED"}})
        self.assertEqual(status, 404)
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response", {"executionId": 1, "error": "yes"})
        self.assertEqual(status, 400)
        with self.assertRaises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"{self.url}/_launch_gate/ecs/nothing", timeout=10)
        self.assertEqual(unknown.exception.code, 404)
        unknown.exception.close()


if __name__ == "__main__":
    unittest.main()
