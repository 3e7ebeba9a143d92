"""The instance's private IPv4 address, read from the EC2 instance metadata service.

The load balancer's health checker sends `Host: <private-ip>:<port>`, so that address must
be in ALLOWED_HOSTS or Django answers 400. It is only known on the instance, at start-up.
This uses the IMDSv2 token flow (PUT for a session token, then GET with it): a plain
IMDSv1 GET is refused with 401 on instances that require IMDSv2, the default for new
launch templates.
"""
import urllib.request

IMDS = "http://169.254.169.254"


def private_ipv4(endpoint: str = IMDS, timeout: float = 2.0) -> str:
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
        return response.read().decode().strip()
