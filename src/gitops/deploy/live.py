"""Read back what runs: the resources the safety promises rest on, compared with the template, and repaired.

A deployed template says what CloudFormation was asked for, not what exists now. For the resources
the promises rest on this module reads the live resource through its own API and compares the
properties that matter (one reader per resource type, in READERS):

- VPC endpoints: one per service the template declares, in its VPC, of its type;
- subnets: no public IP on launch;
- security groups: egress exactly as the template allows (no open egress CloudFormation or
  someone else added);
- buckets: the public access block and default encryption;
- KMS keys: rotation;
- SageMaker endpoints: in service, on the template's endpoint config, with its variants'
  models and instance counts.

Each reading that differs carries a repair: the API calls that bring the resource back to the
template (re-create what was deleted, reset what was changed). `gitops deploy` applies them on
the embedded target, where CloudFormation's own drift handling does not exist; on AWS it deploys
with a drift-aware change set instead (DeploymentMode=REVERT_DRIFT), and `detect_drift` reports
CloudFormation's own drift detection with property paths.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from gitops.deploy.aws import error_code
from gitops.errors import GitopsError

_OK_ENDPOINT_STATES = ("available", "pending", "pendingAcceptance")
_SKIP = object()


@dataclass
class Reading:
    """One live resource compared with its template."""

    kind: str
    name: str
    ok: bool
    detail: str
    repair: Callable[[], str] | None = field(default=None, repr=False, compare=False)


@dataclass
class LiveContext:
    """A stack's template, its resources' physical ids, and the clients to read them."""

    stack_name: str
    template: dict
    physical: dict[str, str]  # logical id -> physical id
    clients: Any  # deploy.aws.StageClients-like: .ec2 .s3 .kms .sagemaker
    region: str
    account: str
    _cache: dict[str, Any] = field(default_factory=dict)

    def resolve(self, node: Any) -> Any:
        """Ref / Fn::GetAtt / Fn::Join / Fn::Sub(simple) resolved against this stack's live ids; else _SKIP."""
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: self.resolve(v) for k, v in node.items()}
        key, arg = next(iter(node.items()))
        if key == "Ref":
            pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::URLSuffix": "amazonaws.com"}
            pseudo["AWS::Partition"] = "aws"
            return pseudo.get(arg, self.physical.get(arg, _SKIP))
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            resource = self.template.get("Resources", {}).get(logical, {})
            if attribute in ("GroupId",) or (resource.get("Type"), attribute) == ("AWS::KMS::Key", "KeyId"):
                return self.physical.get(logical, _SKIP)
            if attribute in ("EndpointConfigName", "ModelName") and logical in self.physical:
                return self.physical[logical].split("/")[-1]  # the physical id is the ARN (or the name)
            return _SKIP
        if key == "Fn::Join":
            separator, parts = arg
            resolved = [self.resolve(p) for p in parts]
            return _SKIP if any(p is _SKIP for p in resolved) else separator.join(str(p) for p in resolved)
        return _SKIP

    def name(self, logical: str) -> str:
        return f"{self.stack_name}/{logical}"


Reader = Callable[[LiveContext, str, dict, str], Reading | None]


# --------------------------------------------------------------------------- VPC endpoints


def _vpc_endpoints(ctx: LiveContext, vpc_id: str) -> list[dict]:
    key = f"vpce:{vpc_id}"
    if key not in ctx._cache:
        pages = ctx.clients.ec2.get_paginator("describe_vpc_endpoints").paginate(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
        )
        ctx._cache[key] = [e for page in pages for e in page.get("VpcEndpoints", [])]
    return ctx._cache[key]


