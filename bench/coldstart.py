"""Cold start of the release `bootstrap`: init time, first invocation, peak RSS.

A minimal Lambda Runtime API (the four calls a function makes) stands in for the Lambda
service, so the measurement is the function's own: from process start to its first
`GET /runtime/invocation/next` (init), from handing it the event to its response (the
first invocation, against the AWS emulator and the example app), and the process's peak
resident set (VmHWM) after that. Run by scripts/bench; prints one JSON document.

    python bench/coldstart.py BOOTSTRAP RUNS
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


class RuntimeApi(ThreadingHTTPServer):
    """Hands out one event, then holds the next `next` call; records the times."""

    daemon_threads = True

    def __init__(self, event: dict) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.event = json.dumps(event).encode()
        self.first_next: float | None = None
        self.response_at: float | None = None
        self.given_at: float | None = None
        self.response: bytes | None = None
        self.done = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: RuntimeApi

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        s = self.server
        if s.first_next is None:
            s.first_next = time.perf_counter()
            deadline = int(time.time() * 1000) + 900_000
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:launch-gate")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(s.event)))
            self.end_headers()
            s.given_at = time.perf_counter()
            self.wfile.write(s.event)
            return
        s.done.wait(30)  # the second `next`: hold until the run ends

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if "/response" in self.path or "/error" in self.path:
            self.server.response_at = time.perf_counter()
            self.server.response = body
            self.server.done.set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world(endpoint: str, port: int) -> tuple[dict, str]:
    """A group with one held launch; the event for it and the instance's IP."""
    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2, asg = boto3.client("ec2", **kw), boto3.client("autoscaling", **kw)
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName="shop-web", MinSize=0, MaxSize=2, DesiredCapacity=0,
                                  VPCZoneIdentifier=subnet, LaunchTemplate={"LaunchTemplateName": "web"})
    metadata = {"health_port": port, "healthy_threshold": 1, "interval_seconds": 1, "probe_timeout_seconds": 1}
    asg.put_lifecycle_hook(AutoScalingGroupName="shop-web", LifecycleHookName="launch-gate",
                           LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING", HeartbeatTimeout=300,
                           DefaultResult="ABANDON", NotificationMetadata=json.dumps(metadata))
    asg.set_desired_capacity(AutoScalingGroupName="shop-web", DesiredCapacity=1)
    import urllib.request
    action = [a for a in json.load(urllib.request.urlopen(f"{endpoint}/_launch_gate/lifecycle-actions"))["LifecycleActions"] if a["Pending"]][0]
    ip = ec2.describe_instances(InstanceIds=[action["EC2InstanceId"]])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    event = json.loads((REPO / "events" / "launch.json").read_text())
    for key in ("LifecycleActionToken", "AutoScalingGroupName", "LifecycleHookName", "EC2InstanceId", "NotificationMetadata"):
        event["detail"][key] = action[key]
    event["time"] = action["Started"]
    return event, ip


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def one_run(bootstrap: str, tmp: Path) -> dict:
    emulator = subprocess.Popen([PY, str(REPO / "emulator" / "launch_gate_emulator.py"), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    app = None
    try:
        endpoint = emulator.stdout.readline().strip().rsplit(" ", 1)[-1]
        port = free_port()
        event, ip = world(endpoint, port)
        env = dict(os.environ, DJANGO_SECRET_KEY="bench", DJANGO_DB_PATH=str(tmp / f"db-{port}.sqlite3"),
                   DJANGO_ALLOWED_HOSTS=ip, SHOP_CURRENCY="EUR")
        app_dir = REPO / "examples" / "django-app"
        subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=app_dir, env=env, check=True)
        app = subprocess.Popen([PY, "-m", "gunicorn", "shop.wsgi", "--workers", "1", "--bind", f"{ip}:{port}"],
                               cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until = time.time() + 20
        while socket.socket().connect_ex((ip, port)) != 0:
            if time.time() > until:
                raise SystemExit("the app did not start")
            time.sleep(0.05)

        api = RuntimeApi(event)
        threading.Thread(target=api.serve_forever, daemon=True).start()
        fn_env = dict(
            PATH=os.environ.get("PATH", ""),
            AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}",
            AWS_LAMBDA_FUNCTION_NAME="launch-gate", AWS_LAMBDA_FUNCTION_VERSION="1",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
            AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=endpoint,
            LAUNCH_GATE_TARGET_GROUP_CHECKS="on",
        )
        started = time.perf_counter()
        function = subprocess.Popen([bootstrap], env=fn_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not api.done.wait(60):
            raise SystemExit("the function did not answer")
        rss = peak_rss_kib(function.pid)
        function.kill()
        function.wait()
        api.shutdown()
        response = json.loads(api.response or b"{}")
        return {
            "init_ms": (api.first_next - started) * 1000,
            "first_invocation_ms": (api.response_at - api.given_at) * 1000,
            "peak_rss_mib": rss / 1024,
            "result": (response.get("decisions") or [{}])[0].get("result"),
        }
    finally:
        if app:
            app.terminate()
            app.wait()
        emulator.terminate()
        emulator.wait()


def main() -> int:
    bootstrap, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_run(bootstrap, Path(tmp)) for _ in range(runs)]
    def summary(key: str) -> dict:
        # a run whose /proc entry could not be read reports 0: leave it out
        values = sorted(r[key] for r in results if r[key] > 0)
        return {"median": statistics.median(values), "max": values[-1], "min": values[0]}
    print(json.dumps({
        "runs": runs,
        "init_ms": summary("init_ms"),
        "first_invocation_ms": summary("first_invocation_ms"),
        "peak_rss_mib": summary("peak_rss_mib"),
        "results": sorted({r["result"] for r in results if r["result"]}),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
