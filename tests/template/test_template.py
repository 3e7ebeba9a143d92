"""The SAM template's defaults, parameter constraints and Rules, read from template.yaml.

CloudFormation evaluates Rules before it creates anything; these tests evaluate the same
Rules with the functions CloudFormation documents for them (Fn::And, Fn::Or, Fn::Not,
Fn::Equals, Fn::Contains, Ref), so a parameter set the stack must refuse is refused here
first. Run by scripts/check-template with the tools' venv (cfn-lint's YAML loader reads
the short-form tags).
"""
import re
import unittest
from pathlib import Path

from cfnlint.decode import cfn_yaml

TEMPLATE = cfn_yaml.load(str(Path(__file__).resolve().parents[2] / "template.yaml"))
PARAMETERS = TEMPLATE["Parameters"]


def value(parameter, given):
    """A parameter's value as a Rule sees it: given, else its default; lists split."""
    raw = given.get(parameter, PARAMETERS[parameter].get("Default"))
    if raw is None:
        raise KeyError(f"{parameter} has no default: give it")
    if PARAMETERS[parameter]["Type"].startswith(("List<", "CommaDelimitedList")):
        return [v.strip() for v in str(raw).split(",")]
    return str(raw)


def evaluate(node, given):
    if isinstance(node, (str, int)):
        return str(node)
    if isinstance(node, list):
        return [evaluate(n, given) for n in node]
    ((fn, args),) = node.items()
    if fn == "Ref":
        return value(args, given)
    if fn == "Fn::Equals":
        a, b = (evaluate(x, given) for x in args)
        return a == b
    if fn == "Fn::Not":
        return not evaluate(args[0], given)
    if fn == "Fn::And":
        return all(evaluate(x, given) for x in args)
    if fn == "Fn::Or":
        return any(evaluate(x, given) for x in args)
    if fn == "Fn::Contains":
        values, wanted = (evaluate(x, given) for x in args)
        return wanted in values
    raise AssertionError(f"{fn} is not a rule function this test knows")


def refusals(**given):
    """The AssertDescriptions CloudFormation would answer a stack with these parameters."""
    out = []
    for rule in TEMPLATE.get("Rules", {}).values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], given):
            continue
        for a in rule["Assertions"]:
            if not evaluate(a["Assert"], given):
                out.append(a["AssertDescription"])
    return out


def allowed(parameter, text):
    p = PARAMETERS[parameter]
    if "AllowedValues" in p:
        return text in [str(v) for v in p["AllowedValues"]]
    if "AllowedPattern" in p:
        return re.fullmatch(p["AllowedPattern"], text) is not None
    return True


REQUIRED = {"GroupNames": "shop-web"}


class Defaults(unittest.TestCase):
    def test_shadow_first(self):
        self.assertEqual(PARAMETERS["Mode"]["Default"], "shadow")

    def test_grace_period_follows_the_group(self):
        self.assertEqual(PARAMETERS["GracePeriodSeconds"]["Default"], "auto")
        for ok in ["auto", "0", "7", "120", "999", "6999", "7199", "7200"]:
            self.assertTrue(allowed("GracePeriodSeconds", ok), ok)
        for bad in ["7201", "9999", "-1", "2h", "", "auto1"]:
            self.assertFalse(allowed("GracePeriodSeconds", bad), bad)

    def test_no_reservation_by_default(self):
        # Lambda refuses a reservation that leaves the account under 100 unreserved
        # executions: a default reservation fails the stack in a new account.
        self.assertEqual(PARAMETERS["ReservedConcurrency"]["Default"], 0)

    def test_no_log_level_drops_the_records(self):
        self.assertEqual(set(PARAMETERS["LogLevel"]["AllowedValues"]), {"TRACE", "DEBUG", "INFO"})

    def test_the_hooks_default_result_follows_the_mode(self):
        # Shadow mode never terminates what the gate could not answer for; enforce never
        # lets it in unchecked.
        hook = TEMPLATE["Resources"]["LaunchLifecycleHook"]["Properties"]
        self.assertEqual(hook["DefaultResult"], {"Fn::If": ["IsShadow", "CONTINUE", "ABANDON"]})
        self.assertEqual(TEMPLATE["Conditions"]["IsShadow"], {"Fn::Equals": [{"Ref": "Mode"}, "shadow"]})
        self.assertEqual(PARAMETERS["Mode"]["Default"], "shadow")
        self.assertEqual(hook["LifecycleTransition"], "autoscaling:EC2_INSTANCE_LAUNCHING")
        self.assertIn("NotificationMetadata", hook)

    def test_alarms_for_what_hurts(self):
        resources = TEMPLATE["Resources"]
        for alarm in ["FunctionErrorsAlarm", "AbandonAlarm", "HandOffAlarm", "ShadowAbandonAlarm",
                      "FailedInvocationsAlarm", "UndeliveredEventsAlarm"]:
            self.assertEqual(resources[alarm]["Type"], "AWS::CloudWatch::Alarm", alarm)
        rule = resources["RolloutHaltedToAlarmTopic"]["Properties"]["EventPattern"]
        self.assertEqual(rule["detail-type"], ["Rollout Halted"])
        rule = resources["EnvironmentUnhealthyToAlarmTopic"]["Properties"]["EventPattern"]
        self.assertEqual(rule["detail-type"], ["Environment Unhealthy"])

    def test_baseline_on_by_default(self):
        self.assertEqual(PARAMETERS["Baseline"]["Default"], "on")

    def test_the_gates_security_group_is_exported(self):
        output = TEMPLATE["Outputs"]["GateSecurityGroupId"]
        self.assertIn("Export", output)

    def test_health_checks_reach_every_cidr_the_instances_use(self):
        resources = TEMPLATE["Resources"]
        egress = resources["GateSecurityGroup"]["Properties"]["SecurityGroupEgress"]
        self.assertIn({"Ref": "VpcCidr"}, [e.get("CidrIp") for e in egress])
        self.assertEqual(resources["HealthCheckEgressSecondaryCidr"]["Properties"]["CidrIp"],
                         {"Ref": "SecondaryVpcCidr"})
        self.assertEqual(resources["HealthCheckEgressIpv6"]["Properties"]["CidrIpv6"],
                         {"Ref": "VpcIpv6Cidr"})
        for ok in ["", "100.64.0.0/16"]:
            self.assertTrue(allowed("SecondaryVpcCidr", ok), ok)
        for ok in ["", "2600:1f18:abcd:1200::/56"]:
            self.assertTrue(allowed("VpcIpv6Cidr", ok), ok)


