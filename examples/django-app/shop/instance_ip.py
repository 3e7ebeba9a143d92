"""The instance's private IP address, for ALLOWED_HOSTS.

The load balancer's health checker sends `Host: <private-ip>:<port>`, so that address must
be in ALLOWED_HOSTS or Django answers 400. It is only known on the instance, at start-up:

- `INSTANCE_PRIVATE_IP`, when set (by user data, a systemd drop-in, or a container's
  environment), is used as it is and the metadata service is not asked;
- otherwise the EC2 instance metadata service (IMDS) is asked with the IMDSv2 token flow:
  a PUT for a session token, then a GET with it. A plain IMDSv1 GET is refused with 401 on
  instances that require IMDSv2, the default for new launch templates and for Amazon
  Linux 2023 AMIs.

When the metadata service cannot be read, start-up fails with `MetadataUnavailable`,
whose message names the likely cause and the fix; it never hangs longer than
`attempts * (2 * timeout)` seconds plus the pauses between attempts.
"""
from __future__ import annotations

import ipaddress
import socket
import time
import urllib.error
import urllib.request

IMDS = "http://169.254.169.254"


class MetadataUnavailable(RuntimeError):
    """The private IP could not be read from the metadata service."""


def from_environment(value: str) -> str:
    """`INSTANCE_PRIVATE_IP`, checked: an IPv4 or IPv6 address, as ALLOWED_HOSTS needs it."""
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"INSTANCE_PRIVATE_IP={value!r} is not an IP address") from None
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _hint(endpoint: str, error: BaseException) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)) or "timed out" in str(error):
        return (
            "the session token's response never arrived: in a container, the launch "
            "template's metadata option HttpPutResponseHopLimit must be 2 "
            "(MetadataOptions in the launch template); on the host, check that IMDS is "
            "enabled (HttpEndpoint=enabled)"
        )
    if isinstance(error, ValueError):
        return "its answer is not an IPv4 address"
    if isinstance(error, urllib.error.HTTPError) and error.code == 401:
        return "the token was refused (401): the request was not an IMDSv2 request"
    if isinstance(error, urllib.error.HTTPError) and error.code == 403:
        return "IMDS refused the token request (403): a proxy added X-Forwarded-For, or IMDS is disabled"
    return f"nothing answered at {endpoint} (is this an EC2 instance, with HttpEndpoint=enabled?)"


def private_ipv4(endpoint: str = IMDS, timeout: float = 2.0, attempts: int = 3,
                 pause: float = 0.5) -> str:
    """The instance's `local-ipv4`, read with the IMDSv2 token flow.

    Each request may take `timeout` seconds; the flow is tried `attempts` times, `pause`
    seconds apart (IMDS can be slow for a moment at boot). Raises `MetadataUnavailable`.
    """
    last: BaseException | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause)
        try:
            token_request = urllib.request.Request(
                f"{endpoint}/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            )
            with urllib.request.urlopen(token_request, timeout=timeout) as response:
                token = response.read().decode()
            ip_request = urllib.request.Request(
                f"{endpoint}/latest/meta-data/local-ipv4",
                headers={"X-aws-ec2-metadata-token": token},
            )
            with urllib.request.urlopen(ip_request, timeout=timeout) as response:
                text = response.read().decode().strip()
            return str(ipaddress.IPv4Address(text))
        except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
            last = error
    raise MetadataUnavailable(
        f"could not read the instance's private IP from the instance metadata service at "
        f"{endpoint} ({attempts} attempts, {timeout:g} s each; last error: {last}): "
        f"{_hint(endpoint, last)}. Or set INSTANCE_PRIVATE_IP."
    )
