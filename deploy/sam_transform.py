#!/usr/bin/env python3
"""Transform template.yaml with the AWS SAM translator and lint the result,
offline, for every parameter combination.

A combination is one value of each of EgressMode, NatGateways,
SecretsManagerEndpoint and Architecture, a profile of the optional
parameters (all left empty, or all set) and a partition: aws (us-east-1) or
aws-cn (cn-north-1). For each one the script

1. transforms the template with the SAM translator as CloudFormation does
   in that region (SAM writes the region's partition into the ARNs it
   makes);
2. resolves the result for those parameter values: conditions, Fn::If,
   AWS::NoValue and parameter references, dropping the resources and
   outputs whose condition is false. What is left is what CloudFormation
   would create;
3. checks the template's Rules and what that stack would hold: the
   functions, their roles, the API, the queues, the ledger and its
   indexes, the campaign table and bucket (encryption per KmsKeyArn, the
   notification on incoming/, TLS only), the functions' campaign variables,
   the schedules, the alarms, the dashboard (its body parsed as JSON) and
   its URL, no circular dependency, and the network (no VPC in public mode, the
   merchant's subnets in subnets mode, a VPC with NAT gateways, Elastic IPs
   and endpoints in create mode);
4. runs cfn-lint (errors and warnings) over each distinct resolved template
   for its region, with W1030 mandatory (the template silences it for
   parameter defaults that a combination never uses).

No AWS calls: the managed-policy loader is a stub (the template names no
managed policies). Exits non-zero on any failure. Run from anywhere:

    python3 deploy/sam_transform.py [--no-lint] [-v] [path/to/template.yaml]
"""

import concurrent.futures
import copy
import hashlib
import itertools
import json
import logging
import os
import re
import sys
import time

from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "template.yaml")

ACCOUNT = "123456789012"

# Partition -> the region the stack is transformed and linted for.
PARTITIONS = {"aws": "us-east-1", "aws-cn": "cn-north-1"}

# Function -> (routes "METHOD /path", fed by a queue); the scheduled
# functions (the reconciler, the campaign runner) have no route.
CAMPAIGN_ROUTES = ["POST /campaigns", "GET /campaigns/{id}", "POST /campaigns/{id}/pause",
                   "POST /campaigns/{id}/resume", "POST /campaigns/{id}/cancel"]
FUNCTIONS = {
    "SendGroupFunction": (["POST /redpacks/group"], True),
    "SendMiniFunction": (["POST /redpacks/mini"], True),
    "SendFunction": (["POST /redpacks"], True),
    "QueryFunction": (["GET /redpacks/{mch_billno}"], False),
    "ReconcileFunction": ([], False),
    "CampaignsFunction": (CAMPAIGN_ROUTES, False),
    "CampaignRunFunction": ([], False),
}
API_FUNCTIONS = [f for f, (routes, _) in FUNCTIONS.items() if routes]
SEND_FUNCTIONS = ["SendGroupFunction", "SendMiniFunction", "SendFunction"]

# The functions on an EventBridge schedule: function -> its schedule (None:
# the parameter ReconcileSchedule, facts["schedule"]).
SCHEDULED = {"ReconcileFunction": None, "CampaignRunFunction": "rate(1 minute)"}

# The item actions each function makes on the ledger table, and no others.
# The send and query functions have them on the table and its indexes; the
# functions with actions on an index (INDEX_ACTIONS) on the table alone.
# The reconciler has no PutItem (its re-sends are of items that exist);
# the campaigns function only reads; the runner plans (PutItem) and sends.
SEND_LEDGER = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
LEDGER_ACTIONS = {
    "SendGroupFunction": SEND_LEDGER,
    "SendMiniFunction": SEND_LEDGER,
    "SendFunction": SEND_LEDGER,
    "QueryFunction": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
    "ReconcileFunction": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
    "CampaignsFunction": ["dynamodb:GetItem"],
    "CampaignRunFunction": SEND_LEDGER,
}
INDEX_ACTIONS = {
    "ReconcileFunction": {"due": ["dynamodb:Query"]},
    "CampaignsFunction": {"campaign": ["dynamodb:Query"]},
    "CampaignRunFunction": {"campaign": ["dynamodb:Query"]},
}

# The item actions on CampaignTable: the sends count in the pacing window,
# the reconciler marks reports due, the campaigns function creates and
# lists campaigns, the runner all of it. Scan on this table only.
CAMPAIGN_TABLE = "CampaignTable"
CAMPAIGN_BUCKET = "CampaignBucket"
CAMPAIGN_ACTIONS = {f: ["dynamodb:UpdateItem"] for f in SEND_FUNCTIONS} | {
    "QueryFunction": [],
    "ReconcileFunction": ["dynamodb:GetItem", "dynamodb:PutItem"],
    "CampaignsFunction": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"],
    "CampaignRunFunction": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"],
}
# Functions of the bucket: GetObject on incoming/*, PutObject on reports/*.
BUCKET_FUNCTIONS = ["CampaignsFunction", "CampaignRunFunction"]
# Functions that also list incoming/ (ListBucket on the bucket itself, under
# StringLike s3:prefix incoming/*), so that a key not there yet is a 404
# NoSuchKey to their GetObject, not a 403 AccessDenied.
LISTING_FUNCTIONS = ["CampaignsFunction"]

# The campaigns' variables each function has (beyond the Globals'), exactly.
SEND_ENV = ["WXPAY_CAMPAIGN_TABLE", "WXPAY_RATE_LIMIT"]
CAMPAIGN_ENV = ["WXPAY_CAMPAIGN_TABLE", "WXPAY_CAMPAIGN_BUCKET", "WXPAY_RATE_LIMIT", "WXPAY_API_RESERVE"]
ENV = {f: SEND_ENV for f in SEND_FUNCTIONS} | {
    "QueryFunction": [],
    "ReconcileFunction": ["WXPAY_CAMPAIGN_TABLE"],
    "CampaignsFunction": CAMPAIGN_ENV,
    "CampaignRunFunction": CAMPAIGN_ENV,
}

# Timeouts: below API Gateway's 29 s behind it, a minute for a pass, 15
# minutes for the campaign runner.
TIMEOUTS = {f: 28 for f in API_FUNCTIONS} | {"ReconcileFunction": 60, "CampaignRunFunction": 900}
MEMORY = {"CampaignsFunction": 256, "CampaignRunFunction": 256}