class Ecs(unittest.TestCase):
    def test_ecs_may_invoke_the_gate_and_nothing_else(self):
        role = TEMPLATE["Resources"]["EcsHookInvokeRole"]
        self.assertEqual(role["Condition"], "ServesEcs")
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        self.assertEqual(trust["Principal"], {"Service": "ecs.amazonaws.com"})
        (statement,) = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        self.assertEqual(statement["Action"], "lambda:InvokeFunction")
        self.assertEqual(statement["Resource"], {"Fn::GetAtt": ["GateFunction", "Arn"]})

    def test_the_gate_reads_ecs_and_writes_nothing_there(self):
        statements = TEMPLATE["Resources"]["GateFunction"]["Properties"]["Policies"][0]["Statement"]
        ecs = [s["Fn::If"][1] for s in statements
               if isinstance(s, dict) and "Fn::If" in s and s["Fn::If"][0] == "ServesEcs"]
        actions = [a for st in ecs for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])]
        self.assertEqual(sorted(actions), ["ecs:DescribeContainerInstances", "ecs:DescribeServiceDeployments",
                                           "ecs:DescribeServiceRevisions", "ecs:DescribeServices",
                                           "ecs:DescribeTasks", "ecs:ListTasks"])
        self.assertIn("EcsLifecycleHook", TEMPLATE["Outputs"])

    def test_the_ecs_invoke_role_is_for_this_accounts_cluster(self):
        role = TEMPLATE["Resources"]["EcsHookInvokeRole"]
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        condition = statement["Condition"]
        self.assertEqual(condition["StringEquals"], {"aws:SourceAccount": {"Ref": "AWS::AccountId"}})
        self.assertIn("${EcsClusterName}/*", condition["ArnLikeIfExists"]["aws:SourceArn"]["Fn::Sub"])

    def test_scaling_activities_are_readable_whatever_the_breaker(self):
        statements = TEMPLATE["Resources"]["GateFunction"]["Properties"]["Policies"][0]["Statement"]
        plain = [st for st in statements if isinstance(st, dict) and "Action" in st]
        self.assertTrue(any(st["Action"] == "autoscaling:DescribeScalingActivities" for st in plain))

    def test_the_ecs_hook_output_rolls_back_on_its_timeout_and_the_cluster_is_served(self):
        hook = TEMPLATE["Outputs"]["EcsLifecycleHook"]["Value"]["Fn::Sub"]
        self.assertIn('"timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"}', hook)
        env = TEMPLATE["Resources"]["GateFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["LAUNCH_GATE_ECS_SERVICES"],
                         {"Fn::If": ["ServesEcs", {"Fn::Sub": "${EcsClusterName}/*"}, ""]})


class Rules(unittest.TestCase):
    def test_a_stack_without_its_own_hook_passes(self):
        self.assertEqual(refusals(**REQUIRED), [])

    def test_the_hooks_group_must_be_served(self):
        self.assertEqual(refusals(GroupNames="shop-web,shop-api", HookGroupName="shop-api"), [])
        refused = refusals(GroupNames="shop-web", HookGroupName="shop-web-2")
        self.assertEqual(len(refused), 1)
        self.assertIn("HookGroupName must be one of GroupNames", refused[0])
        # served by prefix or tag: the name is not checked (Rules cannot match a prefix)
        self.assertEqual(refusals(GroupNames="shop-web", HookGroupName="shop-web-2",
                                  GroupNamePrefix="shop-web-"), [])
        self.assertEqual(refusals(GroupNames="shop-web", HookGroupName="checkout",
                                  GroupTagValue="on"), [])

    def test_the_hooks_name_must_be_served(self):
        refused = refusals(GroupNames="shop-web", HookGroupName="shop-web",
                           HookNames="codedeploy-hook")
        self.assertEqual(len(refused), 1)
        self.assertIn("keep launch-gate in HookNames", refused[0])

    def test_metadata_needs_the_templates_hook(self):
        refused = refusals(GroupNames="shop-web", HookMetadata='{"health_port": 8000}')
        self.assertEqual(len(refused), 1)
        self.assertIn("set HookGroupName too", refused[0])
        self.assertEqual(refusals(GroupNames="shop-web", HookGroupName="shop-web",
                                  HookMetadata='{"health_port": 8000}'), [])
        self.assertFalse(allowed("HookMetadata", "health_port=8000"))


if __name__ == "__main__":
    unittest.main()
