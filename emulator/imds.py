"""An EC2 instance metadata service (IMDS) for one instance, on a loopback address.

It answers the part of IMDS an app reads at start-up, the way EC2 does:

- `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1-21600) gives a
  session token (IMDSv2); a PUT without a valid TTL is 400, and a PUT that carries
  `X-Forwarded-For` is 403 (IMDS refuses token requests that went through a proxy).
- `GET /latest/meta-data/local-ipv4` (and `/latest/meta-data/instance-id`) answers with a
  valid `X-aws-ec2-metadata-token`; an unknown or expired token is 401. Without a token,
  the instance decides: `HttpTokens=required` (the default for new launch templates) is
  401, `optional` answers (IMDSv1).
- `put_response_dropped`: the token's response never arrives, as when the launch
  template's `HttpPutResponseHopLimit` is 1 and the app runs in a container one hop
  further (Docker's bridge network): the PUT waits forever, while GETs still answer.

Run: `python emulator/imds.py --host 127.0.0.5 --port 8080 --local-ipv4 10.0.1.23`
(`--tokens optional`, `--put-response-dropped`); or `serve(...)` from Python.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


class Instance:
    """What the metadata service knows and how the instance's options set it up."""

    def __init__(self, local_ipv4: str, instance_id: str = "i-0123456789abcdef0",
                 tokens: str = "required", put_response_dropped: bool = False):
        if tokens not in ("required", "optional"):
            raise ValueError("tokens must be required or optional (HttpTokens)")
        self.metadata = {"local-ipv4": local_ipv4, "instance-id": instance_id}
        self.tokens = tokens
        self.put_response_dropped = put_response_dropped
        self.issued: dict[str, float] = {}  # token -> expiry (monotonic seconds)
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a token)
        self.lock = threading.Lock()


def handler_for(instance: Instance):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def answer(self, status: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):  # noqa: N802
            with instance.lock:
                instance.requests.append(("PUT", self.path, False))
            if self.path != TOKEN_PATH:
                return self.answer(403, "Forbidden")
            if self.headers.get("X-Forwarded-For"):
                return self.answer(403, "Forbidden")
            try:
                ttl = int(self.headers.get(TTL_HEADER, ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= 21600:
                return self.answer(400, "Bad Request")
            if instance.put_response_dropped:
                # The response would be dropped one hop short of the caller.
                time.sleep(3600)
                return None
            token = secrets.token_urlsafe(32)
            with instance.lock:
                instance.issued[token] = time.monotonic() + ttl
            return self.answer(200, token)

        def do_GET(self):  # noqa: N802
            token = self.headers.get(TOKEN_HEADER)
            with instance.lock:
                instance.requests.append(("GET", self.path, token is not None))
                valid = token is not None and instance.issued.get(token, 0) > time.monotonic()
            if token is not None and not valid:
                return self.answer(401, "Unauthorized")
            if token is None and instance.tokens == "required":
                return self.answer(401, "Unauthorized")
            prefix = "/latest/meta-data/"
            key = self.path[len(prefix):] if self.path.startswith(prefix) else None
            if key not in instance.metadata:
                return self.answer(404, "Not Found")
            return self.answer(200, instance.metadata[key])

    return Handler


class Server:
    """A running metadata service; `endpoint` is its base URL. Stop it with `close()`."""

    def __init__(self, instance: Instance, host: str, port: int):
        self.instance = instance
        self.httpd = ThreadingHTTPServer((host, port), handler_for(instance))
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(local_ipv4: str, host: str = "127.0.0.1", port: int = 0, **options) -> Server:
    """Starts a metadata service for an instance with `local_ipv4` in a thread."""
    return Server(Instance(local_ipv4, **options), host, port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--local-ipv4", required=True)
    parser.add_argument("--instance-id", default="i-0123456789abcdef0")
    parser.add_argument("--tokens", choices=["required", "optional"], default="required",
                        help="the instance's HttpTokens")
    parser.add_argument("--put-response-dropped", action="store_true",
                        help="the token's response never arrives (hop limit 1, in a container)")
    args = parser.parse_args()
    server = serve(args.local_ipv4, args.host, args.port, instance_id=args.instance_id,
                   tokens=args.tokens, put_response_dropped=args.put_response_dropped)
    print(f"imds: {server.endpoint}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