def read_vpc_endpoint(ctx: LiveContext, logical: str, props: dict, physical: str) -> Reading | None:
    vpc_id, service = ctx.resolve(props.get("VpcId")), ctx.resolve(props.get("ServiceName"))
    if vpc_id is _SKIP or service is _SKIP:
        return Reading("vpc-endpoint", ctx.name(logical), True, "properties not resolvable here: not compared")
    kind = props.get("VpcEndpointType", "Gateway")
    found = [
        e
        for e in _vpc_endpoints(ctx, vpc_id)
        if e.get("ServiceName") == service and e.get("State", "available") in _OK_ENDPOINT_STATES
    ]
    if found and found[0].get("VpcEndpointType", kind) == kind:
        return Reading("vpc-endpoint", ctx.name(logical), True, f"{found[0]['VpcEndpointId']} {service} ({kind})")

    def recreate() -> str:
        request: dict[str, Any] = {"VpcId": vpc_id, "ServiceName": service, "VpcEndpointType": kind}
        for prop in ("SubnetIds", "SecurityGroupIds", "RouteTableIds"):
            values = ctx.resolve(props.get(prop) or [])
            if values and _SKIP not in values:
                request[prop] = values
        if kind == "Interface":
            request["PrivateDnsEnabled"] = bool(props.get("PrivateDnsEnabled", True))
        created = ctx.clients.ec2.create_vpc_endpoint(**request)["VpcEndpoint"]["VpcEndpointId"]
        ctx._cache.pop(f"vpce:{vpc_id}", None)
        return f"re-created VPC endpoint {service} in {vpc_id} ({created})"

    what = f"of type {found[0].get('VpcEndpointType')}, not {kind}" if found else "missing"
    return Reading("vpc-endpoint", ctx.name(logical), False, f"{service} in {vpc_id}: {what}", recreate)


# --------------------------------------------------------------------------- subnets


def read_subnet(ctx: LiveContext, logical: str, props: dict, physical: str) -> Reading | None:
    expected = bool(props.get("MapPublicIpOnLaunch", False))
    try:
        subnet = ctx.clients.ec2.describe_subnets(SubnetIds=[physical])["Subnets"][0]
    except ClientError as exc:
        return Reading("subnet", ctx.name(logical), False, f"{physical}: {error_code(exc)}")
    actual = bool(subnet.get("MapPublicIpOnLaunch", False))
    if actual == expected:
        return Reading("subnet", ctx.name(logical), True, f"{physical} MapPublicIpOnLaunch={actual}")

    def reset() -> str:
        ctx.clients.ec2.modify_subnet_attribute(SubnetId=physical, MapPublicIpOnLaunch={"Value": expected})
        return f"set MapPublicIpOnLaunch={expected} on {physical}"

    detail = f"{physical} MapPublicIpOnLaunch: expected {expected} → actual {actual}"
    return Reading("subnet", ctx.name(logical), False, detail, reset)


# --------------------------------------------------------------------------- security groups


def _rule_key(protocol: Any, from_port: Any, to_port: Any, target: str) -> tuple[str, int | None, int | None, str]:
    proto = str(protocol).lower()
    proto = {"6": "tcp", "17": "udp", "1": "icmp"}.get(proto, proto)
    if proto == "-1":
        return ("-1", None, None, target)
    return (proto, None if from_port is None else int(from_port), None if to_port is None else int(to_port), target)


def _live_egress(group: dict) -> set[tuple]:
    rules = set()
    for perm in group.get("IpPermissionsEgress", []):
        args = (perm.get("IpProtocol"), perm.get("FromPort"), perm.get("ToPort"))
        for r in perm.get("IpRanges", []):
            rules.add(_rule_key(*args, r["CidrIp"]))
        for r in perm.get("Ipv6Ranges", []):
            rules.add(_rule_key(*args, r["CidrIpv6"]))
        for r in perm.get("UserIdGroupPairs", []):
            rules.add(_rule_key(*args, r["GroupId"]))
        for r in perm.get("PrefixListIds", []):
            rules.add(_rule_key(*args, r["PrefixListId"]))
    return rules


def _template_egress(ctx: LiveContext, logical: str, props: dict) -> set[tuple] | None:
    """The egress the template allows this group (inline and standalone rules); None if not resolvable."""
    rules: list[dict] = list(props.get("SecurityGroupEgress") or [])
    for res in ctx.template.get("Resources", {}).values():
        if res.get("Type") == "AWS::EC2::SecurityGroupEgress":
            rule = res.get("Properties", {})
            if ctx.resolve(rule.get("GroupId")) == ctx.physical.get(logical):
                rules.append(rule)
    if not rules:  # CloudFormation's default for a group declared without egress: all traffic
        return {_rule_key("-1", None, None, "0.0.0.0/0")}
    keys = set()
    for rule in rules:
        target = next(
            (
                ctx.resolve(rule[k])
                for k in ("CidrIp", "CidrIpv6", "DestinationSecurityGroupId", "DestinationPrefixListId")
                if k in rule
            ),
            _SKIP,
        )
        if target is _SKIP:
            return None
        keys.add(_rule_key(rule.get("IpProtocol"), rule.get("FromPort"), rule.get("ToPort"), str(target)))
    return keys