# The ledger table's key and indexes (internal/ledger: TableInput, DueIndex,
# CampaignIndex; deploy/template_test.go compares the template to
# TableInput itself).
LEDGER_TABLE = "LedgerTable"
LEDGER_ATTRIBUTES = {"mch_id": "S", "mch_billno": "S", "due": "S", "next_check_at": "S", "campaign_id": "S", "campaign_row": "N"}
LEDGER_KEY = [{"AttributeName": "mch_id", "KeyType": "HASH"}, {"AttributeName": "mch_billno", "KeyType": "RANGE"}]
LEDGER_INDEXES = [
    {
        "IndexName": "due",
        "KeySchema": [{"AttributeName": "due", "KeyType": "HASH"}, {"AttributeName": "next_check_at", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    },
    {
        "IndexName": "campaign",
        "KeySchema": [{"AttributeName": "campaign_id", "KeyType": "HASH"}, {"AttributeName": "campaign_row", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    },
]

# The metrics the functions write (Embedded Metric Format, namespace
# WxRedpack): name -> dimensions.
NAMESPACE = "WxRedpack"
METRICS = {
    "Sends": ["Function", "Api", "Outcome"],
    "Replays": ["Function"],
    "Conflicts": ["Function"],
    "Unknowns": ["Function"],
    "Transitions": ["From", "To"],
    "NeedsAttention": [],
    "UnknownOverOneHour": [],
    "OldestUnsettledAgeSeconds": [],
    "CampaignSends": [],
    "CampaignPaused": [],
    "CampaignFreqLimits": [],
}

# The alarms: logical id -> (namespace, metric, statistic, comparison,
# threshold, period, evaluation periods, missing data).
ALARMS = {
    "RedpackDeadLetterAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "GreaterThanThreshold", 0, 60, 1, "notBreaching"),
    "UnknownOverOneHourAlarm": (NAMESPACE, "UnknownOverOneHour", "Maximum", "GreaterThanThreshold", 0, 300, 1, "notBreaching"),
    "NeedsAttentionAlarm": (NAMESPACE, "NeedsAttention", "Sum", "GreaterThanThreshold", 0, 300, 1, "notBreaching"),
    "ReconcilerStalledAlarm": (NAMESPACE, "OldestUnsettledAgeSeconds", "SampleCount", "LessThanThreshold", 1, 300, 3, "breaching"),
    "CampaignPausedAlarm": (NAMESPACE, "CampaignPaused", "Sum", "GreaterThanThreshold", 0, 60, 1, "notBreaching"),
}

# The console's domain per partition (output DashboardUrl).
CONSOLE = {"aws": "console.aws.amazon.com", "aws-cn": "console.amazonaws.cn"}

# What Lambda needs of a function's role to place it in subnets (the EC2
# actions of AWSLambdaVPCAccessExecutionRole): the network interface
# actions on this account's interfaces, subnets and security groups, and
# the two Describe actions, which EC2 authorises only on "*".
ENI_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
DESCRIBE_ACTIONS = {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}
ENI_RESOURCES = {
    "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*",
    "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/*",
    "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*",
}

# The merchant's own network in subnets mode.
MERCHANT_SUBNETS = ["subnet-0a1b2c3d4e5f60718", "subnet-1a2b3c4d5e6f70819"]
MERCHANT_GROUPS = ["sg-0a1b2c3d4e5f60718"]

NOVALUE = object()


class OfflinePolicyLoader(ManagedPolicyLoader):
    """A ManagedPolicyLoader that never calls IAM."""

    def __init__(self):
        super().__init__(iam_client=None)

    def load(self):
        return {}


def fail(msg):
    raise AssertionError(msg)


def statements(policy_doc):
    sts = policy_doc.get("Statement", [])
    return sts if isinstance(sts, list) else [sts]


def as_list(v):
    return v if isinstance(v, list) else [v]


# ---------------------------------------------------------------------------
# Combinations


def combinations():
    """Every combination of the network parameters, the architecture and
    the partition, as (label, partition, parameters, facts)."""
    modes = ["public", "subnets", "create"]
    for partition, mode, nats, endpoint, arch in itertools.product(
        PARTITIONS, modes, ["1", "2"], ["false", "true"], ["arm64", "x86_64"]
    ):
        region = PARTITIONS[partition]
        # The optional parameters only switch conditions of their own (a
        # KMS statement, reserved concurrency, an alarm action, environment
        # variables): all empty with one architecture and all set with the
        # other covers both with every network and partition.
        profile = "minimal" if arch == "arm64" else "full"
        params = {
            "WxpaySecretArn": f"arn:{partition}:secretsmanager:{region}:{ACCOUNT}:secret:wxpay/prod-AbCdEf",
            "EgressMode": mode,
            "NatGateways": nats,
            "SecretsManagerEndpoint": endpoint,
            "Architecture": arch,
        }
        if mode == "subnets":
            params["SubnetIds"] = ",".join(MERCHANT_SUBNETS)
            params["SecurityGroupIds"] = ",".join(MERCHANT_GROUPS)
        if profile == "full":
            params.update({
                "KmsKeyArn": f"arn:{partition}:kms:{region}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "ReservedConcurrency": "0",
                "WxpayBaseUrl": "https://api.mch.weixin.qq.com",
                "WxpayBackupBaseUrl": "https://api2.mch.weixin.qq.com",
                "WxpayAppId": "wx8888888888888888",
                "AlarmTopicArn": f"arn:{partition}:sns:{region}:{ACCOUNT}:wxredpack-alarms",
                "PaySignPackage": "raw",
                "LogLevel": "DEBUG",
                "VpcCidr": "10.20.0.0/20",
                "ReconcileSchedule": "rate(5 minutes)",
                "WxpayRateLimit": "50",
                "WxpayApiReserve": "5",
            })
        label = f"{partition} {mode} nat={nats} sm-endpoint={endpoint} {arch} {profile}"
        facts = {
            "partition": partition,
            "region": region,
            "mode": mode,
            "nats": int(nats),
            "endpoint": endpoint == "true",
            "arch": arch,
            "kms": profile == "full",
            "alarm_topic": params.get("AlarmTopicArn"),
            "schedule": params.get("ReconcileSchedule", "rate(1 minute)"),
            "rate_limit": params.get("WxpayRateLimit", "30"),
            "api_reserve": params.get("WxpayApiReserve", "10"),
        }
        yield label, partition, params, facts


# ---------------------------------------------------------------------------
# Resolving a template for parameter values


class Resolver:
    """Evaluates a template's conditions and intrinsic functions that depend
    only on parameters, as CloudFormation does when it creates the stack."""

    def __init__(self, tpl, params, pseudo=None):
        # pseudo: pseudo parameters (AWS::Partition, ...) as conditions
        # see them; elsewhere they stay references.
        self.pseudo = pseudo or {}
        self.params = {}
        for name, spec in tpl.get("Parameters", {}).items():
            v = params.get(name, spec.get("Default"))
            if v is None:
                fail(f"parameter {name} has no value and no default")
            typ = spec.get("Type", "String")
            if typ == "CommaDelimitedList" or typ.startswith("List<"):
                v = [x.strip() for x in str(v).split(",")]
            else:
                v = str(v)
                allowed = [str(a) for a in spec.get("AllowedValues", [])]
                if allowed and v not in allowed:
                    fail(f"parameter {name}={v!r} not in {allowed}")
                pattern = spec.get("AllowedPattern")
                if pattern and not re.fullmatch(pattern, v):
                    fail(f"parameter {name}={v!r} does not match {pattern}")
            self.params[name] = v
        unknown = set(params) - set(self.params)
        if unknown:
            fail(f"parameters {sorted(unknown)} are not in the template")
        self.conditions = tpl.get("Conditions", {})
        self.cache = {}

    def condition(self, name):
        if name not in self.cache:
            if name not in self.conditions:
                fail(f"condition {name} is not defined")
            self.cache[name] = self.truth(self.conditions[name])
        return self.cache[name]

    def truth(self, expr):
        if not isinstance(expr, dict) or len(expr) != 1:
            fail(f"not a condition: {expr!r}")
        ((fn, arg),) = expr.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Not":
            return not self.truth(arg[0])
        if fn == "Fn::And":
            return all(self.truth(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.truth(x) for x in arg)
        if fn == "Fn::Equals":
            a, b = (self.pseudo.get(x["Ref"], x) if isinstance(x, dict) and list(x) == ["Ref"] else x for x in arg)
            a, b = self.value(a), self.value(b)
            return str(a) == str(b)
        # Rule functions (Rules: Assertions).
        if fn == "Fn::EachMemberEquals":
            members, want = self.value(arg[0]), str(self.value(arg[1]))
            return all(str(m) == want for m in members)
        if fn == "Fn::EachMemberIn":
            members, allowed = self.value(arg[0]), [str(x) for x in self.value(arg[1])]
            return all(str(m) in allowed for m in members)
        if fn == "Fn::Contains":
            return str(self.value(arg[1])) in [str(x) for x in self.value(arg[0])]
        fail(f"condition function {fn} is not supported here")

    def value(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                ((fn, arg),) = node.items()
                if fn == "Fn::If":
                    cond, yes, no = arg
                    return self.value(yes if self.condition(cond) else no)
                if fn == "Ref":
                    if arg == "AWS::NoValue":
                        return NOVALUE
                    if arg in self.params:
                        return self.params[arg]
                if fn == "Fn::Sub" and isinstance(arg, str):
                    return {fn: self.sub(arg)}
            out = {}
            for k, x in node.items():
                x = self.value(x)
                if x is not NOVALUE:
                    out[k] = x
            return out
        if isinstance(node, list):
            return [x for x in (self.value(y) for y in node) if x is not NOVALUE]
        return node

    def sub(self, s):
        def repl(m):
            v = self.params.get(m.group(1))
            return v if isinstance(v, str) else m.group(0)

        return re.sub(r"\$\{([A-Za-z0-9]+)\}", repl, s)

    def rules(self, tpl):
        """Fails on the first Rules assertion the parameters break."""
        for name, rule in tpl.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
                continue
            for a in rule.get("Assertions", []):
                if not self.truth(a["Assert"]):
                    fail(f"rule {name}: {a.get('AssertDescription', a['Assert'])}")


def resolve(cfn, params, pseudo=None):
    """The stack CloudFormation would create from cfn with params (and the
    pseudo parameters conditions test): no Parameters, Conditions or Rules
    left, parameters replaced by values."""
    r = Resolver(cfn, params, pseudo)
    r.rules(cfn)
    out = {k: v for k, v in cfn.items() if k not in ("Parameters", "Conditions", "Rules", "Resources", "Outputs")}
    for section in ("Resources", "Outputs"):
        kept = {}
        for lid, item in cfn.get(section, {}).items():
            cond = item.get("Condition")
            if cond is not None and not r.condition(cond):
                continue
            kept[lid] = r.value({k: v for k, v in item.items() if k != "Condition"})
        out[section] = kept
    return out


def references(v):
    """Every resource or parameter name v refers to (Ref, GetAtt, Sub)."""
    out = set()
    if isinstance(v, dict):
        if len(v) == 1:
            ((fn, arg),) = v.items()
            if fn == "Ref" and isinstance(arg, str):
                out.add(arg)
            elif fn == "Fn::GetAtt":
                out.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif fn == "Fn::Sub":
                s, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                out |= {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9:_.]+)\}", s)} - set(names)
                out |= references(names)
                return out
        for x in v.values():
            out |= references(x)
    elif isinstance(v, list):
        for x in v:
            out |= references(x)
    return out


# ---------------------------------------------------------------------------
# Checks of one resolved stack


def check(cfn, facts):
    res = cfn.get("Resources", {})
    by_type = {}
    for lid, r in res.items():
        by_type.setdefault(r["Type"], []).append(lid)

    # Nothing refers to a resource the combination does not create.
    known = set(res) | {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix",
                        "AWS::StackId", "AWS::NoValue", "__ApiId__", "__Stage__"}
    for section in ("Resources", "Outputs"):
        for lid, item in cfn.get(section, {}).items():
            missing = references(item) - known
            for dep in as_list(item.get("DependsOn", [])):
                if dep not in res:
                    missing.add(dep)
            if missing:
                fail(f"{section} {lid} refers to {sorted(missing)}, which this combination does not create")

    # The partition: every ARN the stack constructs either uses
    # ${AWS::Partition} or (SAM's own) the region's partition.
    text = json.dumps({"Resources": res, "Outputs": cfn.get("Outputs", {})})
    for p in set(re.findall(r"arn:(aws[a-z-]*):", text)):
        if p != facts["partition"]:
            fail(f"ARN with partition {p} in a stack for {facts['region']} ({facts['partition']})")

    # The tables: the ledger and the campaigns, both kept (Retain, deletion
    # protection, point-in-time recovery, the AWS managed key), never
    # expiring; no delete or batch write granted anywhere, Scan only on
    # the campaigns.
    tables = by_type.get("AWS::DynamoDB::Table", [])
    if sorted(tables) != sorted([LEDGER_TABLE, CAMPAIGN_TABLE]):
        fail(f"AWS::DynamoDB::Table resources {tables}, want {LEDGER_TABLE} and {CAMPAIGN_TABLE}")
    for table in (LEDGER_TABLE, CAMPAIGN_TABLE):
        t = res[table]
        if t.get("DeletionPolicy") != "Retain" or t.get("UpdateReplacePolicy") != "Retain":
            fail(f"{table}: DeletionPolicy {t.get('DeletionPolicy')!r}, UpdateReplacePolicy {t.get('UpdateReplacePolicy')!r}")
        tp = t["Properties"]
        if tp.get("BillingMode") != "PAY_PER_REQUEST" or tp.get("DeletionProtectionEnabled") is not True:
            fail(f"{table}: BillingMode {tp.get('BillingMode')!r}, DeletionProtectionEnabled {tp.get('DeletionProtectionEnabled')!r}")
        if tp.get("PointInTimeRecoverySpecification") != {"PointInTimeRecoveryEnabled": True}:
            fail(f"{table}: PointInTimeRecoverySpecification {tp.get('PointInTimeRecoverySpecification')!r}")
        if tp.get("SSESpecification") != {"SSEEnabled": True, "SSEType": "KMS"}:
            fail(f"{table}: SSESpecification {tp.get('SSESpecification')!r}, want KMS with the AWS managed key")
        if "TimeToLiveSpecification" in tp:
            fail(f"{table}: TimeToLiveSpecification: items never expire")
    cp = res[CAMPAIGN_TABLE]["Properties"]
    if cp.get("KeySchema") != [{"AttributeName": "id", "KeyType": "HASH"}] or cp.get("AttributeDefinitions") != [{"AttributeName": "id", "AttributeType": "S"}] \
            or cp.get("GlobalSecondaryIndexes") or cp.get("LocalSecondaryIndexes"):
        fail(f"{CAMPAIGN_TABLE}: key {cp.get('KeySchema')!r}, attributes {cp.get('AttributeDefinitions')!r}: want HASH id (S), no index")
    table = LEDGER_TABLE
    tp = res[table]["Properties"]
    attrs = {a["AttributeName"]: a["AttributeType"] for a in tp.get("AttributeDefinitions", [])}
    if attrs != LEDGER_ATTRIBUTES or len(tp.get("AttributeDefinitions", [])) != len(LEDGER_ATTRIBUTES):
        fail(f"{table}: AttributeDefinitions {tp.get('AttributeDefinitions')!r}, want {LEDGER_ATTRIBUTES!r}")
    if tp.get("KeySchema") != LEDGER_KEY:
        fail(f"{table}: KeySchema {tp.get('KeySchema')!r}, want {LEDGER_KEY!r}")
    if tp.get("GlobalSecondaryIndexes") != LEDGER_INDEXES or tp.get("LocalSecondaryIndexes"):
        fail(f"{table}: indexes {tp.get('GlobalSecondaryIndexes')!r}, {tp.get('LocalSecondaryIndexes')!r}: want only {LEDGER_INDEXES!r}")
    for banned in ("dynamodb:*", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLDelete", "dynamodb:DeleteTable"):
        if f'"{banned}"' in text:
            fail(f"{banned} granted in the transformed template")
    campaign_table_resource = {"Fn::GetAtt": [CAMPAIGN_TABLE, "Arn"]}
    for lid in by_type.get("AWS::IAM::Role", []):
        for pol in res[lid]["Properties"].get("Policies", []):
            for st in statements(pol["PolicyDocument"]):
                if "dynamodb:Scan" in as_list(st.get("Action")) and st.get("Resource") != campaign_table_resource:
                    fail(f"{lid}: dynamodb:Scan on {st.get('Resource')!r}: only {CAMPAIGN_TABLE} may be scanned")
    ledger_resource = [{"Fn::GetAtt": [table, "Arn"]}, {"Fn::Sub": f"${{{table}.Arn}}/index/*"}]
    table_resource = {"Fn::GetAtt": [table, "Arn"]}
    index_resources = {i["IndexName"]: {"Fn::Sub": f"${{{table}.Arn}}/index/{i['IndexName']}"} for i in LEDGER_INDEXES}
    bucket_name = res.get(CAMPAIGN_BUCKET, {}).get("Properties", {}).get("BucketName")

    def bucket_objects(resource):
        """The prefix of CampaignBucket a resource is exactly the objects
        of (incoming/), or None."""
        sub = resource.get("Fn::Sub") if isinstance(resource, dict) and len(resource) == 1 else None
        if isinstance(sub, str):
            m = re.fullmatch(r"\$\{CampaignBucket\.Arn\}/([a-z]+/)\*", sub)
            return m.group(1) if m else None
        if isinstance(sub, list) and isinstance(bucket_name, dict) and len(sub) == 2:
            name, variables = bucket_name["Fn::Sub"]
            m = re.fullmatch(r"arn:\$\{AWS::Partition\}:s3:::" + re.escape(name) + r"/([a-z]+/)\*", sub[0])
            return m.group(1) if m and sub[1] == variables else None
        return None

    def bucket_itself(resource):
        """Whether a resource is exactly CampaignBucket, not its objects."""
        if resource == {"Fn::GetAtt": [CAMPAIGN_BUCKET, "Arn"]}:
            return True
        sub = resource.get("Fn::Sub") if isinstance(resource, dict) and len(resource) == 1 else None
        if isinstance(sub, list) and isinstance(bucket_name, dict) and len(sub) == 2:
            name, variables = bucket_name["Fn::Sub"]
            return sub == [f"arn:${{AWS::Partition}}:s3:::{name}", variables]
        return False

    def listed_prefix(condition):
        """The prefix a listing's Condition allows (incoming/ for exactly
        StringLike s3:prefix incoming/*), or None."""
        if not isinstance(condition, dict) or list(condition) != ["StringLike"] \
                or not isinstance(condition["StringLike"], dict) or list(condition["StringLike"]) != ["s3:prefix"]:
            return None
        value = condition["StringLike"]["s3:prefix"]
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        m = re.fullmatch(r"([a-z]+/)\*", value) if isinstance(value, str) else None
        return m.group(1) if m else None

    fns = by_type.get("AWS::Lambda::Function", [])
    if sorted(fns) != sorted(FUNCTIONS):
        fail(f"AWS::Lambda::Function resources {sorted(fns)}, want {sorted(FUNCTIONS)}")

    vpc = facts["mode"] != "public"
    for name in FUNCTIONS:
        p = res[name]["Properties"]
        if p.get("Runtime") != "provided.al2023":
            fail(f"{name}: Runtime {p.get('Runtime')!r}")
        if p.get("Architectures") != [facts["arch"]]:
            fail(f"{name}: Architectures {p.get('Architectures')!r}, want [{facts['arch']}]")
        if p.get("Handler") != "bootstrap":
            fail(f"{name}: Handler {p.get('Handler')!r}")
        if p.get("Timeout") != TIMEOUTS[name]:
            fail(f"{name}: Timeout {p.get('Timeout')!r}, want {TIMEOUTS[name]}")
        env = p.get("Environment", {}).get("Variables", {})
        if env.get("WXPAY_SECRET_ID") != f"arn:{facts['partition']}:secretsmanager:{facts['region']}:{ACCOUNT}:secret:wxpay/prod-AbCdEf":
            fail(f"{name}: WXPAY_SECRET_ID {env.get('WXPAY_SECRET_ID')!r}")
        if env.get("WXPAY_LEDGER_TABLE") != {"Ref": table}:
            fail(f"{name}: WXPAY_LEDGER_TABLE {env.get('WXPAY_LEDGER_TABLE')!r}")
        if p.get("LoggingConfig", {}).get("LogFormat") != "JSON":
            fail(f"{name}: LoggingConfig {p.get('LoggingConfig')!r}")
        if name in MEMORY and p.get("MemorySize") != MEMORY[name]:
            fail(f"{name}: MemorySize {p.get('MemorySize')!r}, want {MEMORY[name]}")
        # The campaigns' variables: exactly the function's, each its value.
        want_env = {
            "WXPAY_CAMPAIGN_TABLE": [{"Ref": CAMPAIGN_TABLE}],
            "WXPAY_CAMPAIGN_BUCKET": [{"Ref": CAMPAIGN_BUCKET}, bucket_name],
            "WXPAY_RATE_LIMIT": [facts["rate_limit"]],
            "WXPAY_API_RESERVE": [facts["api_reserve"]],
        }
        for k, values in want_env.items():
            if k not in ENV[name]:
                if k in env:
                    fail(f"{name}: {k} {env[k]!r}: not one of its variables")
            elif env.get(k) not in values:
                fail(f"{name}: {k} {env.get(k)!r}, want one of {values!r}")
        check_vpc_config(name, p.get("VpcConfig"), facts)

        # The execution role is the template's own, scoped one: no managed
        # policies (SAM attaches those only to roles it generates) and no
        # wildcard, but for EC2's Describe actions in the VPC modes.
        role_id = p["Role"]["Fn::GetAtt"][0]
        role = res[role_id]["Properties"]
        if role.get("ManagedPolicyArns"):
            fail(f"{name}: managed policies {role['ManagedPolicyArns']!r}")
        ledger_actions, campaign_actions, s3_actions, ec2_actions, sids = [], [], [], set(), []
        index_actions = {}
        for pol in role.get("Policies", []):
            for st in statements(pol["PolicyDocument"]):
                sids.append(st.get("Sid"))
                resource = st.get("Resource")
                actions = as_list(st.get("Action"))
                if st.get("Effect") != "Allow":
                    fail(f"{name}: statement {st.get('Sid')} is not an Allow")
                if '"*"' in json.dumps(actions) or any(a.endswith(":*") for a in actions):
                    fail(f"{name}: wildcard action in {st!r}")
                ec2 = {a for a in actions if a.startswith("ec2:")}
                if ec2 and pol.get("PolicyName") != "vpc-network-interfaces":
                    fail(f"{name}: EC2 actions {sorted(ec2)} outside the vpc-network-interfaces policy")
                ec2_actions |= ec2
                if resource == "*":
                    if set(actions) != DESCRIBE_ACTIONS:
                        fail(f"{name}: Resource '*' for {actions}: only EC2's Describe actions may have it")
                elif '"*"' in json.dumps(resource):
                    fail(f"{name}: wildcard resource in {st!r}")
                prefix = bucket_objects(resource)
                if prefix:
                    s3_actions += [f"{a} {prefix}" for a in actions]
                elif bucket_itself(resource) and name in LISTING_FUNCTIONS:
                    listed = listed_prefix(st.get("Condition"))
                    if listed is None:
                        fail(f"{name}: S3 statement {st!r} on {CAMPAIGN_BUCKET} itself: want Condition StringLike s3:prefix incoming/*")
                    s3_actions += [f"{a} s3:prefix {listed}*" for a in actions]
                elif "s3:" in json.dumps(actions) or "CampaignBucket" in json.dumps(resource) or ":s3:::" in json.dumps(resource):
                    fail(f"{name}: S3 statement {st!r}: want exactly incoming/* or reports/* of {CAMPAIGN_BUCKET}"
                         + (", or the bucket itself to list incoming/" if name in LISTING_FUNCTIONS else ""))
                if resource == campaign_table_resource:
                    campaign_actions += actions
                elif CAMPAIGN_TABLE in json.dumps(resource):
                    fail(f"{name}: {CAMPAIGN_TABLE} statement resource {resource!r}, want {campaign_table_resource!r}")
                if ec2 & ENI_ACTIONS:
                    arns = {r.get("Fn::Sub") if isinstance(r, dict) else r for r in as_list(resource)}
                    if ec2 != ENI_ACTIONS or arns != ENI_RESOURCES:
                        fail(f"{name}: network interface statement {st!r}")
                if st.get("Sid") == "ReadWxpaySecret" and resource != env.get("WXPAY_SECRET_ID"):
                    fail(f"{name}: secret statement resource {resource!r}")
                if any(a.startswith("kms:") for a in actions):
                    via = st.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService", {}).get("Fn::Sub")
                    want_kms = {"secretsmanager.${AWS::Region}.${AWS::URLSuffix}": ["kms:Decrypt"]}
                    if name in BUCKET_FUNCTIONS:
                        want_kms["s3.${AWS::Region}.${AWS::URLSuffix}"] = ["kms:Decrypt", "kms:GenerateDataKey"]
                    if not facts["kms"] or not isinstance(resource, str) or not resource.startswith(f"arn:{facts['partition']}:kms:") \
                            or sorted(actions) != want_kms.get(via):
                        fail(f"{name}: kms statement {st!r}")
                if table in json.dumps(resource):
                    # The send and query functions: the table and its
                    # indexes. The reconciler and the campaign functions:
                    # the table, and apart, their index.
                    want_resource = table_resource if name in INDEX_ACTIONS else ledger_resource
                    idx = [i for i, r in index_resources.items() if r == resource]
                    if idx and name in INDEX_ACTIONS:
                        index_actions.setdefault(idx[0], []).extend(actions)
                    elif resource != want_resource:
                        fail(f"{name}: ledger statement resource {resource!r}, want {want_resource!r}")
                    else:
                        ledger_actions += actions
        if sorted(ledger_actions) != sorted(LEDGER_ACTIONS[name]):
            fail(f"{name}: ledger actions {sorted(ledger_actions)}, want {sorted(LEDGER_ACTIONS[name])}")
        if {i: sorted(a) for i, a in index_actions.items()} != INDEX_ACTIONS.get(name, {}):
            fail(f"{name}: actions on the ledger's indexes {index_actions}, want {INDEX_ACTIONS.get(name, {})}")
        if sorted(campaign_actions) != sorted(CAMPAIGN_ACTIONS[name]):
            fail(f"{name}: actions on {CAMPAIGN_TABLE} {sorted(campaign_actions)}, want {sorted(CAMPAIGN_ACTIONS[name])}")
        want_s3 = ["s3:GetObject incoming/", "s3:PutObject reports/"] if name in BUCKET_FUNCTIONS else []
        if name in LISTING_FUNCTIONS:
            want_s3 = sorted(want_s3 + ["s3:ListBucket s3:prefix incoming/*"])
        if sorted(s3_actions) != want_s3:
            fail(f"{name}: actions on {CAMPAIGN_BUCKET} {sorted(s3_actions)}, want {want_s3}")
        if ("DecryptWxpaySecret" in sids) != facts["kms"]:
            fail(f"{name}: kms:Decrypt statement present {('DecryptWxpaySecret' in sids)}, want {facts['kms']}")
        if name in BUCKET_FUNCTIONS and ("UseCampaignBucketKey" in sids) != facts["kms"]:
            fail(f"{name}: the bucket's KMS statement present {('UseCampaignBucketKey' in sids)}, want {facts['kms']}")
        want_ec2 = ENI_ACTIONS | DESCRIBE_ACTIONS if vpc else set()
        if ec2_actions != want_ec2:
            fail(f"{name}: EC2 actions {sorted(ec2_actions)}, want {sorted(want_ec2)} in {facts['mode']} mode")
        generated = [x for x in by_type.get("AWS::IAM::Role", []) if x.startswith(name)]
        if generated:
            fail(f"{name}: SAM generated roles {generated}")

    check_network(res, by_type, cfn.get("Outputs", {}), facts)

    # API Gateway: every method is IAM-authorised, uses the resource-based
    # permission (no caller-credentials integration) and matches the routes;
    # regional, as the China regions require.
    apis = by_type.get("AWS::ApiGateway::RestApi", [])
    if len(apis) != 1:
        fail(f"want one REST API, got {apis}")
    api = res[apis[0]]["Properties"]
    if api.get("EndpointConfiguration", {}).get("Types") != ["REGIONAL"]:
        fail(f"REST API endpoint configuration {api.get('EndpointConfiguration')!r}, want REGIONAL")
    body = api["Body"]
    routes = set()
    for path, item in body["paths"].items():
        for method, op in item.items():
            integ = op.get("x-amazon-apigateway-integration", {})
            if "credentials" in integ:
                fail(f"{method} {path}: integration uses credentials {integ['credentials']!r}")
            if op.get("security") != [{"AWS_IAM": []}]:
                fail(f"{method} {path}: security {op.get('security')!r}")
            uri = json.dumps(integ.get("uri"))
            target = [f for f in FUNCTIONS if f"{f}.Arn" in uri]
            routes.add((method.upper(), path, target[0] if target else None))
    want = {tuple(r.split(" ", 1)) + (f,) for f, (rs, _) in FUNCTIONS.items() for r in rs}
    if routes != want:
        fail(f"routes {sorted(routes, key=str)}, want {sorted(want)}")
    perms = by_type.get("AWS::Lambda::Permission", [])
    for f in FUNCTIONS:
        principals = sorted(res[x]["Properties"]["Principal"] for x in perms if res[x]["Properties"]["FunctionName"] == {"Ref": f})
        want_principals = ["apigateway.amazonaws.com"] if f in API_FUNCTIONS else ["events.amazonaws.com"]
        if f == "CampaignsFunction":
            want_principals = ["apigateway.amazonaws.com", "s3.amazonaws.com"]
        if sorted(set(principals)) != want_principals:
            fail(f"{f}: AWS::Lambda::Permission for {principals}, want only {want_principals}")
        for x in perms:
            xp = res[x]["Properties"]
            if xp["FunctionName"] == {"Ref": f} and xp["Principal"] == "s3.amazonaws.com" and xp.get("SourceAccount") != {"Ref": "AWS::AccountId"}:
                fail(f"{x}: S3 may invoke {f} for any account's bucket: {xp!r}")

    check_reconciler(res, by_type, facts)
    check_campaigns(res, by_type, cfn.get("Outputs", {}), facts)
    check_alarms(res, by_type, facts)
    check_dashboard(res, by_type, cfn.get("Outputs", {}), facts)

    # SQS event source mappings: one per send function.
    esms = by_type.get("AWS::Lambda::EventSourceMapping", [])
    mapped = {}
    for x in esms:
        p = res[x]["Properties"]
        mapped[p["FunctionName"]["Ref"]] = p
        if p.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
            fail(f"{x}: FunctionResponseTypes {p.get('FunctionResponseTypes')!r}")
        if "MaximumConcurrency" not in p.get("ScalingConfig", {}):
            fail(f"{x}: no ScalingConfig.MaximumConcurrency")
    want_mapped = sorted(f for f, (_, q) in FUNCTIONS.items() if q)
    if sorted(mapped) != want_mapped:
        fail(f"SQS mappings for {sorted(mapped)}, want {want_mapped}")
    return len(res)


def check_reconciler(res, by_type, facts):
    """The schedules of the reconciler and the campaign runner: one
    EventBridge rule each, at its rate (the reconciler's the parameter's),
    enabled, on the function, retried by neither EventBridge nor Lambda's
    asynchronous invocation (the next run comes with the schedule)."""
    rules = by_type.get("AWS::Events::Rule", [])
    if len(rules) != len(SCHEDULED):
        fail(f"AWS::Events::Rule resources {rules}, want one per scheduled function {sorted(SCHEDULED)}")
    scheduled = {}
    for rule in rules:
        rp = res[rule]["Properties"]
        targets = rp.get("Targets", [])
        fn = targets[0].get("Arn", {}).get("Fn::GetAtt", [None])[0] if len(targets) == 1 else None
        if fn not in SCHEDULED or fn in scheduled:
            fail(f"{rule}: targets {targets!r}, want one scheduled function of {sorted(SCHEDULED)}")
        scheduled[fn] = rule
        want = SCHEDULED[fn] or facts["schedule"]
        if rp.get("ScheduleExpression") != want or rp.get("State") != "ENABLED" or "EventPattern" in rp:
            fail(f"{rule}: ScheduleExpression {rp.get('ScheduleExpression')!r}, State {rp.get('State')!r}: want {want!r}, ENABLED")
        if targets[0].get("RetryPolicy", {}).get("MaximumRetryAttempts") != 0 or "Input" in targets[0]:
            fail(f"{rule}: target {targets[0]!r}: want no retry and the scheduled event as it is")
    configs = {}
    for c in by_type.get("AWS::Lambda::EventInvokeConfig", []):
        cp = res[c]["Properties"]
        configs[cp.get("FunctionName", {}).get("Ref")] = cp
        if cp.get("MaximumRetryAttempts") != 0 or cp.get("Qualifier") != "$LATEST":
            fail(f"{c}: {cp!r}: want MaximumRetryAttempts 0 on $LATEST")
    if sorted(configs) != sorted(SCHEDULED):
        fail(f"AWS::Lambda::EventInvokeConfig for {sorted(configs, key=str)}, want {sorted(SCHEDULED)}")
    env = res["ReconcileFunction"]["Properties"].get("Environment", {}).get("Variables", {})
    for k in ("WXPAY_RECONCILE_BUDGET", "WXPAY_RECONCILE_BATCH", "WXPAY_RECONCILE_WORKERS"):
        if k in env:
            fail(f"ReconcileFunction: {k} {env[k]!r} set; the defaults suit the timeout")
    if "ReservedConcurrentExecutions" in res["CampaignRunFunction"]["Properties"]:
        fail("CampaignRunFunction: reserved concurrency; the lease keeps one runner per campaign")


def check_campaigns(res, by_type, outputs, facts):
    """The campaigns' bucket: private, versioned, encrypted with the key
    when one is given (else SSE-S3), TLS only, kept, its objects created
    under incoming/ notifying CampaignsFunction; the outputs; and no
    circular dependency in the stack."""
    b = res.get(CAMPAIGN_BUCKET)
    if not b or b["Type"] != "AWS::S3::Bucket" or len(by_type.get("AWS::S3::Bucket", [])) != 1:
        fail(f"want one AWS::S3::Bucket, {CAMPAIGN_BUCKET}: {by_type.get('AWS::S3::Bucket')}")
    if b.get("DeletionPolicy") != "Retain" or b.get("UpdateReplacePolicy") != "Retain":
        fail(f"{CAMPAIGN_BUCKET}: DeletionPolicy {b.get('DeletionPolicy')!r}, UpdateReplacePolicy {b.get('UpdateReplacePolicy')!r}")
    bp = b["Properties"]
    if bp.get("PublicAccessBlockConfiguration") != {k: True for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")}:
        fail(f"{CAMPAIGN_BUCKET}: PublicAccessBlockConfiguration {bp.get('PublicAccessBlockConfiguration')!r}")
    if bp.get("VersioningConfiguration") != {"Status": "Enabled"}:
        fail(f"{CAMPAIGN_BUCKET}: VersioningConfiguration {bp.get('VersioningConfiguration')!r}")
    if bp.get("OwnershipControls") != {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}:
        fail(f"{CAMPAIGN_BUCKET}: OwnershipControls {bp.get('OwnershipControls')!r}")
    sse = bp.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    if facts["kms"]:
        want_sse = [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": f"arn:{facts['partition']}:kms:{facts['region']}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
                     "BucketKeyEnabled": True}]
    else:
        want_sse = [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    if sse != want_sse:
        fail(f"{CAMPAIGN_BUCKET}: encryption {sse!r}, want {want_sse!r}")
    name = bp.get("BucketName", {}).get("Fn::Sub")
    if not isinstance(name, list) or references(name) - {"AWS::AccountId", "AWS::Region", "AWS::StackId", "AWS::Partition"}:
        fail(f"{CAMPAIGN_BUCKET}: BucketName {bp.get('BucketName')!r}: want !Sub of the account, region and stack id, no resource")
    # The notification: objects created under incoming/, to the campaigns
    # function (SAM's S3 event), and nothing else.
    lc = bp.get("NotificationConfiguration", {}).get("LambdaConfigurations")
    want_lc = [{"Event": "s3:ObjectCreated:*", "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "incoming/"}]}},
                "Function": {"Fn::GetAtt": ["CampaignsFunction", "Arn"]}}]
    if lc != want_lc or set(bp.get("NotificationConfiguration", {})) != {"LambdaConfigurations"}:
        fail(f"{CAMPAIGN_BUCKET}: NotificationConfiguration {bp.get('NotificationConfiguration')!r}, want {want_lc!r}")
    # TLS only.
    policies = [res[x]["Properties"] for x in by_type.get("AWS::S3::BucketPolicy", []) if res[x]["Properties"].get("Bucket") == {"Ref": CAMPAIGN_BUCKET}]
    want_deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": [{"Fn::GetAtt": [CAMPAIGN_BUCKET, "Arn"]}, {"Fn::Sub": f"${{{CAMPAIGN_BUCKET}.Arn}}/*"}],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    if not any({k: v for k, v in st.items() if k != "Sid"} == want_deny for p in policies for st in statements(p["PolicyDocument"])):
        fail(f"{CAMPAIGN_BUCKET}: no bucket policy statement {want_deny!r}")
    # Outputs.
    want_out = {
        "CampaignBucketName": {"Ref": CAMPAIGN_BUCKET},
        "CampaignTableName": {"Ref": CAMPAIGN_TABLE},
        "CampaignsApiUrl": {"Fn::Sub": "https://${RedpackApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1/campaigns"},
    }
    for k, v in want_out.items():
        if outputs.get(k, {}).get("Value") != v:
            fail(f"output {k} {outputs.get(k)!r}, want {v!r}")
    # No circular dependency: CloudFormation refuses the stack.
    deps = {lid: (references(r) | set(as_list(r.get("DependsOn", [])))) & set(res) for lid, r in res.items()}
    done, path = set(), []

    def visit(n):
        if n in path:
            fail(f"circular dependency: {' -> '.join(path[path.index(n):] + [n])}")
        if n in done:
            return
        path.append(n)
        for d in sorted(deps[n]):
            visit(d)
        path.pop()
        done.add(n)

    for n in sorted(deps):
        visit(n)


def check_alarms(res, by_type, facts):
    """The alarms: each on its metric, with its threshold, notifying the
    topic when one is given."""
    alarms = sorted(by_type.get("AWS::CloudWatch::Alarm", []))
    if alarms != sorted(ALARMS):
        fail(f"alarms {alarms}, want {sorted(ALARMS)}")
    for lid, (ns, metric, stat, op, threshold, period, evals, missing) in ALARMS.items():
        p = res[lid]["Properties"]
        got = (p.get("Namespace"), p.get("MetricName"), p.get("Statistic"), p.get("ComparisonOperator"),
               p.get("Threshold"), p.get("Period"), p.get("EvaluationPeriods"), p.get("TreatMissingData"))
        if got != (ns, metric, stat, op, threshold, period, evals, missing):
            fail(f"{lid}: {got}, want {(ns, metric, stat, op, threshold, period, evals, missing)}")
        if "Unit" in p or "Metrics" in p:
            fail(f"{lid}: Unit or Metrics {p!r}: a plain alarm on the metric, any unit")
        if ns == NAMESPACE and p.get("Dimensions"):
            fail(f"{lid}: dimensions {p['Dimensions']!r}; {metric} has none")
        want_actions = [facts["alarm_topic"]] if facts["alarm_topic"] else None
        if p.get("AlarmActions") != want_actions:
            fail(f"{lid}: AlarmActions {p.get('AlarmActions')!r}, want {want_actions!r}")


def sub_placeholders(text):
    """Fn::Sub's ${Name} and ${Name.Attr} replaced by plain words (and
    ${!Literal} by ${Literal}), as CloudFormation fills them in."""
    text = re.sub(r"\$\{(?!!)([A-Za-z0-9:]+)(?:\.([A-Za-z0-9.]+))?\}",
                  lambda m: f"{m.group(1).replace('::', '-')}-{m.group(2) or 'ref'}", text)
    return text.replace("${!", "${")


def check_dashboard(res, by_type, outputs, facts):
    """The dashboard: a body that is JSON once Fn::Sub has filled it in,
    every widget in the stack's region, each of the functions' metrics
    shown, the dead-letter queue, Lambda errors and throttles of every
    function; its name and URL (on the partition's console) as outputs."""
    dashboards = by_type.get("AWS::CloudWatch::Dashboard", [])
    if len(dashboards) != 1:
        fail(f"want one AWS::CloudWatch::Dashboard, got {dashboards}")
    lid = dashboards[0]
    raw = res[lid]["Properties"]["DashboardBody"]
    if not isinstance(raw, dict) or not isinstance(raw.get("Fn::Sub"), str):
        fail(f"{lid}: DashboardBody {raw!r}, want !Sub of the JSON")
    try:
        body = json.loads(sub_placeholders(raw["Fn::Sub"]))
    except json.JSONDecodeError as e:
        fail(f"{lid}: DashboardBody is not JSON once substituted: {e}")
    text = json.dumps(body)
    exprs, series = [], []
    for w in body["widgets"]:
        wp = w.get("properties", {})
        if w.get("type") != "metric":
            continue
        if wp.get("region") != "AWS-Region-ref":
            fail(f"{lid}: widget {wp.get('title')!r} region {wp.get('region')!r}, want ${{AWS::Region}}")
        for m in wp.get("metrics", []):
            if m and isinstance(m[0], dict):
                exprs.append(m[0].get("expression", ""))
            else:
                series.append([x for x in m if not isinstance(x, dict)])
    for metric, dims in METRICS.items():
        if dims:
            want = f'{{{NAMESPACE},{",".join(dims)}}} MetricName="{metric}"'
            if not any(e.startswith("SEARCH(") and want in e for e in exprs):
                fail(f"{lid}: no SEARCH of {want}")
        elif [NAMESPACE, metric] not in series:
            fail(f"{lid}: no widget of {NAMESPACE} {metric}")
    for f in FUNCTIONS:
        for m in ("Errors", "Throttles"):
            if ["AWS/Lambda", m, "FunctionName", f"{f}-ref"] not in series:
                fail(f"{lid}: no {m} of {f}")
    if ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "RedpackDeadLetterQueue-QueueName"] not in series:
        fail(f"{lid}: no dead-letter queue depth")
    for a in ALARMS:
        if f'"{a}-Arn"' not in text:
            fail(f"{lid}: alarm {a} not on the dashboard")
    if outputs.get("DashboardName", {}).get("Value") != {"Ref": lid}:
        fail(f"output DashboardName {outputs.get('DashboardName')!r}")
    want_url = f"https://{CONSOLE[facts['partition']]}/cloudwatch/home?region=${{AWS::Region}}#dashboards:name=${{{lid}}}"
    if outputs.get("DashboardUrl", {}).get("Value") != {"Fn::Sub": want_url}:
        fail(f"output DashboardUrl {outputs.get('DashboardUrl')!r}, want !Sub {want_url!r}")


def check_vpc_config(name, vc, facts):
    mode = facts["mode"]
    if mode == "public":
        if vc is not None:
            fail(f"{name}: VpcConfig {vc!r} in public mode")
        return
    if mode == "subnets":
        subnets, groups = MERCHANT_SUBNETS, MERCHANT_GROUPS
    else:
        subnets = [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
        groups = [{"Ref": "FunctionSecurityGroup"}]
    want = {"SubnetIds": subnets, "SecurityGroupIds": groups, "Ipv6AllowedForDualStack": False}
    if vc != want:
        fail(f"{name}: VpcConfig {vc!r}, want {want!r} in {mode} mode")


def check_network(res, by_type, outputs, facts):
    ec2 = sorted(lid for lid, r in res.items() if r["Type"].startswith("AWS::EC2::"))
    if facts["mode"] != "create":
        if ec2:
            fail(f"EC2 resources {ec2} in {facts['mode']} mode: only create mode builds a network")
        if "EgressIps" in outputs or "VpcId" in outputs:
            fail(f"outputs {sorted(outputs)} in {facts['mode']} mode: EgressIps and VpcId are create mode's")
        return

    def one(typ):
        ids = by_type.get(typ, [])
        if len(ids) != 1:
            fail(f"want one {typ}, got {ids}")
        return ids[0]

    def props(lid):
        return res[lid].get("Properties", {})

    vpc = one("AWS::EC2::VPC")
    if props(vpc).get("EnableDnsSupport") is not True or props(vpc).get("EnableDnsHostnames") is not True:
        fail(f"{vpc}: DNS support and hostnames must be on (interface endpoints' private DNS)")
    for typ in ("AWS::EC2::VPCCidrBlock", "AWS::EC2::EgressOnlyInternetGateway"):
        if by_type.get(typ):
            fail(f"{typ} {by_type[typ]}: egress is IPv4 only")
    subnets = by_type.get("AWS::EC2::Subnet", [])
    if len(subnets) != 4:
        fail(f"want 4 subnets, got {subnets}")
    for s in subnets:
        sp = props(s)
        if sp.get("VpcId") != {"Ref": vpc} or "Ipv6CidrBlock" in sp or sp.get("AssignIpv6AddressOnCreation"):
            fail(f"{s}: {sp!r}")

    igw = one("AWS::EC2::InternetGateway")
    table_of = {}
    for a in by_type.get("AWS::EC2::SubnetRouteTableAssociation", []):
        table_of[props(a)["SubnetId"]["Ref"]] = props(a)["RouteTableId"]["Ref"]
    default_route = {}
    for r in by_type.get("AWS::EC2::Route", []):
        rp = props(r)
        if rp.get("DestinationCidrBlock") == "0.0.0.0/0":
            default_route[rp["RouteTableId"]["Ref"]] = rp

    # NAT gateways: NatGateways of them, each with its own Elastic IP, in a
    # subnet routed to the internet gateway.
    nats = by_type.get("AWS::EC2::NatGateway", [])
    eips = by_type.get("AWS::EC2::EIP", [])
    if len(nats) != facts["nats"] or len(eips) != facts["nats"]:
        fail(f"NAT gateways {nats}, Elastic IPs {eips}: want {facts['nats']} of each")
    nat_eips = set()
    for n in nats:
        np_ = props(n)
        eip, attr = np_["AllocationId"]["Fn::GetAtt"]
        if eip not in eips or attr != "AllocationId" or np_.get("ConnectivityType", "public") != "public":
            fail(f"{n}: {np_!r}")
        nat_eips.add(eip)
        route = default_route.get(table_of.get(np_["SubnetId"]["Ref"]), {})
        if route.get("GatewayId") != {"Ref": igw}:
            fail(f"{n}: its subnet's default route {route!r} is not the internet gateway")
    if nat_eips != set(eips):
        fail(f"Elastic IPs {sorted(eips)}, used by NAT gateways {sorted(nat_eips)}")

    # The functions' subnets: private, default route through a NAT gateway;
    # with two NAT gateways, one each.
    fn_subnets = [s["Ref"] for s in res["SendFunction"]["Properties"]["VpcConfig"]["SubnetIds"]]
    fn_tables, used_nats = set(), set()
    for s in fn_subnets:
        if props(s).get("MapPublicIpOnLaunch"):
            fail(f"{s}: functions' subnet maps public IPs")
        fn_tables.add(table_of.get(s))
        nat = default_route.get(table_of.get(s), {}).get("NatGatewayId", {}).get("Ref")
        if nat not in nats:
            fail(f"{s}: default route does not go through a NAT gateway")
        used_nats.add(nat)
    if used_nats != set(nats):
        fail(f"the functions' subnets use NAT gateways {sorted(used_nats)}, want {sorted(nats)}")

    # Endpoints: DynamoDB and S3 gateway endpoints on the functions' route
    # tables; a Secrets Manager interface endpoint only when asked for.
    endpoints = {}
    for e in by_type.get("AWS::EC2::VPCEndpoint", []):
        ep = props(e)
        service = ep.get("ServiceName", {}).get("Fn::Sub", "")
        m = re.fullmatch(r"com\.amazonaws\.\$\{AWS::Region\}\.([a-z0-9.-]+)", service)
        if not m:
            fail(f"{e}: ServiceName {ep.get('ServiceName')!r}")
        endpoints[m.group(1)] = ep
    want_endpoints = {"dynamodb", "s3"} | ({"secretsmanager"} if facts["endpoint"] else set())
    if set(endpoints) != want_endpoints:
        fail(f"VPC endpoints for {sorted(endpoints)}, want {sorted(want_endpoints)}")
    for svc in ("dynamodb", "s3"):
        ep = endpoints[svc]
        if ep.get("VpcEndpointType") != "Gateway" or {r["Ref"] for r in ep.get("RouteTableIds", [])} != fn_tables:
            fail(f"{svc} endpoint {ep!r}: want a gateway endpoint on the route tables {sorted(fn_tables)}")
    if facts["endpoint"]:
        ep = endpoints["secretsmanager"]
        if ep.get("VpcEndpointType") != "Interface" or ep.get("PrivateDnsEnabled") is not True:
            fail(f"secretsmanager endpoint {ep!r}: want an interface endpoint with private DNS")
        if sorted(s["Ref"] for s in ep.get("SubnetIds", [])) != sorted(fn_subnets):
            fail(f"secretsmanager endpoint subnets {ep.get('SubnetIds')!r}, want the functions' {fn_subnets}")

    # The functions' security group: outbound HTTPS only, nothing inbound.
    sg = res["SendFunction"]["Properties"]["VpcConfig"]["SecurityGroupIds"][0]["Ref"]
    sgp = props(sg)
    if sgp.get("SecurityGroupIngress"):
        fail(f"{sg}: inbound rules {sgp['SecurityGroupIngress']!r}")
    egress = [(r.get("IpProtocol"), r.get("FromPort"), r.get("ToPort"), r.get("CidrIp")) for r in sgp.get("SecurityGroupEgress", [])]
    if egress != [("tcp", 443, 443, "0.0.0.0/0")]:
        fail(f"{sg}: egress {egress}, want only tcp 443 to 0.0.0.0/0")

    # EgressIps: exactly the NAT gateways' Elastic IPs.
    out = outputs.get("EgressIps", {}).get("Value")
    ips = set()

    def walk(v):
        if isinstance(v, dict):
            if "Fn::GetAtt" in v and v["Fn::GetAtt"][1] == "PublicIp":
                ips.add(v["Fn::GetAtt"][0])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(out)
    if out is None or ips != set(eips):
        fail(f"output EgressIps {out!r}, want the PublicIp of {sorted(eips)}")


# ---------------------------------------------------------------------------
# cfn-lint


_rules = None
_template = None


def _init(text):
    """A worker: the parsed template, and cfn-lint's rules, loaded once."""
    global _rules, _template
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    _template = packaged(text)
    from cfnlint.core import get_rules

    _rules = get_rules([], [], [], include_experimental=False)


def _combination(combo):
    """Transforms, resolves and checks one combination: (label, facts,
    resource count or None, the resolved stack as JSON, error)."""
    label, partition, params, facts = combo
    try:
        set_region(facts["region"])
        cfn = transform(copy.deepcopy(_template), params, OfflinePolicyLoader())
        stack = resolve(cfn, params, {"AWS::Partition": partition, "AWS::Region": facts["region"]})
        n = check(stack, facts)
        return label, facts, n, json.dumps(stack, sort_keys=True), None
    except Exception as e:  # noqa: BLE001 - reported by the caller
        return label, facts, None, None, f"{type(e).__name__}: {e}"


def _lint(job):
    """cfn-lint errors and warnings of one resolved stack."""
    from cfnlint.api import ManualArgs, lint

    region, text = job
    matches = lint(text, rules=_rules, regions=[region],
                   config=ManualArgs(regions=[region], mandatory_checks=["W1030"]))
    return [f"{m.rule.id} {m.message} ({'/'.join(str(x) for x in (m.path or []))})"
            for m in matches if m.rule.id[:1] in ("E", "W")]


# ---------------------------------------------------------------------------


def packaged(text):
    """Parse the template and stand in for `sam package`: local CodeUri
    values become S3 URIs, as they are when SAM uploads the build."""
    tpl = yaml_parse(text)
    for lid, r in tpl.get("Resources", {}).items():
        props = r.get("Properties", {})
        if r.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = f"s3://example-artifacts/{lid}.zip"
    return tpl


def set_region(region):
    """Make the translator work as in region: pseudo parameters from the
    default region, the partition from ArnGenerator."""
    os.environ["AWS_DEFAULT_REGION"] = region
    ArnGenerator.BOTO_SESSION_REGION_NAME = region


def check_rules_refuse(text):
    """subnets mode without subnets or security groups breaks Rules."""
    tpl = packaged(text)
    for missing in ("SubnetIds", "SecurityGroupIds"):
        params = {
            "WxpaySecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:wxpay/prod-AbCdEf",
            "EgressMode": "subnets",
            "SubnetIds": ",".join(MERCHANT_SUBNETS),
            "SecurityGroupIds": ",".join(MERCHANT_GROUPS),
        }
        del params[missing]
        try:
            Resolver(tpl, params).rules(tpl)
        except AssertionError:
            continue
        fail(f"Rules accept EgressMode subnets without {missing}")


def main(argv):
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    args = [a for a in argv if not a.startswith("-")]
    do_lint = "--no-lint" not in argv
    verbose = "-v" in argv
    path = args[0] if args else TEMPLATE
    with open(path, encoding="utf-8") as f:
        text = f.read()

    start = time.monotonic()
    failed = False
    jobs, combos_of, summary = {}, {}, {}
    workers = max(1, os.cpu_count() or 1)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(text,)) as pool:
        for label, facts, n, resolved, err in pool.map(_combination, combinations()):
            if err:
                failed = True
                print(f"FAIL sam transform ({label}): {err}", file=sys.stderr)
                continue
            key = hashlib.sha256((facts["region"] + resolved).encode()).hexdigest()
            jobs.setdefault(key, (facts["region"], resolved))
            combos_of.setdefault(key, []).append(label)
            count, sizes = summary.setdefault(f"{facts['partition']} {facts['mode']}", [0, set()])
            summary[f"{facts['partition']} {facts['mode']}"][0] = count + 1
            sizes.add(n)
            if verbose:
                print(f"ok   sam transform ({label}): {n} resources")
        for group, (count, sizes) in summary.items():
            print(f"ok   sam transform ({group}): {count} combinations, {'/'.join(str(s) for s in sorted(sizes))} resources")
        try:
            check_rules_refuse(text)
            print("ok   Rules refuse subnets mode without SubnetIds or SecurityGroupIds")
        except AssertionError as e:
            failed = True
            print(f"FAIL Rules: {e}", file=sys.stderr)

        if do_lint and jobs:
            keys = sorted(jobs)
            lint_failed = False
            for key, problems in zip(keys, pool.map(_lint, [jobs[k] for k in keys])):
                for p in problems:
                    lint_failed = True
                    print(f"FAIL cfn-lint ({combos_of[key][0]}, and {len(combos_of[key]) - 1} more): {p}", file=sys.stderr)
            if not lint_failed:
                print(f"ok   cfn-lint: {len(keys)} distinct stacks of {sum(len(v) for v in combos_of.values())} combinations")
            failed = failed or lint_failed
    print(f"     {time.monotonic() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
