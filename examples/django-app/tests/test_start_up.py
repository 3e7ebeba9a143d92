"""The example app's start-up on an EC2 instance: where its private IP comes from, and how it
fails when it cannot learn it.

The metadata service is the project's IMDS emulator (emulator/imds.py) on loopback, with
the instance options that decide the outcome on EC2: HttpTokens required or optional, and
a token response dropped by a hop limit of 1 in a container. The app runs under gunicorn.
Nothing leaves 127.0.0.0/8; the private IP 10.0.1.23 is only ever a Host header.

Run: `.venv/bin/python -m unittest discover -s examples/django-app/tests`
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(APP))
sys.path.insert(0, str(APP.parents[1] / "emulator"))

import imds  # noqa: E402
from shop.instance_ip import MetadataUnavailable, from_environment, private_ipv4  # noqa: E402

PRIVATE_IP = "10.0.1.23"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def request(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


class TheMetadataEmulatorAnswersAsEC2Does(unittest.TestCase):
    def test_imdsv2_required(self):
        server = imds.serve(PRIVATE_IP)
        self.addCleanup(server.close)
        ip_url = f"{server.endpoint}/latest/meta-data/local-ipv4"
        self.assertEqual(request(ip_url)[0], 401)  # a plain IMDSv1 GET
        self.assertEqual(request(ip_url, headers={imds.TOKEN_HEADER: "forged"})[0], 401)
        token_url = f"{server.endpoint}{imds.TOKEN_PATH}"
        self.assertEqual(request(token_url, "PUT")[0], 400)  # no TTL
        self.assertEqual(request(token_url, "PUT", {imds.TTL_HEADER: "21601"})[0], 400)
        self.assertEqual(
            request(token_url, "PUT", {imds.TTL_HEADER: "60", "X-Forwarded-For": "10.0.0.9"})[0],
            403)
        status, token = request(token_url, "PUT", {imds.TTL_HEADER: "60"})
        self.assertEqual(status, 200)
        self.assertEqual(request(ip_url, headers={imds.TOKEN_HEADER: token}), (200, PRIVATE_IP))

    def test_imdsv1_optional(self):
        server = imds.serve(PRIVATE_IP, tokens="optional")
        self.addCleanup(server.close)
        self.assertEqual(request(f"{server.endpoint}/latest/meta-data/local-ipv4"),
                         (200, PRIVATE_IP))


class ThePrivateIp(unittest.TestCase):
    def test_read_with_the_token_flow(self):
        server = imds.serve(PRIVATE_IP)
        self.addCleanup(server.close)
        self.assertEqual(private_ipv4(server.endpoint), PRIVATE_IP)
        methods = [(m, p, t) for m, p, t in server.instance.requests]
        self.assertEqual(methods, [("PUT", imds.TOKEN_PATH, False),
                                   ("GET", "/latest/meta-data/local-ipv4", True)])

    def test_a_dropped_token_response_fails_clearly_and_in_bounded_time(self):
        server = imds.serve(PRIVATE_IP, put_response_dropped=True)
        self.addCleanup(server.close)
        started = time.monotonic()
        with self.assertRaises(MetadataUnavailable) as caught:
            private_ipv4(server.endpoint, timeout=0.3, attempts=2, pause=0.1)
        self.assertLess(time.monotonic() - started, 3)
        message = str(caught.exception)
        self.assertIn("HttpPutResponseHopLimit must be 2", message)
        self.assertIn("Or set INSTANCE_PRIVATE_IP", message)

    def test_no_metadata_service_fails_clearly(self):
        endpoint = f"http://127.0.0.1:{free_port()}"
        with self.assertRaises(MetadataUnavailable) as caught:
            private_ipv4(endpoint, timeout=0.3, attempts=2, pause=0.1)
        self.assertIn(f"nothing answered at {endpoint}", str(caught.exception))

    def test_from_the_environment(self):
        self.assertEqual(from_environment(" 10.0.1.23 "), "10.0.1.23")
        self.assertEqual(from_environment("fd00:ec2::23"), "[fd00:ec2::23]")
        with self.assertRaisesRegex(ValueError, "INSTANCE_PRIVATE_IP='ip-10-0-1-23' is not an IP"):
            from_environment("ip-10-0-1-23")


class UnderGunicorn(unittest.TestCase):
    """The app as the instance's service starts it."""

    def start(self, **env) -> tuple[subprocess.Popen, int, Path]:
        port = free_port()
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        work = Path(scratch.name)
        log = work / "gunicorn.log"
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("INSTANCE_PRIVATE_IP", "ALLOWED_HOSTS_FROM_IMDS")}
        environ.update(DJANGO_SECRET_KEY="test", DJANGO_ALLOWED_HOSTS="localhost",
                       SHOP_CURRENCY="EUR", DJANGO_DB_PATH=str(work / "db.sqlite3"), **env)
        with log.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "shop.wsgi", "--workers", "1",
                 "--bind", f"127.0.0.1:{port}"],
                cwd=APP, env=environ, stdout=subprocess.DEVNULL, stderr=stderr)
        self.addCleanup(lambda: (child.poll() is None and child.kill(), child.wait()))
        return child, port, log

    def ping(self, port: int, host: str, until: float = 20) -> int:
        deadline = time.monotonic() + until
        while True:
            try:
                return request(f"http://127.0.0.1:{port}/ping", headers={"Host": host})[0]
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def test_the_private_ip_from_the_environment(self):
        _, port, _ = self.start(INSTANCE_PRIVATE_IP=PRIVATE_IP)
        self.assertEqual(self.ping(port, f"{PRIVATE_IP}:{port}"), 200)
        self.assertEqual(self.ping(port, f"10.0.1.99:{port}"), 400)

    def test_the_private_ip_from_imdsv2(self):
        server = imds.serve(PRIVATE_IP)
        self.addCleanup(server.close)
        _, port, _ = self.start(ALLOWED_HOSTS_FROM_IMDS="1", IMDS_ENDPOINT=server.endpoint)
        self.assertEqual(self.ping(port, f"{PRIVATE_IP}:{port}"), 200)

    def test_an_unreachable_metadata_service_stops_start_up_with_the_fix(self):
        # The hop limit of 1 in a container: gunicorn must not serve without the IP (every
        # health check would be a 400); it stops, and its log says why and what to change.
        server = imds.serve(PRIVATE_IP, put_response_dropped=True)
        self.addCleanup(server.close)
        child, _, log = self.start(ALLOWED_HOSTS_FROM_IMDS="1", IMDS_ENDPOINT=server.endpoint)
        try:
            code = child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("gunicorn neither served nor stopped")
        self.assertNotEqual(code, 0)
        text = log.read_text()
        self.assertIn("ImproperlyConfigured: ALLOWED_HOSTS_FROM_IMDS=1: could not read", text)
        self.assertIn("HttpPutResponseHopLimit must be 2", text)


if __name__ == "__main__":
    unittest.main()