def _permission(rule: tuple) -> dict:
    proto, from_port, to_port, target = rule
    perm: dict[str, Any] = {"IpProtocol": proto}
    if proto != "-1":
        perm |= {"FromPort": from_port, "ToPort": to_port}
    if target.startswith("sg-"):
        perm["UserIdGroupPairs"] = [{"GroupId": target}]
    elif target.startswith("pl-"):
        perm["PrefixListIds"] = [{"PrefixListId": target}]
    elif ":" in target:
        perm["Ipv6Ranges"] = [{"CidrIpv6": target}]
    else:
        perm["IpRanges"] = [{"CidrIp": target}]
    return perm


def _show(rule: tuple) -> str:
    proto, from_port, to_port, target = rule
    ports = "all" if proto == "-1" else (f"{from_port}" if from_port == to_port else f"{from_port}-{to_port}")
    return f"{'all' if proto == '-1' else proto} {ports} → {target}"


def read_security_group(ctx: LiveContext, logical: str, props: dict, physical: str) -> Reading | None:
    expected = _template_egress(ctx, logical, props)
    try:
        group = ctx.clients.ec2.describe_security_groups(GroupIds=[physical])["SecurityGroups"][0]
    except ClientError as exc:
        return Reading("security-group", ctx.name(logical), False, f"{physical}: {error_code(exc)}")
    if expected is None:
        return Reading("security-group", ctx.name(logical), True, f"{physical}: egress not resolvable: not compared")
    actual = _live_egress(group)
    extra, missing = sorted(actual - expected, key=str), sorted(expected - actual, key=str)
    if not extra and not missing:
        return Reading("security-group", ctx.name(logical), True, f"{physical}: egress as the template ({len(actual)})")

    def reset() -> str:
        if extra:
            ctx.clients.ec2.revoke_security_group_egress(
                GroupId=physical, IpPermissions=[_permission(r) for r in extra]
            )
        if missing:
            ctx.clients.ec2.authorize_security_group_egress(
                GroupId=physical, IpPermissions=[_permission(r) for r in missing]
            )
        return f"reset egress of {physical} (revoked {len(extra)}, authorized {len(missing)})"

    parts = [f"egress not in the template: {', '.join(map(_show, extra))}"] if extra else []
    parts += [f"egress missing: {', '.join(map(_show, missing))}"] if missing else []
    return Reading("security-group", ctx.name(logical), False, f"{physical}: {'; '.join(parts)}", reset)


# --------------------------------------------------------------------------- buckets


_BLOCK_FLAGS = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")


