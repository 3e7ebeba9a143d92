"""launch-gate, narrated: two releases of the example shop meet the gate, an outage of
the database they share is told apart from a broken release, and the broken release's
launch loop meets the breaker.

Everything runs on this machine: the AWS emulator (moto plus the project's extension),
an Auto Scaling group whose instances get loopback private IPs (127.0.1.x), the example
Django app under gunicorn bound to each instance's IP, and the gate itself, the release
`bootstrap` binary's debug build, running as a Lambda function under cargo lambda's
Runtime API. Run it with `scripts/demo`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

import ecs_scene

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
APP_DIR = REPO / "examples" / "django-app"
COLOR = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def paint(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say()
    say(paint("1;36", f"== {text}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(host: str, port: int, seconds: float = 20) -> None:
    until = time.time() + seconds
    while time.time() < until:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"demo: nothing listens on {host}:{port}")


class Demo:
    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="launch-gate-demo-")
        self.app_port = int(os.environ.get("DEMO_APP_PORT", "8000"))

    def spawn(self, args: list[str], **kwargs) -> subprocess.Popen:
        p = subprocess.Popen(args, **kwargs)
        self.processes.append(p)
        return p

    def stop_all(self) -> None:
        for p in reversed(self.processes):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.tmp.cleanup()

    # --- the pieces ------------------------------------------------------------------

    def start_emulator(self) -> None:
        p = self.spawn(
            [sys.executable, str(REPO / "emulator" / "launch_gate_emulator.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = p.stdout.readline().strip()
        self.endpoint = line.rsplit(" ", 1)[-1]
        say(f"AWS emulator (moto + launch-gate extension) at {self.endpoint}")
        kw = dict(
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.ec2 = boto3.client("ec2", **kw)
        self.asg = boto3.client("autoscaling", **kw)
        self.elbv2 = boto3.client("elbv2", **kw)
        self.ecs = boto3.client("ecs", **kw)

    def create_group(self) -> None:
        vpc = self.ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(
            VpcId=vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="us-east-1a"
        )["Subnet"]["SubnetId"]
        self.vpc, self.subnet = vpc, subnet
        self.ec2.create_launch_template(
            LaunchTemplateName="shop-web",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName="shop-web",
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnet,
            LaunchTemplate={"LaunchTemplateName": "shop-web"},
        )
        # The hook holds each new instance in Pending:Wait; its metadata carries the
        # gate's per-group settings.
        self.asg.put_lifecycle_hook(
            AutoScalingGroupName="shop-web",
            LifecycleHookName="launch-gate",
            LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
            HeartbeatTimeout=300,
            DefaultResult="ABANDON",
            NotificationMetadata=json.dumps({"health_port": self.app_port, "health_path": "/health"}),
        )
        say("Auto Scaling group shop-web in VPC 127.0.0.0/16, launch lifecycle hook launch-gate "
            "(DefaultResult ABANDON, HeartbeatTimeout 300 s)")

    def start_function(self) -> None:
        rt_port = free_port()
        cargo_lambda = str(VENV_BIN / "cargo-lambda")
        self.spawn(
            [cargo_lambda, "lambda", "watch", "--only-lambda-apis",
             "--invoke-address", "127.0.0.1", "--invoke-port", str(rt_port)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_listening("127.0.0.1", rt_port)
        env = dict(
            os.environ,
            AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{rt_port}/.rt",
            AWS_LAMBDA_FUNCTION_NAME="_",
            AWS_LAMBDA_FUNCTION_VERSION="1",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_EC2_METADATA_DISABLED="true",
            # Faster than the defaults, to keep the demo short.
            LAUNCH_GATE_INTERVAL_SECONDS="2",
            LAUNCH_GATE_PROBE_TIMEOUT_SECONDS="2",
            LAUNCH_GATE_HEALTHY_THRESHOLD="2",
            LAUNCH_GATE_UNHEALTHY_THRESHOLD="2",
            LAUNCH_GATE_GRACE_PERIOD_SECONDS="4",
            LAUNCH_GATE_MAX_WAIT_SECONDS="60",
        )
        self.function_log = Path(self.tmp.name) / "function.log"
        self.spawn(
            [str(REPO / "target" / "debug" / "bootstrap")],
            env=env, stdout=self.function_log.open("w"), stderr=subprocess.STDOUT,
        )
        self.rt_port = rt_port
        say(f"launch-gate running as a Lambda function under cargo lambda's Runtime API "
            f"(127.0.0.1:{rt_port})")

    def new_release(self) -> None:
        self.ec2.create_launch_template_version(
            LaunchTemplateName="shop-web",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )
        self.asg.update_auto_scaling_group(
            AutoScalingGroupName="shop-web",
            LaunchTemplate={"LaunchTemplateName": "shop-web", "Version": "2"},
        )
        say("launch template shop-web version 2 holds the release; the group now launches it")

    def launch_instance(self, capacity: int) -> tuple[dict, str]:
        self.asg.set_desired_capacity(AutoScalingGroupName="shop-web", DesiredCapacity=capacity)
        return self.held_instance()

    def pending_actions(self) -> list[dict]:
        actions = json.load(urllib.request.urlopen(f"{self.endpoint}/_launch_gate/lifecycle-actions"))
        return [a for a in actions["LifecycleActions"] if a["Pending"]]

    def held_instance(self) -> tuple[dict, str]:
        action = self.pending_actions()[-1]
        instance = self.ec2.describe_instances(InstanceIds=[action["EC2InstanceId"]])
        ip = instance["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
        say(f"the group launches {action['EC2InstanceId']} at {ip}: "
            f"{paint('33', self.lifecycle_state(action['EC2InstanceId']))}, "
            "not registered with any target group yet")
        return action, ip

    @property
    def database(self) -> Path:
        """The database every release shares (SQLite standing in for a database server)."""
        return Path(self.tmp.name) / "database" / "shop.sqlite3"

    def database_down(self) -> None:
        self.database.parent.rename(self.database.parent.with_name("database.down"))

    def database_back(self) -> None:
        self.database.parent.with_name("database.down").rename(self.database.parent)

    def start_app(self, ip: str, allowed_hosts: str, name: str) -> None:
        env = dict(os.environ, DJANGO_SECRET_KEY="demo-only", DJANGO_DB_PATH=str(self.database),
                   DJANGO_ALLOWED_HOSTS=allowed_hosts, SHOP_CURRENCY="EUR")
        if not self.database.parent.exists() and not self.database.parent.with_name("database.down").exists():
            self.database.parent.mkdir()
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=APP_DIR, env=env, check=True)
        self.spawn(
            [sys.executable, "-m", "gunicorn", "shop.wsgi", "--workers", "1", "--bind", f"{ip}:{self.app_port}"],
            cwd=APP_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_listening(ip, self.app_port)
        say(f"the instance's user data starts the shop under gunicorn on {ip}:{self.app_port} "
            f"with ALLOWED_HOSTS={allowed_hosts}")

    def invoke(self, action: dict) -> dict:
        event = json.loads((REPO / "events" / "launch.json").read_text())
        for key in ("LifecycleActionToken", "AutoScalingGroupName", "LifecycleHookName",
                    "EC2InstanceId", "NotificationMetadata"):
            event["detail"][key] = action[key]
        event["time"] = action["Started"]
        event["resources"] = [action["AutoScalingGroupARN"]]
        say("EventBridge delivers 'EC2 Instance-launch Lifecycle Action' "
            "(cargo lambda invoke --data-file events/launch.json, with this instance's token)")
        return self.invoke_payload(event)["decisions"][0]

    def invoke_payload(self, payload: dict) -> dict:
        """Invokes the function under the Runtime API with `payload`; its JSON answer."""
        path = Path(self.tmp.name) / "event.json"
        path.write_text(json.dumps(payload))
        out = subprocess.run(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", "--invoke-address", "127.0.0.1",
             "--invoke-port", str(self.rt_port), "--data-file", str(path)],
            cwd=REPO, capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"demo: invoke failed: {out.stdout}{out.stderr}")
        return json.loads(out.stdout)

    def lifecycle_state(self, instance_id: str) -> str:
        group = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-web"])["AutoScalingGroups"][0]
        for i in group["Instances"]:
            if i["InstanceId"] == instance_id:
                return i["LifecycleState"]
        state = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]
        return f"out of the group ({state['Name']})"

    def report(self, decision: dict) -> None:
        result = decision["result"]
        colour = "1;32" if result == "CONTINUE" else "1;31"
        probes = ", ".join(str(p["status"] or p.get("error", {}).get("kind")) for p in decision["probes"])
        say(f"  probes (as the ELB sends them, Host: {decision['host_header']}): {probes}")
        say(f"  {paint(colour, result)} after {decision['time_to_decision_ms'] / 1000:.1f} s: {decision['reason']}")
        if decision.get("cause"):
            say(f"  cause: {paint('1', decision['cause']['code'])}")
        baseline = decision.get("baseline")
        if baseline:
            say(f"  baseline: {baseline['note']} ({baseline['comparisons']} failing rounds compared, "
                f"{baseline['environment_rounds']} the environment's)")
        say(f"  {decision['instance_id']}: {paint('33', self.lifecycle_state(decision['instance_id']))}")

    def rollout(self) -> int:
        say("the pipeline runs: launch-gate rollout --group shop-web --timeout 10s")
        out = subprocess.run(
            [str(REPO / "target" / "debug" / "launch-gate"), "rollout", "--group", "shop-web",
             "--timeout", "10s", "--poll-interval", "1s"],
            env=dict(os.environ, AWS_ENDPOINT_URL=self.endpoint), capture_output=True, text=True,
        )
        for line in (out.stdout + out.stderr).splitlines():
            say(f"  {line}")
        say(f"  exit status {paint('1', str(out.returncode))}")
        return out.returncode


def status_of(ip: str, port: int, path: str, host: str) -> int:
    request = urllib.request.Request(f"http://{ip}:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def main() -> int:
    demo = Demo()
    try:
        step("Set-up")
        demo.start_emulator()
        demo.create_group()
        demo.start_function()

        step("Release 1: a good build")
        action, ip = demo.launch_instance(1)
        first_ip = ip
        demo.start_app(ip, allowed_hosts=f"shop.example.com,{ip}", name="release-1")
        first = demo.invoke(action)
        demo.report(first)

        step("An outage is not a broken release: the database goes down for every instance")
        demo.database_down()
        say("the shared database is unreachable: the running instance's /health answers "
            f"{status_of(first_ip, demo.app_port, '/health', f'{first_ip}:{demo.app_port}')} too")
        action, ip = demo.launch_instance(2)
        demo.start_app(ip, allowed_hosts=f"shop.example.com,{ip}", name="release-1-scale-out")
        say("the gate compares each failing round with the running release, which fails the same way: "
            "it keeps the instance held and puts an Environment Unhealthy event")
        threading.Timer(10, lambda: (demo.database_back(), say("  (the database is back)"))).start()
        outage = demo.invoke(action)
        demo.report(outage)

        step("Release 2: the settings file lost the private IP in ALLOWED_HOSTS")
        demo.new_release()
        action, ip = demo.launch_instance(3)
        demo.start_app(ip, allowed_hosts="shop.example.com", name="release-2")
        second = demo.invoke(action)
        demo.report(second)
        say()
        say(f"A check by name passes: GET /ping with Host: shop.example.com answers "
            f"{status_of(ip, demo.app_port, '/ping', 'shop.example.com')}; the load balancer's "
            f"Host: {ip}:{demo.app_port} gets {status_of(ip, demo.app_port, '/health', f'{ip}:{demo.app_port}')}. "
            "The broken release never took traffic.")

        step("The group replaces the abandoned instance from the same release: a launch loop")
        last = second
        for n in (2, 3):
            action, ip = demo.held_instance()
            demo.start_app(ip, allowed_hosts="shop.example.com", name=f"release-2-{n}")
            last = demo.invoke(action)
            demo.report(last)
        breaker = last.get("breaker") or {}
        group = demo.asg.describe_auto_scaling_groups(AutoScalingGroupNames=["shop-web"])["AutoScalingGroups"][0]
        suspended = [p["ProcessName"] for p in group.get("SuspendedProcesses", [])]
        say(f"  the launch-loop breaker: {len(breaker.get('abandons', []))} ABANDONs of launch template "
            f"version 2 within {breaker.get('window_seconds', 0) // 60} minutes, "
            f"{paint('1;31', 'tripped') if breaker.get('tripped') else 'not tripped'}")
        say(f"  {breaker.get('action_taken', '')}")
        say(f"  suspended processes: {', '.join(suspended) or 'none'}; held now: {len(demo.pending_actions())} "
            "(the replacement launched before the trip is still gated; nothing is launched after it)")
        say(f"  to resume: {breaker.get('resume_command', '')}")

        step("The pipeline learns it at once")
        code = demo.rollout()

        step("The same gate for ECS: a blue/green deployment's lifecycle hook")
        ecs = ecs_scene.run(demo, say, paint)
        ok = (
            first["result"] == "CONTINUE"
            and outage["result"] == "CONTINUE"
            and outage.get("baseline", {}).get("environment_rounds", 0) > 0
            and second["result"] == "ABANDON"
            and second.get("baseline", {}).get("status") == "passed"
            and breaker.get("tripped")
            and "Launch" in suspended
            and code == 1
            and ecs == "ROLLBACK_SUCCESSFUL"
        )
        return 0 if ok else 1
    finally:
        demo.stop_all()


if __name__ == "__main__":
    sys.exit(main())
