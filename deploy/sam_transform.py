#!/usr/bin/env python3
"""Transform template.yaml with the AWS SAM translator, offline.

No AWS calls: the managed-policy loader is a stub (the template names no
managed policies by name). Checks what the transform produced and exits
non-zero on any failure. Run from anywhere:

    python3 deploy/sam_transform.py [path/to/template.yaml]
"""

import json
import logging
import os
import sys

from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "template.yaml")

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wxpay/prod-AbCdEf"
KMS_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

FUNCTIONS = {
    "SendGroupFunction": ("POST", "/redpacks/group", True),
    "SendMiniFunction": ("POST", "/redpacks/mini", True),
    "SendFunction": ("POST", "/redpacks", True),
    "QueryFunction": ("GET", "/redpacks/{mch_billno}", False),
}

# The item actions each function makes on the ledger table, and no others.
SEND_LEDGER = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
LEDGER_ACTIONS = {
    "SendGroupFunction": SEND_LEDGER,
    "SendMiniFunction": SEND_LEDGER,
    "SendFunction": SEND_LEDGER,
    "QueryFunction": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
}


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


def check(cfn, with_kms):
    res = cfn.get("Resources", {})
    by_type = {}
    for lid, r in res.items():
        by_type.setdefault(r["Type"], []).append(lid)

    # The ledger: one table, kept (Retain, deletion protection), never
    # expiring, and no delete or scan granted anywhere.
    tables = by_type.get("AWS::DynamoDB::Table", [])
    if len(tables) != 1:
        fail(f"want one AWS::DynamoDB::Table (the ledger), got {tables}")
    table = tables[0]
    t = res[table]
    if t.get("DeletionPolicy") != "Retain" or t.get("UpdateReplacePolicy") != "Retain":
        fail(f"{table}: DeletionPolicy {t.get('DeletionPolicy')!r}, UpdateReplacePolicy {t.get('UpdateReplacePolicy')!r}")
    tp = t["Properties"]
    if tp.get("BillingMode") != "PAY_PER_REQUEST" or tp.get("DeletionProtectionEnabled") is not True:
        fail(f"{table}: BillingMode {tp.get('BillingMode')!r}, DeletionProtectionEnabled {tp.get('DeletionProtectionEnabled')!r}")
    if "TimeToLiveSpecification" in tp:
        fail(f"{table}: TimeToLiveSpecification: ledger items never expire")
    text = json.dumps(cfn)
    for banned in ("dynamodb:*", "dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem"):
        if f'"{banned}"' in text:
            fail(f"{banned} granted in the transformed template")
    ledger_resource = [{"Fn::GetAtt": [table, "Arn"]}, {"Fn::Sub": f"${{{table}.Arn}}/index/*"}]

    fns = by_type.get("AWS::Lambda::Function", [])
    if sorted(fns) != sorted(FUNCTIONS):
        fail(f"AWS::Lambda::Function resources {sorted(fns)}, want {sorted(FUNCTIONS)}")

    for name in FUNCTIONS:
        p = res[name]["Properties"]
        if p.get("Runtime") != "provided.al2023":
            fail(f"{name}: Runtime {p.get('Runtime')!r}")
        if p.get("Architectures") != ["arm64"]:
            fail(f"{name}: Architectures {p.get('Architectures')!r}")
        if p.get("Handler") != "bootstrap":
            fail(f"{name}: Handler {p.get('Handler')!r}")
        env = p.get("Environment", {}).get("Variables", {})
        if env.get("WXPAY_SECRET_ID") != {"Ref": "WxpaySecretArn"}:
            fail(f"{name}: WXPAY_SECRET_ID {env.get('WXPAY_SECRET_ID')!r}")
        if env.get("WXPAY_LEDGER_TABLE") != {"Ref": table}:
            fail(f"{name}: WXPAY_LEDGER_TABLE {env.get('WXPAY_LEDGER_TABLE')!r}")
        if p.get("LoggingConfig", {}).get("LogFormat") != "JSON":
            fail(f"{name}: LoggingConfig {p.get('LoggingConfig')!r}")

        # The execution role is the template's own, scoped one: no managed
        # policies (SAM attaches those only to roles it generates) and no
        # wildcard in any statement.
        role_id = p["Role"]["Fn::GetAtt"][0]
        role = res[role_id]["Properties"]
        if role.get("ManagedPolicyArns"):
            fail(f"{name}: managed policies {role['ManagedPolicyArns']!r}")
        ledger_actions = []
        for pol in role.get("Policies", []):
            for st in statements(pol["PolicyDocument"]):
                if "Fn::If" in st:
                    cond, st, novalue = st["Fn::If"]
                    if cond != "HasKmsKey" or novalue != {"Ref": "AWS::NoValue"}:
                        fail(f"{name}: unexpected conditional statement {st!r}")
                resource = st.get("Resource")
                if '"*"' in json.dumps(resource) or '"*"' in json.dumps(st.get("Action")):
                    fail(f"{name}: wildcard in {st!r}")
                if st.get("Sid") == "ReadWxpaySecret" and resource != {"Ref": "WxpaySecretArn"}:
                    fail(f"{name}: secret statement resource {resource!r}")
                if st.get("Sid") == "DecryptWxpaySecret" and resource != {"Ref": "KmsKeyArn"}:
                    fail(f"{name}: kms statement resource {resource!r}")
                if table in json.dumps(resource):
                    if resource != ledger_resource:
                        fail(f"{name}: ledger statement resource {resource!r}, want {ledger_resource!r}")
                    actions = st.get("Action")
                    ledger_actions += actions if isinstance(actions, list) else [actions]
        if sorted(ledger_actions) != sorted(LEDGER_ACTIONS[name]):
            fail(f"{name}: ledger actions {sorted(ledger_actions)}, want {sorted(LEDGER_ACTIONS[name])}")
        generated = [x for x in by_type.get("AWS::IAM::Role", []) if x.startswith(name)]
        if generated:
            fail(f"{name}: SAM generated roles {generated}")

    # API Gateway: every method is IAM-authorised, uses the resource-based
    # permission (no caller-credentials integration) and matches the routes.
    apis = by_type.get("AWS::ApiGateway::RestApi", [])
    if len(apis) != 1:
        fail(f"want one REST API, got {apis}")
    body = res[apis[0]]["Properties"]["Body"]
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
    want = {(m, p, f) for f, (m, p, _) in FUNCTIONS.items()}
    if routes != want:
        fail(f"routes {sorted(routes, key=str)}, want {sorted(want)}")
    perms = by_type.get("AWS::Lambda::Permission", [])
    for f in FUNCTIONS:
        if not any(res[x]["Properties"]["FunctionName"] == {"Ref": f} for x in perms):
            fail(f"{f}: no AWS::Lambda::Permission for API Gateway")

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
    want_mapped = sorted(f for f, (_, _, q) in FUNCTIONS.items() if q)
    if sorted(mapped) != want_mapped:
        fail(f"SQS mappings for {sorted(mapped)}, want {want_mapped}")

    if with_kms:
        # The parameter is set, but the transform keeps the condition for
        # CloudFormation to evaluate.
        if "HasKmsKey" not in cfn.get("Conditions", {}):
            fail("condition HasKmsKey missing")
    return len(res)


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


def main():
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    # The translator derives the partition from the region; no AWS call is made.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    path = sys.argv[1] if len(sys.argv) > 1 else TEMPLATE
    with open(path, encoding="utf-8") as f:
        text = f.read()
    cases = [
        ("without KMS key", {"WxpaySecretArn": SECRET_ARN}, False),
        ("with KMS key", {"WxpaySecretArn": SECRET_ARN, "KmsKeyArn": KMS_ARN, "ReservedConcurrency": "0"}, True),
    ]
    failed = False
    for label, params, with_kms in cases:
        try:
            cfn = transform(packaged(text), params, OfflinePolicyLoader())
            n = check(cfn, with_kms)
            print(f"ok   sam transform ({label}): {n} resources")
        except Exception as e:  # noqa: BLE001 - report any failure and exit non-zero
            failed = True
            print(f"FAIL sam transform ({label}): {type(e).__name__}: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
