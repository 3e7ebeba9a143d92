"""Tests of launch-gate's AWS emulator, through the AWS API (boto3) and its control surface.

Each test class starts the emulator as a subprocess on a free loopback port, as the Rust
harness does (tests/common/mod.rs `Emulator::start_with`), and builds what it needs in a
VPC 127.0.0.0/16 whose subnets give loopback IPs. Nothing leaves 127.0.0.0/8; the
credentials are dummies.

Run: `.venv/bin/python -m unittest discover -s emulator -p 'test_*.py'`
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TEMPLATE = "lg-test"

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_REGION="us-east-1",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)
for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)


def start_emulator(*options: str) -> tuple[subprocess.Popen, str]:
    """Starts the emulator on a free port; returns the process and its URL."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "launch_gate_emulator.py"), "--host", "127.0.0.1", "--port", "0",
         "--elb-interval", "0.5", "--elb-timeout", "1", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    url = line.strip().rsplit(" ", 1)[-1]
    if "listening on" not in line or not url.startswith("http://127."):
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, url


def stop_emulator(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "a condition") -> Any:
    """Polls `check` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class EmulatorTestCase(unittest.TestCase):
    """An emulator, boto3 clients without retries, a VPC, subnets and a launch template."""

    options: tuple[str, ...] = ()

    @classmethod
    def setUpClass(cls) -> None:
        cls.proc, cls.url = start_emulator(*cls.options)
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30)

        def client(service: str) -> Any:
            return boto3.client(
                service, endpoint_url=cls.url, region_name="us-east-1", config=config,
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )

        cls.ec2, cls.asg, cls.elbv2 = client("ec2"), client("autoscaling"), client("elbv2")
        cls.vpc = cls.ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        cls.subnet = cls.ec2.create_subnet(
            VpcId=cls.vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="us-east-1a"
        )["Subnet"]["SubnetId"]
        cls.ec2.create_launch_template(
            LaunchTemplateName=TEMPLATE,
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )

    @classmethod
    def tearDownClass(cls) -> None:
        stop_emulator(cls.proc)

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

    def settings(self, **values: float) -> None:
        status, _ = self.control("POST", "/_launch_gate/settings", values)
        self.assertEqual(status, 200)

    def actions(self, group: str) -> list[dict[str, Any]]:
        _, body = self.control("GET", "/_launch_gate/lifecycle-actions")
        return [a for a in body["LifecycleActions"] if a["AutoScalingGroupName"] == group]

    def pending_action(self, group: str) -> dict[str, Any]:
        return eventually(
            lambda: next((a for a in self.actions(group) if a["Pending"]), None),
            what=f"a pending lifecycle action in {group}",
        )

    # --- AWS resources ---

    def group(self, hook: bool = True, heartbeat: int = 30, capacity: int = 1,
              target_groups: list[str] | None = None, **create: Any) -> str:
        """An Auto Scaling group from the launch template, with a launch hook (default
        result ABANDON) and `capacity` instances."""
        name = f"g-{uuid.uuid4().hex[:8]}"
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=10, DesiredCapacity=0,
            VPCZoneIdentifier=self.subnet, LaunchTemplate={"LaunchTemplateName": TEMPLATE},
            TargetGroupARNs=target_groups or [], **create,
        )
        if hook:
            self.asg.put_lifecycle_hook(
                AutoScalingGroupName=name, LifecycleHookName="launch-gate",
                LifecycleTransition=LAUNCHING, HeartbeatTimeout=heartbeat, DefaultResult="ABANDON",
            )
        if capacity:
            self.asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=capacity)
        return name

    def delete_group(self, name: str) -> None:
        self.asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)

    def complete(self, group: str, action: dict[str, Any], result: str) -> None:
        self.asg.complete_lifecycle_action(
            AutoScalingGroupName=group, LifecycleHookName=action["LifecycleHookName"],
            LifecycleActionToken=action["LifecycleActionToken"], LifecycleActionResult=result,
        )

    def target_group(self) -> str:
        return self.elbv2.create_target_group(
            Name=f"tg-{uuid.uuid4().hex[:8]}", Protocol="HTTP", Port=8080, VpcId=self.vpc,
            HealthCheckPath="/health",
        )["TargetGroups"][0]["TargetGroupArn"]

    def run_instance(self, tags: dict[str, str] | None = None) -> dict[str, Any]:
        spec = {}
        if tags:
            spec["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ]
        return self.ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=self.subnet, **spec
        )["Instances"][0]

    def instance(self, instance_id: str) -> dict[str, Any]:
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    def tagged(self, key: str, value: str) -> list[str]:
        """The ids DescribeInstances finds with a tag filter."""
        reservations = self.ec2.describe_instances(
            Filters=[{"Name": f"tag:{key}", "Values": [value]}]
        )["Reservations"]
        return [i["InstanceId"] for r in reservations for i in r["Instances"]]

    def asg_instance(self, instance_id: str) -> list[dict[str, Any]]:
        return self.asg.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]

    def group_instances(self, group: str) -> list[dict[str, Any]]:
        return self.asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[group]
        )["AutoScalingGroups"][0]["Instances"]

    def registered(self, arn: str) -> set[str]:
        health = self.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        return {h["Target"]["Id"] for h in health}


class DefaultEmulatorTest(EmulatorTestCase):
    """The emulator with no new option: moto's behaviour where nothing was corrected."""

    def setUp(self) -> None:
        self.settings(pending_seconds=0, terminated_tags_seconds=-1, token_resolves_alone=False)
        self.control("DELETE", "/_launch_gate/faults")
        self.control("DELETE", "/_launch_gate/target-health")

    # --- defaults ---

    def test_defaults_running_at_once_and_tags_kept(self) -> None:
        self.assertEqual(
            self.control("GET", "/_launch_gate/settings"),
            (200, {"pending_seconds": 0.0, "terminated_tags_seconds": -1.0, "token_resolves_alone": False}),
        )
        marker = uuid.uuid4().hex
        launched = self.run_instance({"marker": marker})
        # RunInstances answers `pending` (moto as AWS); DescribeInstances: running at once.
        self.assertEqual(self.instance(launched["InstanceId"])["State"], {"Code": 16, "Name": "running"})
        self.ec2.terminate_instances(InstanceIds=[launched["InstanceId"]])
        time.sleep(0.4)  # a timer tick or more
        described = self.instance(launched["InstanceId"])
        self.assertEqual(described["State"]["Name"], "terminated")
        self.assertIn({"Key": "marker", "Value": marker}, described.get("Tags", []))
        self.assertEqual(self.tagged("marker", marker), [launched["InstanceId"]])

    def test_a_token_beside_another_instances_id(self) -> None:
        # AWS does not say whether a call carrying a token checks the instance id beside
        # it: with the switch off both must name one action; on, the token alone does.
        group = self.group(capacity=2)
        eventually(lambda: len([x for x in self.actions(group) if x["Pending"]]) == 2, what="two held")
        first, second = [x for x in self.actions(group) if x["Pending"]]
        crossed = dict(AutoScalingGroupName=group, LifecycleHookName="launch-gate",
                       LifecycleActionToken=first["LifecycleActionToken"],
                       InstanceId=second["EC2InstanceId"])
        for call in (self.asg.record_lifecycle_action_heartbeat,
                     lambda **k: self.asg.complete_lifecycle_action(LifecycleActionResult="CONTINUE", **k)):
            with self.assertRaises(self.asg.exceptions.ClientError) as refused:
                call(**crossed)
            self.assertIn("No active Lifecycle Action found", str(refused.exception))
        self.settings(token_resolves_alone=True)
        self.asg.complete_lifecycle_action(LifecycleActionResult="CONTINUE", **crossed)  # the first's
        pending = {x["EC2InstanceId"] for x in self.actions(group) if x["Pending"]}
        self.assertEqual(pending, {second["EC2InstanceId"]})
        status, body = self.control("POST", "/_launch_gate/settings", {"token_resolves_alone": "yes"})
        self.assertEqual(status, 400, body)

    def test_unknown_setting_is_refused(self) -> None:
        status, body = self.control("POST", "/_launch_gate/settings", {"pending": 1})
        self.assertEqual(status, 400)
        self.assertIn("unknown settings", body["error"])

    # --- 1: scaling activity wording ---

    def cancelled(self, group: str) -> dict[str, Any]:
        return eventually(
            lambda: next(
                (a for a in self.asg.describe_scaling_activities(AutoScalingGroupName=group)["Activities"]
                 if a["StatusCode"] == "Cancelled"),
                None,
            ),
            what="a Cancelled activity",
        )

    def test_abandon_by_completion_is_worded_as_completed(self) -> None:
        group = self.group()
        action = self.pending_action(group)
        self.complete(group, action, "ABANDON")
        activity = self.cancelled(group)
        expected = (
            "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
            f"{action['LifecycleActionToken']} was abandoned: Lifecycle Action Completed with ABANDON Result"
        )
        self.assertEqual(activity["StatusMessage"], expected)
        self.assertEqual(
            activity["Description"],
            f"Launching a new EC2 instance: {action['EC2InstanceId']}.  Status Reason: {expected}",
        )
        self.delete_group(group)

    def test_abandon_by_heartbeat_timeout_is_worded_as_timeout(self) -> None:
        group = self.group(heartbeat=1)
        action = self.pending_action(group)
        activity = self.cancelled(group)
        self.assertEqual(
            activity["StatusMessage"],
            "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
            f"{action['LifecycleActionToken']} was abandoned: Heartbeat Timeout",
        )
        ended = next(a for a in self.actions(group) if a["LifecycleActionToken"] == action["LifecycleActionToken"])
        self.assertEqual((ended["Result"], ended["EndedBy"]), ("ABANDON", "HeartbeatTimeout"))
        self.delete_group(group)

    def test_abandon_by_global_timeout_is_worded_as_timeout(self) -> None:
        # 100 x the heartbeat is too long to wait for: the recorder, in process.
        sys.path.insert(0, str(HERE))
        import rollouts

        backend = type("Backend", (), {})()
        backend.scaling_activities = [{"InstanceId": "i-1", "EndTime": None, "Description": "Launching a new EC2 instance: i-1"}]
        rollouts.record_lifecycle_end(backend, "i-1", "ABANDON", "tok", "GlobalTimeout")
        self.assertTrue(backend.scaling_activities[0]["StatusMessage"].endswith("token tok was abandoned: Heartbeat Timeout"))

    # --- 2: GlobalTimeout ---

    def test_global_timeout_is_100_heartbeats_at_most_48_hours(self) -> None:
        name = f"g-{uuid.uuid4().hex[:8]}"
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=1, DesiredCapacity=0,
            VPCZoneIdentifier=self.subnet, LaunchTemplate={"LaunchTemplateName": TEMPLATE},
            LifecycleHookSpecificationList=[
                {"LifecycleHookName": "spec", "LifecycleTransition": LAUNCHING,
                 "HeartbeatTimeout": 60, "DefaultResult": "CONTINUE"},
            ],
        )
        self.asg.put_lifecycle_hook(AutoScalingGroupName=name, LifecycleHookName="put",
                                    LifecycleTransition=LAUNCHING, HeartbeatTimeout=30)
        self.asg.put_lifecycle_hook(AutoScalingGroupName=name, LifecycleHookName="default",
                                    LifecycleTransition=LAUNCHING)
        hooks = self.asg.describe_lifecycle_hooks(AutoScalingGroupName=name)["LifecycleHooks"]
        self.assertEqual(
            {h["LifecycleHookName"]: (h["HeartbeatTimeout"], h["GlobalTimeout"]) for h in hooks},
            {"spec": (60, 6000), "put": (30, 3000), "default": (3600, 172800)},
        )

    # --- 3: tags of terminated instances ---

    def test_terminated_instance_loses_its_tags_after_the_setting(self) -> None:
        marker = uuid.uuid4().hex
        kept = self.run_instance({"marker": marker})["InstanceId"]
        self.ec2.terminate_instances(InstanceIds=[kept])
        self.assertEqual(self.tagged("marker", marker), [kept])
        # 0: gone at once, also for instances terminated before the change.
        self.settings(terminated_tags_seconds=0)
        self.assertNotIn("Tags", self.instance(kept))
        self.assertEqual(self.tagged("marker", marker), [])
        # N seconds: kept that long, then gone.
        self.settings(terminated_tags_seconds=0.5)
        later = self.run_instance({"marker": marker})["InstanceId"]
        self.ec2.terminate_instances(InstanceIds=[later])
        self.assertEqual(self.tagged("marker", marker), [later])
        eventually(lambda: self.tagged("marker", marker) == [], timeout=3, what="the tags to go")
        self.assertNotIn("Tags", self.instance(later))

    def test_abandoned_instance_loses_its_tags(self) -> None:
        self.settings(terminated_tags_seconds=0)
        group = self.group()
        action = self.pending_action(group)
        abandoned = action["EC2InstanceId"]
        self.assertIn(abandoned, self.tagged("aws:autoscaling:groupName", group))
        self.complete(group, action, "ABANDON")
        self.assertEqual(self.instance(abandoned)["State"]["Name"], "terminated")
        self.assertNotIn("Tags", self.instance(abandoned))
        self.assertNotIn(abandoned, self.tagged("aws:autoscaling:groupName", group))
        self.delete_group(group)

    def test_instance_refresh_replacement_loses_its_tags(self) -> None:
        self.settings(terminated_tags_seconds=0)
        template = f"lt-{uuid.uuid4().hex[:8]}"
        self.ec2.create_launch_template(
            LaunchTemplateName=template, LaunchTemplateData={"ImageId": "ami-12c6146b"}
        )
        self.ec2.create_launch_template_version(
            LaunchTemplateName=template, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"}
        )
        name = f"g-{uuid.uuid4().hex[:8]}"
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=2, DesiredCapacity=1,
            VPCZoneIdentifier=self.subnet, LaunchTemplate={"LaunchTemplateName": template, "Version": "1"},
        )
        old = self.group_instances(name)[0]["InstanceId"]
        self.asg.start_instance_refresh(
            AutoScalingGroupName=name,
            DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateName": template, "Version": "2"}},
        )
        eventually(lambda: self.instance(old)["State"]["Name"] == "terminated", what="the replacement")
        self.assertNotIn("Tags", self.instance(old))

    # --- 4: pending ---

    def test_pending_instance_cannot_be_registered_until_running(self) -> None:
        self.settings(pending_seconds=0.6)
        launched = self.run_instance()
        described = self.instance(launched["InstanceId"])
        self.assertEqual(described["State"], {"Code": 0, "Name": "pending"})
        self.assertTrue(described["PrivateIpAddress"].startswith("127.0.1."))
        arn = self.target_group()
        with self.assertRaises(ClientError) as raised:
            self.elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": launched["InstanceId"]}])
        error = raised.exception.response
        self.assertEqual(error["Error"]["Code"], "InvalidTarget")
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertEqual(
            error["Error"]["Message"],
            "The following targets are not in a running state and cannot be registered: "
            f"'{launched['InstanceId']}'",
        )
        self.assertEqual(self.registered(arn), set())
        eventually(lambda: self.instance(launched["InstanceId"])["State"] == {"Code": 16, "Name": "running"},
                   what="running")
        self.elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": launched["InstanceId"]}])
        self.assertEqual(self.registered(arn), {launched["InstanceId"]})

    def test_group_instance_held_while_pending_goes_in_service_when_running(self) -> None:
        self.settings(pending_seconds=1)
        arn = self.target_group()
        group = self.group(target_groups=[arn])
        action = self.pending_action(group)
        instance_id = action["EC2InstanceId"]
        self.assertEqual(self.instance(instance_id)["State"]["Name"], "pending")
        self.assertEqual(self.asg_instance(instance_id)[0]["LifecycleState"], "Pending:Wait")
        self.complete(group, action, "CONTINUE")
        self.assertEqual(self.asg_instance(instance_id)[0]["LifecycleState"], "Pending:Proceed")
        self.assertEqual(self.registered(arn), set())
        eventually(lambda: self.asg_instance(instance_id)[0]["LifecycleState"] == "InService",
                   what="InService")
        self.assertEqual(self.instance(instance_id)["State"]["Name"], "running")
        self.assertEqual(self.registered(arn), {instance_id})
        self.delete_group(group)

    def test_group_instance_without_hooks_is_pending_until_running(self) -> None:
        self.settings(pending_seconds=0.6)
        arn = self.target_group()
        group = self.group(hook=False, target_groups=[arn])
        [instance] = self.group_instances(group)
        self.assertEqual(instance["LifecycleState"], "Pending")
        self.assertEqual(self.registered(arn), set())
        eventually(lambda: self.group_instances(group)[0]["LifecycleState"] == "InService", what="InService")
        self.assertEqual(self.registered(arn), {instance["InstanceId"]})
        self.delete_group(group)

    # --- 5: target health errors ---

    def test_target_health_override_for_count_answers(self) -> None:
        arn = self.target_group()
        other = self.target_group()
        instance_id = self.run_instance()["InstanceId"]
        for tg in (arn, other):
            self.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance_id}])

        def health(tg: str) -> dict[str, Any]:
            return self.elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"][0]["TargetHealth"]

        status, _ = self.control("POST", "/_launch_gate/target-health", {
            "target_group_arn": arn, "state": "unavailable", "reason": "Elb.InternalError", "count": 2})
        self.assertEqual(status, 200)
        self.assertEqual(health(other)["State"], "unused")  # only that target group
        for _ in range(2):
            self.assertEqual(health(arn), {
                "State": "unavailable", "Reason": "Elb.InternalError",
                "Description": "Target health is unavailable due to an internal error"})
        self.assertEqual(health(arn)["Reason"], "Target.NotInUse")  # the real state again

        self.control("POST", "/_launch_gate/target-health", {
            "target_group_arn": arn, "state": "unhealthy", "reason": "Elb.InternalError",
            "description": "Health checks failed due to an internal error", "count": -1})
        for _ in range(3):
            self.assertEqual(health(arn), {
                "State": "unhealthy", "Reason": "Elb.InternalError",
                "Description": "Health checks failed due to an internal error"})
        self.assertEqual(self.control("DELETE", "/_launch_gate/target-health")[0], 200)
        self.assertEqual(health(arn)["State"], "unused")

    def test_target_health_override_refuses_an_unknown_state(self) -> None:
        status, _ = self.control("POST", "/_launch_gate/target-health", {
            "target_group_arn": self.target_group(), "state": "sick"})
        self.assertEqual(status, 400)

    # --- 6: faults after the effect, and slow answers ---

    def test_fault_after_effect_completes_the_action_then_fails(self) -> None:
        group = self.group()
        action = self.pending_action(group)
        self.control("POST", "/_launch_gate/faults", {
            "operation": "CompleteLifecycleAction", "status": 500, "code": "InternalFailure",
            "after_effect": True})
        with self.assertRaises(ClientError) as raised:
            self.complete(group, action, "CONTINUE")
        self.assertEqual(raised.exception.response["Error"]["Code"], "InternalFailure")
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        done = next(a for a in self.actions(group) if a["LifecycleActionToken"] == action["LifecycleActionToken"])
        self.assertEqual((done["Pending"], done["Result"]), (False, "CONTINUE"))
        self.assertEqual(self.asg_instance(action["EC2InstanceId"])[0]["LifecycleState"], "InService")
        with self.assertRaises(ClientError) as again:  # the retry: count was 1
            self.complete(group, action, "CONTINUE")
        self.assertEqual(again.exception.response["Error"]["Code"], "ValidationError")
        self.assertIn("No active Lifecycle Action found", again.exception.response["Error"]["Message"])
        self.delete_group(group)

    def timed(self, call: Callable[[], Any]) -> tuple[float, Any]:
        start = time.monotonic()
        try:
            result = call()
        except ClientError as err:
            result = err
        return time.monotonic() - start, result

    def test_delay_alone_is_a_slow_success(self) -> None:
        group = self.group(capacity=0)
        describe = lambda: self.asg.describe_lifecycle_hooks(AutoScalingGroupName=group)
        for fault in ({"delay_seconds": 0.4}, {"delay_seconds": 0.4, "status": 200}):
            self.control("POST", "/_launch_gate/faults", {"operation": "DescribeLifecycleHooks", **fault})
            elapsed, result = self.timed(describe)
            self.assertGreaterEqual(elapsed, 0.4)
            self.assertEqual(len(result["LifecycleHooks"]), 1)
            elapsed, _ = self.timed(describe)  # count 1: the next is quick
            self.assertLess(elapsed, 0.4)

    def test_delayed_error_and_plain_error(self) -> None:
        group = self.group(capacity=0)
        describe = lambda: self.asg.describe_lifecycle_hooks(AutoScalingGroupName=group)
        self.control("POST", "/_launch_gate/faults", {
            "operation": "DescribeLifecycleHooks", "status": 400, "code": "Throttling", "delay_seconds": 0.4})
        elapsed, result = self.timed(describe)
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertEqual(result.response["Error"]["Code"], "Throttling")
        # As before: no code, no status, no delay is a 500 InternalFailure, at once.
        self.control("POST", "/_launch_gate/faults", {"operation": "DescribeLifecycleHooks", "count": 2})
        for _ in range(2):
            elapsed, result = self.timed(describe)
            self.assertLess(elapsed, 0.4)
            self.assertEqual(result.response["Error"]["Code"], "InternalFailure")
        self.assertIn("LifecycleHooks", describe())

    def test_slow_success_is_carried_out_before_the_answer(self) -> None:
        group = self.group()
        action = self.pending_action(group)
        self.control("POST", "/_launch_gate/faults", {
            "operation": "CompleteLifecycleAction", "delay_seconds": 1})
        answered = threading.Event()

        def call() -> None:
            self.complete(group, action, "CONTINUE")
            answered.set()

        thread = threading.Thread(target=call)
        thread.start()
        eventually(lambda: not self.actions(group)[0]["Pending"], what="the completion")
        self.assertFalse(answered.is_set())
        thread.join(5)
        self.assertTrue(answered.is_set())
        self.delete_group(group)

    # --- 7: warm pools ---

    def test_warm_pool_launch_is_held_then_stopped(self) -> None:
        group = self.group(capacity=0)
        status, body = self.control("POST", "/_launch_gate/warm-pool-launch", {"group": group})
        self.assertEqual(status, 400)  # no warm pool yet
        self.asg.put_warm_pool(AutoScalingGroupName=group, MinSize=1, PoolState="Stopped")
        status, body = self.control("POST", "/_launch_gate/warm-pool-launch", {"group": group})
        self.assertEqual(status, 200)
        instance_id = body["InstanceId"]
        self.assertEqual(body["LifecycleState"], "Warmed:Pending:Wait")
        [action] = self.actions(group)
        self.assertEqual(body["LifecycleActionTokens"], [action["LifecycleActionToken"]])
        self.assertEqual((action["Origin"], action["Destination"], action["EC2InstanceId"]),
                         ("EC2", "WarmPool", instance_id))
        pool = self.asg.describe_warm_pool(AutoScalingGroupName=group)
        self.assertEqual(pool["WarmPoolConfiguration"]["PoolState"], "Stopped")
        self.assertEqual([(i["InstanceId"], i["LifecycleState"]) for i in pool["Instances"]],
                         [(instance_id, "Warmed:Pending:Wait")])
        [details] = self.asg_instance(instance_id)
        self.assertEqual((details["AutoScalingGroupName"], details["LifecycleState"]),
                         (group, "Warmed:Pending:Wait"))
        described = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        self.assertEqual((described["Instances"], described["DesiredCapacity"]), ([], 0))
        self.assertEqual(self.instance(instance_id)["State"]["Name"], "running")
        activities = self.asg.describe_scaling_activities(AutoScalingGroupName=group)["Activities"]
        self.assertEqual([(a["Description"], a["StatusCode"]) for a in activities],
                         [(f"Launching a new EC2 instance into warm pool: {instance_id}", "MidLifecycleAction")])

        self.complete(group, action, "CONTINUE")
        self.assertEqual(self.asg_instance(instance_id)[0]["LifecycleState"], "Warmed:Stopped")
        self.assertEqual(self.instance(instance_id)["State"]["Name"], "stopped")
        pool = self.asg.describe_warm_pool(AutoScalingGroupName=group)
        self.assertEqual([i["LifecycleState"] for i in pool["Instances"]], ["Warmed:Stopped"])
        self.assertEqual(self.group_instances(group), [])

    def test_warm_pool_abandon_terminates(self) -> None:
        group = self.group(capacity=0)
        self.asg.put_warm_pool(AutoScalingGroupName=group, MinSize=1, PoolState="Stopped")
        _, body = self.control("POST", "/_launch_gate/warm-pool-launch", {"group": group})
        [action] = self.actions(group)
        self.complete(group, action, "ABANDON")
        self.assertEqual(self.instance(body["InstanceId"])["State"]["Name"], "terminated")
        self.assertEqual(self.asg.describe_warm_pool(AutoScalingGroupName=group)["Instances"], [])
        self.assertEqual(self.asg_instance(body["InstanceId"]), [])
        activity = self.asg.describe_scaling_activities(AutoScalingGroupName=group)["Activities"][0]
        self.assertEqual(activity["StatusCode"], "Cancelled")
        self.assertEqual(self.group_instances(group), [])

    def test_warm_pool_launch_of_unknown_group(self) -> None:
        status, _ = self.control("POST", "/_launch_gate/warm-pool-launch", {"group": "no-such-group"})
        self.assertEqual(status, 404)

    # --- 8: DescribeAutoScalingInstances ---

    def test_describe_auto_scaling_instances(self) -> None:
        group = self.group()
        action = self.pending_action(group)
        [details] = self.asg_instance(action["EC2InstanceId"])
        self.assertEqual((details["AutoScalingGroupName"], details["LifecycleState"]), (group, "Pending:Wait"))
        lone = self.run_instance()["InstanceId"]
        self.assertEqual(self.asg_instance(lone), [])
        self.delete_group(group)

    # --- 9: an instance launched long ago ---

    def test_age_ends_the_action_by_global_timeout(self) -> None:
        # HeartbeatTimeout 30: global timeout 3000 s, 5 s left after 2995 s of age.
        group = self.group(heartbeat=30)
        action = self.pending_action(group)
        instance_id, token = action["EC2InstanceId"], action["LifecycleActionToken"]
        status, body = self.control("POST", "/_launch_gate/age", {"instance_id": instance_id, "seconds": 2995})
        aged_at = time.time()
        self.assertEqual(status, 200)
        self.assertEqual(body["InstanceId"], instance_id)
        self.assertEqual([a["LifecycleActionToken"] for a in body["LifecycleActions"]], [token])
        self.assertTrue(body["LifecycleActions"][0]["Pending"])
        self.assertEqual(body["LifecycleActions"][0]["Heartbeats"], [])
        launched = self.instance(instance_id)["LaunchTime"].timestamp()
        self.assertAlmostEqual(launched, aged_at - 2995, delta=5)

        def ended() -> dict[str, Any] | None:
            found = next(a for a in self.actions(group) if a["LifecycleActionToken"] == token)
            return None if found["Pending"] else found

        done = eventually(ended, timeout=8, what="the global timeout")
        self.assertLess(time.time() - aged_at, 7)
        self.assertEqual((done["Result"], done["EndedBy"]), ("ABANDON", "GlobalTimeout"))
        self.assertEqual(self.instance(instance_id)["State"]["Name"], "terminated")
        self.delete_group(group)

    def test_age_leaves_the_heartbeat_timer(self) -> None:
        # 100 s of age with a 30 s heartbeat (global timeout 3000 s): nothing ends.
        group = self.group(heartbeat=30)
        action = self.pending_action(group)
        status, body = self.control(
            "POST", "/_launch_gate/age", {"instance_id": action["EC2InstanceId"], "seconds": 100})
        self.assertEqual(status, 200)
        time.sleep(0.6)  # timer ticks
        [still] = [a for a in self.actions(group) if a["LifecycleActionToken"] == action["LifecycleActionToken"]]
        self.assertTrue(still["Pending"])
        self.assertEqual(still["Started"], body["LifecycleActions"][0]["Started"])
        self.assertLess(still["Started"], action["Started"])
        self.delete_group(group)

    def test_age_of_unknown_instance_or_bad_seconds(self) -> None:
        status, _ = self.control("POST", "/_launch_gate/age", {"instance_id": "i-0000000000000000", "seconds": 1})
        self.assertEqual(status, 404)
        lone = self.run_instance()["InstanceId"]
        for seconds in (None, "soon", -1):
            status, _ = self.control("POST", "/_launch_gate/age", {"instance_id": lone, "seconds": seconds})
            self.assertEqual(status, 400)
        # No lifecycle action: only the launch time moves.
        before = self.instance(lone)["LaunchTime"].timestamp()
        status, body = self.control("POST", "/_launch_gate/age", {"instance_id": lone, "seconds": 60})
        self.assertEqual((status, body["LifecycleActions"]), (200, []))
        self.assertAlmostEqual(self.instance(lone)["LaunchTime"].timestamp(), before - 60, delta=1)

    # --- 10: IPv6-only instances ---

    def test_ipv6_only_instance(self) -> None:
        instance_id = self.run_instance()["InstanceId"]
        other = self.run_instance()["InstanceId"]
        status, body = self.control("POST", "/_launch_gate/ipv6-only", {"instance_id": instance_id, "ipv6": "::1"})
        self.assertEqual((status, body), (200, {"InstanceId": instance_id, "Ipv6Address": "::1"}))
        described = self.instance(instance_id)
        self.assertNotIn("PrivateIpAddress", described)
        self.assertNotIn("PublicIpAddress", described)
        self.assertEqual(described["Ipv6Address"], "::1")
        self.assertEqual(described["PrivateDnsName"], f"{instance_id}.ec2.internal")
        nic = described["NetworkInterfaces"][0]
        self.assertEqual(nic["Ipv6Addresses"][0]["Ipv6Address"], "::1")
        self.assertNotIn("PrivateIpAddress", nic)
        self.assertEqual([a for a in nic.get("PrivateIpAddresses", []) if "PrivateIpAddress" in a], [])
        # Other instances keep their IPv4 address and have no IPv6 one.
        untouched = self.instance(other)
        self.assertTrue(untouched["PrivateIpAddress"].startswith("127.0.1."))
        self.assertNotIn("Ipv6Address", untouched)

    def test_ipv6_only_refusals(self) -> None:
        status, _ = self.control("POST", "/_launch_gate/ipv6-only", {"instance_id": "i-0000000000000000", "ipv6": "::1"})
        self.assertEqual(status, 404)
        instance_id = self.run_instance()["InstanceId"]
        for address in ("2001:db8::1", "127.0.0.1", "nonsense"):
            status, _ = self.control("POST", "/_launch_gate/ipv6-only", {"instance_id": instance_id, "ipv6": address})
            self.assertEqual(status, 400, address)
        self.assertTrue(self.instance(instance_id)["PrivateIpAddress"].startswith("127.0.1."))


class CommandLineOptionsTest(EmulatorTestCase):
    """`--pending-seconds` and `--terminated-tags-seconds` on the command line."""

    options = ("--pending-seconds", "0.5", "--terminated-tags-seconds", "0")

    def test_options(self) -> None:
        self.assertEqual(
            self.control("GET", "/_launch_gate/settings"),
            (200, {"pending_seconds": 0.5, "terminated_tags_seconds": 0.0, "token_resolves_alone": False}),
        )
        marker = uuid.uuid4().hex
        launched = self.run_instance({"marker": marker})
        self.assertEqual(self.instance(launched["InstanceId"])["State"]["Name"], "pending")
        eventually(lambda: self.instance(launched["InstanceId"])["State"]["Name"] == "running", what="running")
        self.ec2.terminate_instances(InstanceIds=[launched["InstanceId"]])
        self.assertEqual(self.tagged("marker", marker), [])
        self.assertNotIn("Tags", self.instance(launched["InstanceId"]))


if __name__ == "__main__":
    unittest.main()
