"""The demo's ECS scene: a service on Fargate deploying blue/green, with launch-gate as the
lifecycle hook at POST_SCALE_UP. Its new revision lost the task's IP from ALLOWED_HOSTS;
ECS asks the gate, the gate answers from its checks, and ECS rolls back before the green
tasks take any traffic.

The emulator plays ECS (emulator/ecs_deployments.py): it starts the tasks on loopback IPs,
registers them in the target groups and queues each hook invocation; this scene starts the
example app for each task and delivers each invocation to the function under the Lambda
Runtime API, as ECS would, returning its answer.
"""
from __future__ import annotations

import json
import time
import urllib.request

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:launch-gate"


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def run(demo, say, paint) -> str:
    """Plays the scene (narrated with `say` and `paint`); the deployment's final status."""
    ec2, elb, ecs = demo.ec2, demo.elbv2, demo.ecs
    vpc = demo.vpc
    second = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.2.0/24", AvailabilityZone="us-east-1b")
    subnets = [demo.subnet, second["Subnet"]["SubnetId"]]
    sg = ec2.create_security_group(GroupName="shop-web-tasks", Description="tasks", VpcId=vpc)["GroupId"]
    port = demo.app_port
    groups = [elb.create_target_group(Name=f"web-{c}", Protocol="HTTP", Port=port, VpcId=vpc, TargetType="ip",
                                      HealthCheckPath="/ping")["TargetGroups"][0]["TargetGroupArn"]
              for c in ("blue", "green")]
    lb = elb.create_load_balancer(Name="shop-web-ecs", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    rules = []
    for listener_port, tg in ((80, groups[0]), (8080, groups[1])):
        listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=listener_port,
                                       DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        rules.append(elb.create_rule(ListenerArn=listener["Listeners"][0]["ListenerArn"], Priority=1,
                                     Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
                                     Actions=[{"Type": "forward", "TargetGroupArn": tg}])["Rules"][0]["RuleArn"])
    ecs.create_cluster(clusterName="shop")
    for _ in range(2):
        ecs.register_task_definition(family="shop-web", networkMode="awsvpc", containerDefinitions=[
            {"name": "web", "image": "shop-web", "memory": 512, "portMappings": [{"containerPort": port}]}])
    ecs.create_service(
        cluster="shop", serviceName="web", taskDefinition="shop-web:1", desiredCount=1, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnets[0]], "securityGroups": [sg]}},
        loadBalancers=[{"targetGroupArn": groups[0], "containerName": "web", "containerPort": port,
                        "advancedConfiguration": {"alternateTargetGroupArn": groups[1],
                                                  "productionListenerRule": rules[0],
                                                  "testListenerRule": rules[1],
                                                  "roleArn": "arn:aws:iam::123456789012:role/ecs-elb"}}],
        deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [{
            "hookTargetArn": FUNCTION, "roleArn": "arn:aws:iam::123456789012:role/ecs-invoke-launch-gate",
            "lifecycleStages": ["POST_SCALE_UP"],
            "hookDetails": {"health_port": port, "interval_seconds": 2, "probe_timeout_seconds": 2,
                            "grace_period_seconds": 4, "max_wait_seconds": 60}}]},
    )
    say("ECS service shop/web on Fargate, blue/green, launch-gate as its POST_SCALE_UP lifecycle hook")
    played: set[str] = set()

    def play(allowed_hosts) -> None:
        arns = ecs.list_tasks(cluster="shop", serviceName="web")["taskArns"]
        for task in ecs.describe_tasks(cluster="shop", tasks=arns)["tasks"] if arns else []:
            if task["taskArn"] in played:
                continue
            played.add(task["taskArn"])
            details = {d["name"]: d["value"] for a in task["attachments"] for d in a["details"]}
            ip = details["privateIPv4Address"]
            revision = task["taskDefinitionArn"].rsplit(":", 1)[-1]
            demo.start_app(ip, allowed_hosts=allowed_hosts(revision, ip), name=f"task-{revision}-{ip}")

    play(lambda revision, ip: f"shop.example.com,{ip}")
    ecs.update_service(cluster="shop", service="web", taskDefinition="shop-web:2")
    arn = ecs.describe_services(cluster="shop", services=["web"])["services"][0]["currentServiceDeployment"]
    say("revision 2's settings lost the task's IP from ALLOWED_HOSTS; ECS starts its green task")
    status = "IN_PROGRESS"
    answers = []
    until = time.monotonic() + 120
    while status in ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS") and time.monotonic() < until:
        play(lambda revision, ip: "shop.example.com" if revision == "2" else f"shop.example.com,{ip}")
        due = json.load(urllib.request.urlopen(f"{demo.endpoint}/_launch_gate/ecs/hook-invocations"))
        for invocation in due:
            answer = demo.invoke_payload(invocation["payload"])
            answers.append(answer["hookStatus"])
            _post(f"{demo.endpoint}/_launch_gate/ecs/hook-response",
                  {"executionId": invocation["executionId"], "response": answer, "error": False})
        status = ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]["status"]
        time.sleep(0.5)
    say(f"  the gate answered ECS: {', '.join(answers)}")
    reason = ""
    for line in demo.function_log.read_text().splitlines():
        if '"hold":"ecs_deployment_hook"' in line and '"outcome":"completed"' in line:
            reason = json.loads(line)["reason"]
    say(f"  {paint('1;31', 'FAILED')}: {reason}")
    colour = "1;32" if status == "ROLLBACK_SUCCESSFUL" else "1;31"
    say(f"  the deployment: {paint(colour, status)}; production stayed on revision 1, "
        "and the green task never took traffic")
    return status
