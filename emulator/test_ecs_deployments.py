"""Tests of the emulator's ECS blue/green service deployments with Lambda lifecycle hooks
(ecs_deployments.py) and of its services' tasks (ecs_tasks.py: awsvpc addresses, container
instances, bridge and host network modes), through the ECS, ELBv2 and EC2 APIs (boto3) and
the control surface.

The emulator runs as a subprocess on a free loopback port, as in test_emulator.py; the
services' awsvpc tasks and the container instances get addresses from a subnet
127.0.1.0/24 of a VPC 127.0.0.0/16. Nothing leaves 127.0.0.0/8; the credentials are
dummies. The test plays Lambda: it fetches the due hook invocations and posts each
function's output; it plays a container by serving HTTP on a task's host port.

Run: `.venv/bin/python -m unittest discover -s emulator -p 'test_*.py'`
"""

from __future__ import annotations

import datetime
import http.server
import json
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_emulator import eventually, start_emulator, stop_emulator  # noqa: E402

HOOK = "arn:aws:lambda:us-east-1:123456789012:function:launch-gate"
HOOK_ROLE = "arn:aws:iam::123456789012:role/ecs-lambda-invoke"
PORT = 8080
HOOK_STAGES = (
    "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
)
DEFAULT_SETTINGS = {
    "ecs_hook_minute_seconds": 60.0, "lambda_hooks_in_details": True, "resolved_configuration": "always",
    "started_by": "revision", "new_tasks_stay_pending": False, "scale_up_waits_for_running": True,
}
DYNAMIC = range(32768, 61000)
SIDECAR_PORT = 9901


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
        cls.subnet_b = cls.ec2.create_subnet(
            VpcId=cls.vpc, CidrBlock="127.0.2.0/24", AvailabilityZone="us-east-1b"
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
        # EC2 task definitions: bridge with dynamic host ports (a web container and a
        # sidecar), and host.
        cls.bridge = [
            cls.ecs.register_task_definition(
                family="app-bridge", networkMode="bridge", requiresCompatibilities=["EC2"],
                containerDefinitions=[
                    {"name": "web", "image": f"app:{version}", "memory": 256,
                     "portMappings": [{"containerPort": PORT, **({"hostPort": 0} if version == 2 else {})}]},
                    {"name": "sidecar", "image": "envoy", "memory": 64,
                     "portMappings": [{"containerPort": SIDECAR_PORT, "protocol": "tcp"}]},
                ],
            )["taskDefinition"]["taskDefinitionArn"]
            for version in (1, 2, 3)
        ]
        cls.host = cls.ecs.register_task_definition(
            family="app-host", networkMode="host", requiresCompatibilities=["EC2"],
            containerDefinitions=[{"name": "web", "image": "app:1", "memory": 256,
                                   "portMappings": [{"containerPort": PORT}]}],
        )["taskDefinition"]["taskDefinitionArn"]

    @classmethod
    def tearDownClass(cls) -> None:
        stop_emulator(cls.proc)

    def setUp(self) -> None:
        self.settings(**DEFAULT_SETTINGS)
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

    def settings(self, **values: Any) -> dict[str, Any]:
        status, body = self.control("POST", "/_launch_gate/ecs/settings", values)
        self.assertEqual(status, 200, body)
        return body

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

    def target_group(self, target_type: str = "ip") -> str:
        return self.elbv2.create_target_group(
            Name=f"tg-{uuid.uuid4().hex[:8]}", Protocol="HTTP", Port=PORT, VpcId=self.vpc,
            TargetType=target_type, HealthCheckPath="/health",
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

    def tasks(self, arns: list[str], cluster: str | None = None) -> list[dict[str, Any]]:
        if not arns:
            return []
        return self.ecs.describe_tasks(cluster=cluster or self.cluster, tasks=arns)["tasks"]

    def service_tasks(self, name: str, cluster: str | None = None, status: str = "RUNNING") -> list[dict[str, Any]]:
        """The service's tasks whose desired status is `status`."""
        cluster = cluster or self.cluster
        arns = self.ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus=status)["taskArns"]
        return self.tasks(arns, cluster)

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

    def health(self, target_group: str) -> dict[tuple[str, int], str]:
        health = self.elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        return {(h["Target"]["Id"], h["Target"]["Port"]): h["TargetHealth"]["State"] for h in health}

    def entries(self, name: str, cluster: str | None = None) -> list[dict[str, Any]]:
        """The service's `deployments[]`."""
        return self.ecs.describe_services(cluster=cluster or self.cluster, services=[name])["services"][0]["deployments"]

    def finish(self, arn: str, *handed_out: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Answers every hook SUCCEEDED (those `handed_out` already first) until the
        deployment ends; returns it."""
        for invocation in handed_out:
            self.respond(invocation, {"hookStatus": "SUCCEEDED"})
        deadline = time.monotonic() + timeout
        while self.deployment(arn)["status"] in ("IN_PROGRESS", "ROLLBACK_IN_PROGRESS"):
            if time.monotonic() > deadline:
                self.fail(f"the deployment did not end: {self.deployment(arn)}")
            for invocation in self.invocations():
                self.respond(invocation, {"hookStatus": "SUCCEEDED"})
            time.sleep(0.05)
        return self.deployment(arn)

    # --- container instances, bridge and host network modes ---

    def ec2_cluster(self, instances: int) -> tuple[str, list[dict[str, str]]]:
        """A new cluster with `instances` container instances (EC2 instances in the loopback
        subnet); returns its name and, in registration order, each instance's {arn, id, ip}."""
        cluster = f"ec2-{uuid.uuid4().hex[:8]}"
        self.ecs.create_cluster(clusterName=cluster)
        return cluster, [self.add_instance(cluster) for _ in range(instances)]

    def add_instance(self, cluster: str) -> dict[str, str]:
        instance = self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet)["Instances"][0]
        registered = self.ecs.register_container_instance(
            cluster=cluster, instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]}),
        )["containerInstance"]
        return {"arn": registered["containerInstanceArn"], "id": instance["InstanceId"],
                "ip": instance["PrivateIpAddress"]}

    def instance_counts(self, cluster: str, instances: list[dict[str, str]]) -> list[tuple[int, int]]:
        """Each instance's (runningTasksCount, pendingTasksCount)."""
        described = self.ecs.describe_container_instances(
            cluster=cluster, containerInstances=[i["arn"] for i in instances])["containerInstances"]
        by_arn = {c["containerInstanceArn"]: c for c in described}
        return [(by_arn[i["arn"]]["runningTasksCount"], by_arn[i["arn"]]["pendingTasksCount"]) for i in instances]

    def ec2_service(self, cluster: str, definition: str, count: int,
                    hooks: list[dict[str, Any]] | None = None) -> tuple[str, str, str]:
        """A BLUE_GREEN service with launch type EC2 behind two instance target groups;
        returns its name and its (production, alternate) target groups."""
        name = f"svc-{uuid.uuid4().hex[:8]}"
        blue, green = self.target_group("instance"), self.target_group("instance")
        self.ecs.create_service(
            cluster=cluster, serviceName=name, taskDefinition=definition, desiredCount=count, launchType="EC2",
            loadBalancers=[{
                "targetGroupArn": blue, "containerName": "web", "containerPort": PORT,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": green,
                    "productionListenerRule": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3",
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-elb",
                },
            }],
            deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": hooks or []},
        )
        return name, blue, green

    @staticmethod
    def binding(task: dict[str, Any], container: str = "web") -> dict[str, Any]:
        [binding] = next(c for c in task["containers"] if c["name"] == container)["networkBindings"]
        return binding

    @staticmethod
    def target_of(task: dict[str, Any], instances: list[dict[str, str]]) -> tuple[str, int]:
        """The (instance id, host port) a bridge or host task is registered as."""
        instance = next(i for i in instances if i["arn"] == task["containerInstanceArn"])
        return instance["id"], EcsDeploymentsTest.binding(task)["hostPort"]

    def load_balance(self, target_group: str) -> None:
        """A load balancer forwarding to the target group, so that ELB checks its targets."""
        balancer = self.elbv2.create_load_balancer(
            Name=f"lb-{uuid.uuid4().hex[:8]}", Subnets=[self.subnet, self.subnet_b])["LoadBalancers"][0]
        self.elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}])

    def serve(self, ip: str, port: int) -> None:
        """Plays a container listening on ip:port: 200 to every GET, until the test ends."""

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer((ip, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)

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
        self.assertEqual(self.control("GET", "/_launch_gate/ecs/settings"), (200, DEFAULT_SETTINGS))
        changed = {"ecs_hook_minute_seconds": 0.5, "lambda_hooks_in_details": False,
                   "resolved_configuration": "active_only", "started_by": "independent",
                   "new_tasks_stay_pending": True, "scale_up_waits_for_running": False}
        self.assertEqual(self.control("POST", "/_launch_gate/ecs/settings", changed), (200, changed))
        self.assertEqual(self.control("POST", "/_launch_gate/ecs/settings", {"started_by": "revision"}),
                         (200, {**changed, "started_by": "revision"}))
        self.settings(**DEFAULT_SETTINGS)
        for bad in ({"minute": 1}, {"ecs_hook_minute_seconds": 0}, {"ecs_hook_minute_seconds": "1"},
                    {"lambda_hooks_in_details": "false"}, {"new_tasks_stay_pending": 1},
                    {"resolved_configuration": "never"}, {"started_by": "deployment"},
                    {"started_by": "independent", "resolved_configuration": "sometimes"}):
            with self.subTest(bad=bad):
                self.assertEqual(self.control("POST", "/_launch_gate/ecs/settings", bad)[0], 400)
        # A refused change changes nothing, not even its valid part.
        self.assertEqual(self.control("GET", "/_launch_gate/ecs/settings"), (200, DEFAULT_SETTINGS))
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response",
                                 {"executionId": str(uuid.uuid4()), "response": {"hookStatus": "SUCCEEDED"}})
        self.assertEqual(status, 404)
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response", {"executionId": 1, "error": "yes"})
        self.assertEqual(status, 400)
        with self.assertRaises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"{self.url}/_launch_gate/ecs/nothing", timeout=10)
        self.assertEqual(unknown.exception.code, 404)
        unknown.exception.close()

    # --- settings: each switch in both positions ---

    def test_lambda_hooks_in_details_lists_or_hides_lambda_executions(self) -> None:
        name, _, _ = self.service([self.hook("POST_SCALE_UP")], count=1)
        arn = self.deploy(name, 1)
        invocation = self.invocation()
        for shown in (True, False, True):  # process-wide, read at each answer
            with self.subTest(lambda_hooks_in_details=shown):
                self.settings(lambda_hooks_in_details=shown)
                details = self.deployment(arn).get("lifecycleHookDetails", [])
                if shown:
                    self.assertEqual([(h["hookId"], h["targetType"], h["targetArn"], h["status"]) for h in details],
                                     [(invocation["executionId"], "AWS_LAMBDA", HOOK, "IN_PROGRESS")])
                else:
                    self.assertEqual(details, [])
        self.settings(lambda_hooks_in_details=False)
        self.respond(invocation, {"hookStatus": "SUCCEEDED"})
        self.assertEqual(self.deployment(arn).get("lifecycleHookDetails", []), [])
        self.settings(lambda_hooks_in_details=True)
        self.assertEqual([h["status"] for h in self.deployment(arn)["lifecycleHookDetails"]], ["SUCCEEDED"])

    def test_successive_deployments_alternate_target_groups_whatever_resolved_configuration(self) -> None:
        for position in ("always", "active_only"):
            with self.subTest(resolved_configuration=position):
                self.settings(resolved_configuration=position)
                name, blue, green = self.service([self.hook("POST_SCALE_UP")], count=1)
                [first] = self.describe_service(name)["currentServiceRevisions"]
                revisions, groups = [first["arn"]], [blue]
                for definition, expected in ((1, green), (2, blue)):
                    arn = self.deploy(name, definition)
                    invocation = self.invocation()
                    target = self.deployment(arn)["targetServiceRevision"]["arn"]
                    [task] = self.revision_tasks(name, target)
                    self.assertEqual(self.registered(expected), {(self.ip(task), PORT)})
                    # In progress: the target is not the production revision yet.
                    shown = self.revision(target).get("resolvedConfiguration")
                    if position == "always":
                        self.assertEqual(shown["loadBalancers"][0]["targetGroupArn"], expected)
                    else:
                        self.assertIsNone(shown)
                    self.assertEqual(self.finish(arn, invocation)["status"], "SUCCESSFUL")
                    self.assertEqual(self.registered(expected), {(self.ip(task), PORT)})
                    self.assertEqual(self.registered(blue if expected == green else green), set())
                    revisions.append(target)
                    groups.append(expected)
                self.assertEqual(groups, [blue, green, blue])  # the green group alternates
                for revision, group in zip(revisions, groups):
                    shown = self.revision(revision).get("resolvedConfiguration")
                    if position == "always" or revision == revisions[-1]:
                        self.assertEqual(shown["loadBalancers"][0]["targetGroupArn"], group)
                    else:
                        self.assertIsNone(shown)  # not the current revision

    def test_started_by_matches_the_service_deployments_on_a_forced_redeploy(self) -> None:
        for position in ("revision", "independent"):
            with self.subTest(started_by=position):
                self.settings(started_by=position)
                name, blue, green = self.service([self.hook("POST_SCALE_UP")], count=2)
                [source] = self.describe_service(name)["currentServiceRevisions"]
                blue_tasks = self.service_tasks(name)
                [blue_id] = {t["startedBy"] for t in blue_tasks}
                self.assertRegex(blue_id, r"^ecs-svc/\d{19}$")
                numbers = lambda *arns: {f"ecs-svc/{a.rsplit('/', 1)[-1]}" for a in arns}  # noqa: E731
                if position == "revision":
                    self.assertEqual({blue_id}, numbers(source["arn"]))
                else:
                    self.assertNotIn(blue_id, numbers(source["arn"]))
                [entry] = self.entries(name)
                self.assertEqual((entry["id"], entry["status"], entry["taskDefinition"], entry["rolloutState"]),
                                 (blue_id, "PRIMARY", self.definitions[0], "COMPLETED"))
                self.assertEqual((entry["desiredCount"], entry["runningCount"], entry["pendingCount"],
                                  entry["failedTasks"], entry["launchType"]), (2, 2, 0, 0, "FARGATE"))
                self.assertIn("createdAt", entry)
                self.assertIn("updatedAt", entry)

                # The same task definition, forced: a deployment whose tasks are new tasks.
                arn = self.ecs.update_service(cluster=self.cluster, service=name,
                                              forceNewDeployment=True)["service"]["currentServiceDeployment"]
                invocation = self.invocation()
                target = self.deployment(arn)["targetServiceRevision"]["arn"]
                blue_arns = {t["taskArn"] for t in blue_tasks}
                green_tasks = [t for t in self.service_tasks(name) if t["taskArn"] not in blue_arns]
                self.assertEqual(len(green_tasks), 2)
                self.assertEqual({t["taskDefinitionArn"] for t in green_tasks}, {self.definitions[0]})
                [green_id] = {t["startedBy"] for t in green_tasks}
                self.assertNotEqual(green_id, blue_id)
                if position == "revision":
                    self.assertEqual({green_id}, numbers(target))
                else:
                    self.assertRegex(green_id, r"^ecs-svc/\d{19}$")
                    self.assertNotIn(green_id, numbers(source["arn"], target))
                self.assertEqual(self.registered(green), {(self.ip(t), PORT) for t in green_tasks})
                primary, active = self.entries(name)
                self.assertEqual((primary["id"], primary["status"], primary["rolloutState"], primary["runningCount"],
                                  primary["taskDefinition"]),
                                 (green_id, "PRIMARY", "IN_PROGRESS", 2, self.definitions[0]))
                self.assertEqual((active["id"], active["status"], active["rolloutState"], active["runningCount"]),
                                 (blue_id, "ACTIVE", "COMPLETED", 2))

                self.assertEqual(self.finish(arn, invocation)["status"], "SUCCESSFUL")
                [entry] = self.entries(name)  # the blue entry went with its tasks
                self.assertEqual((entry["id"], entry["status"], entry["rolloutState"], entry["runningCount"]),
                                 (green_id, "PRIMARY", "COMPLETED", 2))
                self.assertEqual({t["startedBy"] for t in self.service_tasks(name)}, {green_id})
                self.assertEqual({t["lastStatus"] for t in self.tasks(list(blue_arns))}, {"STOPPED"})
                self.assertEqual(self.registered(blue), set())

    def test_new_tasks_stay_pending_until_a_new_deployment(self) -> None:
        name, blue, green = self.service(count=2)
        blue_tasks = self.service_tasks(name)
        blue_targets = {(self.ip(t), PORT) for t in blue_tasks}
        self.settings(new_tasks_stay_pending=True)
        stuck = self.ecs.update_service(cluster=self.cluster, service=name,
                                        forceNewDeployment=True)["service"]["currentServiceDeployment"]
        target = self.deployment(stuck)["targetServiceRevision"]["arn"]
        time.sleep(0.6)  # ticks go by: nothing moves
        self.settings(new_tasks_stay_pending=False)  # does not start the tasks already there
        time.sleep(0.4)
        deployment = self.deployment(stuck)
        self.assertEqual((deployment["status"], deployment["lifecycleStage"]), ("IN_PROGRESS", "SCALE_UP"))
        summary = deployment["targetServiceRevision"]
        self.assertEqual((summary["runningTaskCount"], summary["pendingTaskCount"]), (0, 2))
        pending = self.revision_tasks(name, target)  # desired RUNNING: listed by default
        self.assertEqual(len(pending), 2)
        for task in pending:
            self.assertEqual((task["lastStatus"], task["desiredStatus"]), ("PENDING", "RUNNING"))
            self.assertEqual({c["lastStatus"] for c in task["containers"]}, {"PENDING"})
            self.assertEqual(task["taskDefinitionArn"], self.definitions[0])
            self.assertNotIn("startedAt", task)
        self.assertEqual(self.registered(green), set())
        self.assertEqual(self.registered(blue), blue_targets)
        service = self.describe_service(name)
        self.assertEqual((service["runningCount"], service["pendingCount"]), (2, 2))
        self.assertEqual([(r["runningTaskCount"], r["pendingTaskCount"]) for r in service["currentServiceRevisions"]],
                         [(2, 0), (0, 2)])
        primary, active = service["deployments"]
        self.assertEqual((primary["status"], primary["runningCount"], primary["pendingCount"], primary["rolloutState"]),
                         ("PRIMARY", 0, 2, "IN_PROGRESS"))
        self.assertEqual((active["status"], active["runningCount"], active["pendingCount"]), ("ACTIVE", 2, 0))

        # Another deployment (the setting off) supersedes it: its tasks start and run.
        arn = self.ecs.update_service(cluster=self.cluster, service=name,
                                      forceNewDeployment=True)["service"]["currentServiceDeployment"]
        self.assertEqual(self.deployment(stuck)["status"], "STOPPED")
        self.assertEqual({t["lastStatus"] for t in self.tasks([t["taskArn"] for t in pending])}, {"STOPPED"})
        done = self.ended(arn)
        self.assertEqual(done["status"], "SUCCESSFUL")
        running = self.revision_tasks(name, done["targetServiceRevision"]["arn"])
        self.assertEqual({t["lastStatus"] for t in running}, {"RUNNING"})
        self.assertEqual(self.registered(green), {(self.ip(t), PORT) for t in running})
        service = self.describe_service(name)
        self.assertEqual((service["runningCount"], service["pendingCount"]), (2, 0))

    def test_scale_up_may_end_before_the_green_tasks_run(self) -> None:
        # Whether ECS waits at SCALE_UP for the green tasks to run is not documented: with
        # the switch off, POST_SCALE_UP's hook is invoked while they are still PENDING.
        hooks = [{"hookTargetArn": HOOK, "roleArn": HOOK_ROLE, "lifecycleStages": ["POST_SCALE_UP"]}]
        name, _, _ = self.service(hooks=hooks, count=1)
        self.settings(new_tasks_stay_pending=True, scale_up_waits_for_running=False)
        arn = self.ecs.update_service(cluster=self.cluster, service=name,
                                      forceNewDeployment=True)["service"]["currentServiceDeployment"]
        deployment = self.deployment(arn)
        self.assertEqual((deployment["status"], deployment["lifecycleStage"]), ("IN_PROGRESS", "POST_SCALE_UP"))
        self.assertEqual(deployment["targetServiceRevision"]["pendingTaskCount"], 1)
        [invocation] = self.invocations()
        self.assertEqual(invocation["payload"]["lifecycleStage"], "POST_SCALE_UP")
        self.settings(**DEFAULT_SETTINGS)

    def test_bridge_task_started_pending_is_placed_but_not_registered(self) -> None:
        cluster, [instance] = self.ec2_cluster(1)
        self.settings(new_tasks_stay_pending=True)
        name, blue, _ = self.ec2_service(cluster, self.bridge[0], count=1)
        [task] = self.service_tasks(name, cluster)
        self.assertEqual((task["lastStatus"], task["containerInstanceArn"]), ("PENDING", instance["arn"]))
        self.assertEqual([c.get("networkBindings", []) for c in task["containers"]], [[], []])
        self.assertEqual(self.registered(blue), set())
        self.assertEqual(self.instance_counts(cluster, [instance]), [(0, 1)])
        service = self.ecs.describe_services(cluster=cluster, services=[name])["services"][0]
        self.assertEqual((service["runningCount"], service["pendingCount"]), (0, 1))
        [entry] = service["deployments"]
        self.assertEqual((entry["pendingCount"], entry["runningCount"], entry["rolloutState"]), (1, 0, "IN_PROGRESS"))

    # --- rollbacks and timeouts ---

    def test_rollback_invokes_the_traffic_shift_hooks_again(self) -> None:
        name, blue, green = self.service(
            [self.hook("POST_SCALE_UP"), self.hook("PRODUCTION_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT",
                                                   hookDetails={"phase": "shift"})], count=1)
        [source] = self.describe_service(name)["currentServiceRevisions"]
        blue_tasks = self.service_tasks(name)
        arn = self.deploy(name, 1)
        failed = self.invocation()
        target = self.deployment(arn)["targetServiceRevision"]["arn"]
        [green_task] = self.revision_tasks(name, target)
        self.assertEqual(self.respond(failed, {"hookStatus": "FAILED"})["deploymentStatus"], "ROLLBACK_IN_PROGRESS")
        reason = f"lifecycle hook {HOOK} returned FAILED at POST_SCALE_UP"

        # PRODUCTION_TRAFFIC_SHIFT first: production traffic back to the source.
        production = self.invocation()
        self.assertNotEqual(production["executionId"], failed["executionId"])
        self.assertEqual(production["payload"], {
            "executionId": production["executionId"],
            "lifecycleStage": "PRODUCTION_TRAFFIC_SHIFT",
            "resourceArn": arn,
            "executionDetails": {
                "serviceArn": self.describe_service(name)["serviceArn"],
                "targetServiceRevisionArn": target,
                "testTrafficWeights": {},
                "productionTrafficWeights": {target: 0, source["arn"]: 100},
            },
            "hookDetails": {"phase": "shift"},
        })
        deployment = self.deployment(arn)
        self.assertEqual((deployment["status"], deployment["lifecycleStage"]),
                         ("ROLLBACK_IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT"))
        # The rollback waits for its hooks: the green task still runs, still registered.
        time.sleep(0.5)
        self.assertEqual(self.tasks([green_task["taskArn"]])[0]["lastStatus"], "RUNNING")
        self.assertEqual(self.registered(green), {(self.ip(green_task), PORT)})
        primary, active = self.entries(name)
        self.assertEqual((primary["id"], primary["status"], primary["rolloutState"]),
                         (blue_tasks[0]["startedBy"], "PRIMARY", "IN_PROGRESS"))
        self.assertEqual((active["id"], active["status"], active["rolloutState"]),
                         (green_task["startedBy"], "ACTIVE", "FAILED"))
        # Answered as any invocation: IN_PROGRESS invokes it again, SUCCEEDED moves on.
        self.assertEqual(self.respond(production, {"hookStatus": "IN_PROGRESS", "callBackDelay": 0,
                                                   "hookDetails": {"tries": 1}})["outcome"], "IN_PROGRESS")
        again = self.invocation()
        self.assertEqual((again["executionId"], again["payload"]["hookDetails"]),
                         (production["executionId"], {"phase": "shift", "tries": 1}))
        answer = self.respond(again, {"hookStatus": "SUCCEEDED"})
        self.assertEqual((answer["hookStatus"], answer["deploymentStatus"]), ("SUCCEEDED", "ROLLBACK_IN_PROGRESS"))

        # Then TEST_TRAFFIC_SHIFT, test traffic back to the source; a FAILED answer does not
        # stop the rollback.
        test = self.invocation()
        self.assertEqual(test["payload"]["lifecycleStage"], "TEST_TRAFFIC_SHIFT")
        self.assertEqual((test["payload"]["executionDetails"]["testTrafficWeights"],
                          test["payload"]["executionDetails"]["productionTrafficWeights"]),
                         ({target: 0, source["arn"]: 100}, {}))
        self.assertEqual(self.respond(test, {"hookStatus": "FAILED"})["outcome"], "FAILED")
        done = self.ended(arn)
        self.assertEqual((done["status"], done["statusReason"], done["rollback"]["reason"]),
                         ("ROLLBACK_SUCCESSFUL", reason, reason))
        self.assertEqual([(h["hookId"], h["status"]) for h in done["lifecycleHookDetails"]],
                         [(failed["executionId"], "FAILED"), (production["executionId"], "SUCCEEDED"),
                          (test["executionId"], "FAILED")])
        self.assertEqual(self.tasks([green_task["taskArn"]])[0]["lastStatus"], "STOPPED")
        self.assertEqual(self.registered(green), set())
        self.assertEqual(self.registered(blue), {(self.ip(t), PORT) for t in blue_tasks})
        [entry] = self.entries(name)
        self.assertEqual((entry["id"], entry["status"], entry["rolloutState"]),
                         (blue_tasks[0]["startedBy"], "PRIMARY", "COMPLETED"))
        self.assertEqual(self.invocations(), [])
        status, _ = self.control("POST", "/_launch_gate/ecs/hook-response",
                                 {"executionId": test["executionId"], "response": {"hookStatus": "SUCCEEDED"}})
        self.assertEqual(status, 409)

    def test_rollback_hook_timeout_lets_the_rollback_finish(self) -> None:
        self.settings(ecs_hook_minute_seconds=0.3)
        name, blue, green = self.service([self.hook(
            "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", timeoutConfiguration={"timeoutInMinutes": 1, "action": "CONTINUE"})],
            count=1)
        arn = self.deploy(name, 1)
        self.respond(self.invocation(), {"errorMessage": "boom"}, error=True)
        rollback = self.invocation()
        self.assertEqual(rollback["payload"]["lifecycleStage"], "TEST_TRAFFIC_SHIFT")
        done = self.ended(arn)  # never answered: timed out, CONTINUE or not, and the rollback ends
        self.assertEqual(done["status"], "ROLLBACK_SUCCESSFUL")
        self.assertEqual([h["status"] for h in done["lifecycleHookDetails"]], ["FAILED", "TIMED_OUT"])
        self.assertEqual(self.registered(green), set())
        self.assertEqual(len(self.registered(blue)), 1)

    def test_hook_timeout_action_defaults_to_rollback(self) -> None:
        self.settings(ecs_hook_minute_seconds=0.3)
        name, _, green = self.service([self.hook("POST_SCALE_UP", timeoutConfiguration={"timeoutInMinutes": 1})],
                                      count=1)
        arn = self.deploy(name, 1)
        self.invocation()
        self.assertEqual(self.deployment(arn)["lifecycleHookDetails"][0]["timeoutAction"], "ROLLBACK")
        done = self.ended(arn)
        self.assertEqual((done["status"], done["lifecycleHookDetails"][0]["status"]),
                         ("ROLLBACK_SUCCESSFUL", "TIMED_OUT"))
        self.assertEqual(self.registered(green), set())

    # --- DescribeServices: the deployment configuration as stored ---

    def test_describe_services_answers_the_deployment_configuration_as_given(self) -> None:
        hooks = [
            {"hookTargetArn": HOOK, "roleArn": HOOK_ROLE, "lifecycleStages": ["POST_SCALE_UP", "TEST_TRAFFIC_SHIFT"],
             "hookDetails": {"bucket": "approvals", "checks": [1, 2], "nested": {"on": True}},
             "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "CONTINUE"}},
            {"hookTargetArn": f"{HOOK}-2", "roleArn": HOOK_ROLE, "lifecycleStages": ["PRE_SCALE_UP"]},
        ]
        name, _, _ = self.service(hooks, count=0)
        configuration = self.describe_service(name)["deploymentConfiguration"]
        self.assertEqual(configuration, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": hooks})
        # As CloudFormation passes it: hookDetails a JSON string, answered as given.
        updated = [{**hooks[0], "hookDetails": '{"from": "cloudformation"}'}]
        self.ecs.update_service(cluster=self.cluster, service=name, deploymentConfiguration={
            "strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": updated})
        configuration = self.describe_service(name)["deploymentConfiguration"]
        self.assertEqual(configuration["lifecycleHooks"], updated)
        with self.assertRaises(ClientError) as refused:
            self.ecs.update_service(cluster=self.cluster, service=name, deploymentConfiguration={
                "strategy": "BLUE_GREEN", "lifecycleHooks": [{**hooks[0], "hookDetails": "not json"}]})
        self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterException")

    # --- bridge and host network modes on container instances ---

    def test_container_instances_answer_their_ec2_instance(self) -> None:
        cluster, instances = self.ec2_cluster(2)
        described = self.ecs.describe_container_instances(
            cluster=cluster, containerInstances=[i["arn"] for i in instances])["containerInstances"]
        self.assertEqual({(c["containerInstanceArn"], c["ec2InstanceId"], c["status"]) for c in described},
                         {(i["arn"], i["id"], "ACTIVE") for i in instances})
        self.assertTrue(all(i["ip"].startswith("127.0.1.") for i in instances))
        for document in (json.dumps({"instanceId": "i-0123456789abcdef0"}), "{}"):
            with self.subTest(document=document), self.assertRaises(ClientError) as refused:
                self.ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=document)
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidParameterException")
        # An instance without a private IPv4 address (here IPv6-only on ::1) cannot host tasks.
        instance = self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet)["Instances"][0]["InstanceId"]
        self.assertEqual(self.control("POST", "/_launch_gate/ipv6-only", {"instance_id": instance})[0], 200)
        with self.assertRaises(ClientError) as refused:
            self.ecs.register_container_instance(
                cluster=cluster, instanceIdentityDocument=json.dumps({"instanceId": instance}))
        self.assertIn("loopback", refused.exception.response["Error"]["Message"])

    def test_bridge_tasks_are_instance_targets_on_dynamic_host_ports(self) -> None:
        cluster, instances = self.ec2_cluster(2)
        name, blue, green = self.ec2_service(cluster, self.bridge[0], count=3, hooks=[self.hook("POST_SCALE_UP")])
        blue_tasks = self.service_tasks(name, cluster)
        self.assertEqual(len(blue_tasks), 3)
        # Round-robin over the two instances; no interface, host ports from 32768-60999.
        self.assertEqual(sorted(t["containerInstanceArn"] for t in blue_tasks),
                         sorted([instances[0]["arn"], instances[0]["arn"], instances[1]["arn"]]))
        self.assertEqual(self.instance_counts(cluster, instances), [(2, 0), (1, 0)])
        for task in blue_tasks:
            self.assertEqual((task["launchType"], task["lastStatus"]), ("EC2", "RUNNING"))
            self.assertEqual(task.get("attachments", []), [])
            self.assertEqual([c["name"] for c in task["containers"]], ["web", "sidecar"])
            web, sidecar = self.binding(task), self.binding(task, "sidecar")
            self.assertEqual((web["bindIP"], web["containerPort"], web["protocol"]), ("0.0.0.0", PORT, "tcp"))
            self.assertEqual((sidecar["containerPort"], sidecar["protocol"]), (SIDECAR_PORT, "tcp"))
            self.assertIn(web["hostPort"], DYNAMIC)
            self.assertIn(sidecar["hostPort"], DYNAMIC)
        for instance in instances:
            ports = [self.binding(t, c)["hostPort"] for t in blue_tasks for c in ("web", "sidecar")
                     if t["containerInstanceArn"] == instance["arn"]]
            self.assertEqual(len(ports), len(set(ports)))  # never one port twice on an instance
        for instance in instances:
            on_it = self.ecs.list_tasks(cluster=cluster, containerInstance=instance["arn"])["taskArns"]
            self.assertEqual(set(on_it), {t["taskArn"] for t in blue_tasks
                                          if t["containerInstanceArn"] == instance["arn"]})
        blue_targets = {self.target_of(t, instances) for t in blue_tasks}
        self.assertEqual(len(blue_targets), 3)  # two of them the same instance, on two ports
        self.assertEqual(self.registered(blue), blue_targets)
        self.assertEqual(self.registered(green), set())

        # ELB checks each (instance, port): at the instance's IP and the task's host port.
        self.load_balance(blue)
        served = blue_tasks[0]
        instance = next(i for i in instances if i["arn"] == served["containerInstanceArn"])
        self.serve(instance["ip"], self.binding(served)["hostPort"])
        expected = {t: "healthy" if t == self.target_of(served, instances) else "unhealthy" for t in blue_targets}
        eventually(lambda: self.health(blue) == expected, timeout=10, what="each target's own health")

        # A deployment: green tasks on the instances in turn, on other ports, in the other group.
        arn = self.ecs.update_service(cluster=cluster, service=name,
                                      taskDefinition=self.bridge[1])["service"]["currentServiceDeployment"]
        invocation = self.invocation()
        blue_arns = {t["taskArn"] for t in blue_tasks}
        green_tasks = [t for t in self.service_tasks(name, cluster) if t["taskArn"] not in blue_arns]
        self.assertEqual(sorted(t["containerInstanceArn"] for t in green_tasks),
                         sorted([instances[1]["arn"], instances[1]["arn"], instances[0]["arn"]]))
        self.assertEqual(self.instance_counts(cluster, instances), [(3, 0), (3, 0)])
        for instance in instances:
            ports = [self.binding(t, c)["hostPort"] for t in blue_tasks + green_tasks for c in ("web", "sidecar")
                     if t["containerInstanceArn"] == instance["arn"]]
            self.assertEqual(len(ports), len(set(ports)))
        green_targets = {self.target_of(t, instances) for t in green_tasks}
        self.assertEqual(self.registered(green), green_targets)
        self.assertEqual(self.registered(blue), blue_targets)
        self.assertEqual(self.finish(arn, invocation)["status"], "SUCCESSFUL")
        self.assertEqual(self.registered(blue), set())
        self.assertEqual(self.registered(green), green_targets)
        self.assertEqual({t["lastStatus"] for t in self.tasks(list(blue_arns), cluster)}, {"STOPPED"})
        self.assertEqual(self.instance_counts(cluster, instances), [(1, 0), (2, 0)])
        [entry] = self.entries(name, cluster)
        self.assertEqual((entry["id"], entry["taskDefinition"], entry["launchType"], entry["runningCount"]),
                         (green_tasks[0]["startedBy"], self.bridge[1], "EC2", 3))

    def test_host_tasks_use_the_container_port_and_wait_for_an_instance(self) -> None:
        cluster, instances = self.ec2_cluster(2)
        name, blue, _ = self.ec2_service(cluster, self.host, count=2)
        tasks = self.service_tasks(name, cluster)
        self.assertEqual({t["containerInstanceArn"] for t in tasks}, {i["arn"] for i in instances})
        self.assertEqual({(self.binding(t)["containerPort"], self.binding(t)["hostPort"]) for t in tasks},
                         {(PORT, PORT)})
        self.assertEqual(self.registered(blue), {(i["id"], PORT) for i in instances})
        # A third task: both instances hold the port, so it waits for an instance.
        self.ecs.update_service(cluster=cluster, service=name, desiredCount=3)
        service = self.ecs.describe_services(cluster=cluster, services=[name])["services"][0]
        self.assertEqual(service["runningCount"], 2)
        self.assertEqual(service["events"][0]["message"],
                         f"(service {name}) was unable to place a task because no container instance met "
                         "all of its requirements.")
        third = self.add_instance(cluster)
        eventually(lambda: len(self.service_tasks(name, cluster)) == 3, what="the third task's placement")
        [placed] = [t for t in self.service_tasks(name, cluster) if t["containerInstanceArn"] == third["arn"]]
        self.assertEqual(self.binding(placed)["hostPort"], PORT)
        self.assertEqual(self.registered(blue), {(i["id"], PORT) for i in instances + [third]})
        service = self.ecs.describe_services(cluster=cluster, services=[name])["services"][0]
        self.assertEqual((service["runningCount"], service["deployments"][0]["runningCount"]), (3, 3))


if __name__ == "__main__":
    unittest.main()