def read_bucket(ctx: LiveContext, logical: str, props: dict, physical: str) -> Reading | None:
    s3 = ctx.clients.s3
    problems: list[str] = []
    repairs: list[Callable[[], str]] = []
    wanted_block = props.get("PublicAccessBlockConfiguration")
    if wanted_block:
        want = {flag: bool(wanted_block.get(flag, False)) for flag in _BLOCK_FLAGS}
        try:
            have = s3.get_public_access_block(Bucket=physical)["PublicAccessBlockConfiguration"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            have = {}
        off = [flag for flag in _BLOCK_FLAGS if bool(have.get(flag, False)) != want[flag]]
        if off:
            problems.append(f"public access block {', '.join(off)} not as the template")

            def put_block() -> str:
                s3.put_public_access_block(Bucket=physical, PublicAccessBlockConfiguration=want)
                return f"put the public access block on {physical}"

            repairs.append(put_block)
    wanted_sse = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
    if wanted_sse:
        default = wanted_sse[0].get("ServerSideEncryptionByDefault", {})
        algorithm = default.get("SSEAlgorithm")
        try:
            rules = s3.get_bucket_encryption(Bucket=physical)["ServerSideEncryptionConfiguration"]["Rules"]
            have_algorithm = rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
        except ClientError as exc:
            if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            have_algorithm = None
        if have_algorithm != algorithm:
            problems.append(f"default encryption: expected {algorithm} → actual {have_algorithm}")
            key = ctx.resolve(default.get("KMSMasterKeyID"))
            rule: dict[str, Any] = {"SSEAlgorithm": algorithm}
            if key is not _SKIP and key is not None:
                rule["KMSMasterKeyID"] = key
            config = {"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]}

            def put_encryption() -> str:
                s3.put_bucket_encryption(Bucket=physical, ServerSideEncryptionConfiguration=config)
                return f"put default encryption {algorithm} on {physical}"

            repairs.append(put_encryption)
    if not wanted_block and not wanted_sse:
        return None
    if not problems:
        return Reading("bucket", ctx.name(logical), True, f"{physical}: public access block and encryption as declared")
    return Reading(
        "bucket",
        ctx.name(logical),
        False,
        f"{physical}: {'; '.join(problems)}",
        lambda: "; ".join(r() for r in repairs),
    )


# --------------------------------------------------------------------------- KMS keys


def read_kms_key(ctx: LiveContext, logical: str, props: dict, physical: str) -> Reading | None:
    expected = bool(props.get("EnableKeyRotation", False))
    try:
        actual = bool(ctx.clients.kms.get_key_rotation_status(KeyId=physical)["KeyRotationEnabled"])
    except ClientError as exc:
        return Reading("kms-key", ctx.name(logical), False, f"{physical}: {error_code(exc)}")
    if actual == expected:
        return Reading("kms-key", ctx.name(logical), True, f"{physical} rotation {'on' if actual else 'off'}")

    def reset() -> str:
        call = ctx.clients.kms.enable_key_rotation if expected else ctx.clients.kms.disable_key_rotation
        call(KeyId=physical)
        return f"{'enabled' if expected else 'disabled'} rotation of {physical}"

    return Reading(
        "kms-key", ctx.name(logical), False, f"{physical} rotation: expected {expected} → actual {actual}", reset
    )


# --------------------------------------------------------------------------- SageMaker endpoints


def read_endpoint(ctx: LiveContext, logical: str, props: dict, physical: str) -> Reading | None:
    sm = ctx.clients.sagemaker
    name = physical.split(":endpoint/")[-1]
    config_name = ctx.resolve(props.get("EndpointConfigName"))
    try:
        found = sm.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if error_code(exc) != "ValidationException":  # SageMaker's code for "Could not find endpoint"
            raise

        def recreate() -> str:
            sm.create_endpoint(EndpointName=name, EndpointConfigName=config_name)
            return f"re-created endpoint {name} on {config_name}"

        can = config_name is not _SKIP
        return Reading("endpoint", ctx.name(logical), False, f"{name}: missing", recreate if can else None)
    status = found.get("EndpointStatus")
    problems = [] if status == "InService" else [f"status {status} {found.get('FailureReason', '')}".strip()]
    if config_name is not _SKIP and found.get("EndpointConfigName") != config_name:
        problems.append(f"endpoint config: expected {config_name} → actual {found.get('EndpointConfigName')}")
    config_logical = next(
        (lid for lid, p in ctx.physical.items() if p == config_name or p.endswith(f"/{config_name}")), None
    )
    config_props = ctx.template.get("Resources", {}).get(config_logical or "", {}).get("Properties", {})
    if config_props and not problems:
        live = sm.describe_endpoint_config(EndpointConfigName=found["EndpointConfigName"])["ProductionVariants"]
        have = {v["VariantName"]: (v.get("ModelName"), v.get("InitialInstanceCount")) for v in live}
        for variant in config_props.get("ProductionVariants", []):
            model = ctx.resolve(variant.get("ModelName"))
            want = (None if model is _SKIP else model, variant.get("InitialInstanceCount"))
            got = have.get(variant.get("VariantName"))
            if got is None:
                problems.append(f"variant {variant.get('VariantName')} missing")
            elif (want[0] is not None and got[0] != want[0]) or (want[1] is not None and got[1] != want[1]):
                problems.append(f"variant {variant.get('VariantName')}: expected {want} → actual {got}")
    if problems:
        return Reading("endpoint", ctx.name(logical), False, f"{name}: {'; '.join(problems)}")
    return Reading("endpoint", ctx.name(logical), True, f"{name} InService on {found.get('EndpointConfigName')}")


READERS: dict[str, Reader] = {
    "AWS::EC2::VPCEndpoint": read_vpc_endpoint,
    "AWS::EC2::Subnet": read_subnet,
    "AWS::EC2::SecurityGroup": read_security_group,
    "AWS::S3::Bucket": read_bucket,
    "AWS::KMS::Key": read_kms_key,
    "AWS::SageMaker::Endpoint": read_endpoint,
}


def stack_physical_ids(cfn: Any, stack_name: str) -> dict[str, str]:
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
    return {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for page in pages
        for r in page.get("StackResourceSummaries", [])
        if r.get("ResourceStatus") != "DELETE_COMPLETE"
    }


def read_back(clients: Any, stack_name: str, template: dict, *, region: str, account: str) -> list[Reading]:
    """Every resource of `template` that a reader knows, read back from the stack's live resources."""
    physical = stack_physical_ids(clients.cfn, stack_name)
    ctx = LiveContext(stack_name, template, physical, clients, region, account)
    readings = []
    for logical, resource in sorted(template.get("Resources", {}).items()):
        reader = READERS.get(resource.get("Type", ""))
        if reader is None:
            continue
        if not physical.get(logical):
            if resource.get("Condition"):
                continue  # its condition is false in this stack: CloudFormation did not create it
            readings.append(Reading(resource["Type"], ctx.name(logical), False, "not in the stack's resources"))
            continue
        reading = reader(ctx, logical, resource.get("Properties") or {}, physical[logical])
        if reading is not None:
            readings.append(reading)
    return readings


# --------------------------------------------------------------------------- asset content


def object_sha256(s3: Any, bucket: str, key: str) -> tuple[str, str, dict]:
    """(sha256 hex of the object's bytes, how it was learned, the HEAD response); never user metadata.

    S3's own ChecksumSHA256 (asked for with ChecksumMode) is computed by S3 from the bytes it
    stored; a composite checksum of a multipart upload ("...-N") or none at all means the bytes
    are downloaded and hashed here. Metadata anyone can set with the object is not looked at.
    """
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    checksum = head.get("ChecksumSHA256")
    if checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        return base64.b64decode(checksum).hex(), "S3's ChecksumSHA256", head
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest(), "hashed from its bytes", head


# --------------------------------------------------------------------------- CloudFormation drift (AWS)


class DriftDetectionFailed(GitopsError):
    hint = "see the stack's drift status in the CloudFormation console (the verify role needs DetectStackDrift)"


@dataclass(frozen=True)
class ResourceDrift:
    logical_id: str
    resource_type: str
    status: str  # MODIFIED | DELETED
    differences: tuple[str, ...]  # "PropertyPath: expected → actual (DIFFERENCE_TYPE)"

    def describe(self) -> str:
        what = "; ".join(self.differences[:3]) + (" …" if len(self.differences) > 3 else "")
        return f"{self.logical_id} ({self.resource_type}) {self.status}" + (f": {what}" if what else "")


def detect_drift(
    cfn: Any, stack_name: str, *, delay: float = 5.0, timeout: float = 600.0
) -> tuple[list[ResourceDrift], str | None]:
    """CloudFormation's own drift detection of one stack: (drifted resources with property paths, why incomplete).

    A detection that failed for some resources (DETECTION_FAILED, e.g. one the caller cannot read)
    still reports the others: the reason comes back as the second value, for verify to show.
    """
    detection = cfn.detect_stack_drift(StackName=stack_name)["StackDriftDetectionId"]
    deadline = time.monotonic() + timeout
    while True:
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
        if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
            break
        if time.monotonic() > deadline:
            raise DriftDetectionFailed(f"{stack_name}: drift detection still running after {timeout:.0f}s")
        time.sleep(delay)
    incomplete = None
    if status["DetectionStatus"] == "DETECTION_FAILED":
        incomplete = status.get("DetectionStatusReason") or "no reason given"
    drifts: list[ResourceDrift] = []
    request: dict[str, Any] = {"StackName": stack_name, "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]}
    while True:  # not a paginator in botocore: NextToken by hand
        page = cfn.describe_stack_resource_drifts(**request)
        for drift in page.get("StackResourceDrifts", []):
            differences = tuple(
                f"{d['PropertyPath']}: {d.get('ExpectedValue')} → {d.get('ActualValue')} ({d['DifferenceType']})"
                for d in drift.get("PropertyDifferences", [])
            )
            drifts.append(
                ResourceDrift(
                    drift["LogicalResourceId"], drift["ResourceType"], drift["StackResourceDriftStatus"], differences
                )
            )
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    return drifts, incomplete
