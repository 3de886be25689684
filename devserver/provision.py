"""Create the template's data resources in moto: tables, queues, buckets, secrets, topics.

Order matters like a CloudFormation deployment: queues before the bucket notifications
that target them. Physical ids only moto knows (secret ARNs with their random suffix,
table stream ARNs with their timestamp label) are recorded on the Template so later
`Ref`/`GetAtt` resolve to them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
from botocore.config import Config

from devserver import DEV_JWT_SECRET, REGION
from devserver.template import Template

__all__ = ["DEV_EMAIL_IDENTITY", "aws_client", "provision"]

log = logging.getLogger("devserver.provision")

DEV_EMAIL_IDENTITY = "no-reply@switchboard.local"

# Table properties the CreateTable API takes as is.
_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
    "SSESpecification",
    "TableClass",
)

# SQS attributes CloudFormation exposes as properties (everything is a string in the API).
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "SqsManagedSseEnabled",
)


def aws_client(service: str, endpoint: str) -> Any:
    """A boto3 client aimed at moto. Account-id endpoint mode is off: moto's streams need it."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's documented dummy credentials
        config=Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 2}),
    )


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def provision(tpl: Template, moto_url: str) -> dict[str, str]:
    """Create every supported resource; returns logical id -> physical name/URL/ARN."""
    created: dict[str, str] = {}
    for lid, props in tpl.of_type("AWS::SecretsManager::Secret"):
        created[lid] = _secret(tpl, moto_url, lid, tpl.resolve(props))
    for lid, props in tpl.of_type("AWS::DynamoDB::Table"):
        created[lid] = _table(tpl, moto_url, lid, tpl.resolve(props))
    for lid, props in tpl.of_type("AWS::Serverless::SimpleTable"):
        created[lid] = _simple_table(tpl, moto_url, lid, tpl.resolve(props))
    # moto checks that a redrive target exists: create every queue, then set redrives.
    queues = [(lid, tpl.resolve(props)) for lid, props in tpl.of_type("AWS::SQS::Queue")]
    for lid, props in queues:
        created[lid] = _queue(tpl, moto_url, lid, props)
    for lid, props in queues:
        _redrive(moto_url, created[lid], props)
    for lid, _props in tpl.of_type("AWS::SNS::Topic"):
        sns = aws_client("sns", moto_url)
        arn = sns.create_topic(Name=tpl.physical_name(lid))["TopicArn"]
        tpl.set_physical(lid, arn, TopicArn=arn, TopicName=tpl.physical_name(lid))
        created[lid] = arn
    for lid, props in tpl.of_type("AWS::S3::Bucket"):
        created[lid] = _bucket(tpl, moto_url, lid, tpl.resolve(props))
    _ses(moto_url, tpl)
    return created


def _secret(tpl: Template, moto_url: str, lid: str, props: dict[str, Any]) -> str:
    client = aws_client("secretsmanager", moto_url)
    name = tpl.physical_name(lid)
    if "SecretString" in props:
        value = str(props["SecretString"])
    else:
        # GenerateSecretString: a FIXED dev value so `python -m devserver token` mints
        # tokens the authorizer accepts. With GenerateStringKey, AWS puts the generated
        # value into the JSON template under that key.
        gen = props.get("GenerateSecretString") or {}
        template_json = gen.get("SecretStringTemplate")
        key = gen.get("GenerateStringKey")
        if template_json and key:
            doc = json.loads(template_json)
            doc[key] = DEV_JWT_SECRET
            value = json.dumps(doc)
        else:
            value = DEV_JWT_SECRET
    arn: str = client.create_secret(Name=name, SecretString=value)["ARN"]
    tpl.set_physical(lid, arn, Id=arn, Arn=arn)
    log.info("secret   %s -> %s", lid, arn)
    return arn


def _table(tpl: Template, moto_url: str, lid: str, props: dict[str, Any]) -> str:
    client = aws_client("dynamodb", moto_url)
    name = tpl.physical_name(lid)
    kwargs: dict[str, Any] = {k: props[k] for k in _TABLE_KEYS if k in props}
    kwargs.setdefault("BillingMode", "PAY_PER_REQUEST")
    if "StreamSpecification" in kwargs:
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": kwargs["StreamSpecification"]["StreamViewType"],
        }
    if "SSESpecification" in kwargs:
        kwargs["SSESpecification"] = {"Enabled": bool(kwargs["SSESpecification"].get("SSEEnabled"))}
    gsis = []
    for raw_gsi in props.get("GlobalSecondaryIndexes") or []:
        gsi = {k: v for k, v in raw_gsi.items() if k != "ContributorInsightsSpecification"}
        if kwargs["BillingMode"] == "PROVISIONED":
            gsi.setdefault("ProvisionedThroughput", kwargs.get("ProvisionedThroughput"))
        gsis.append(gsi)
    if gsis:
        kwargs["GlobalSecondaryIndexes"] = gsis
    desc = client.create_table(TableName=name, **kwargs)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled") in (True, "true"):
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    attrs = {"Arn": desc["TableArn"]}
    if desc.get("LatestStreamArn"):
        attrs["StreamArn"] = desc["LatestStreamArn"]
    tpl.set_physical(lid, name, **attrs)
    log.info("table    %s -> %s%s", lid, name, " (stream)" if "StreamArn" in attrs else "")
    return name


def _simple_table(tpl: Template, moto_url: str, lid: str, props: dict[str, Any]) -> str:
    pk = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    ddb_type = {"String": "S", "Number": "N", "Binary": "B"}[pk.get("Type", "String")]
    return _table(
        tpl,
        moto_url,
        lid,
        {
            "AttributeDefinitions": [{"AttributeName": pk["Name"], "AttributeType": ddb_type}],
            "KeySchema": [{"AttributeName": pk["Name"], "KeyType": "HASH"}],
        },
    )


def _queue(tpl: Template, moto_url: str, lid: str, props: dict[str, Any]) -> str:
    client = aws_client("sqs", moto_url)
    name = tpl.physical_name(lid)
    attributes = {k: _as_str(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    url: str = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    tpl.set_physical(lid, url, QueueUrl=url, QueueName=name)
    log.info("queue    %s -> %s", lid, name)
    return url


def _redrive(moto_url: str, url: str, props: dict[str, Any]) -> None:
    attributes = {}
    for key in ("RedrivePolicy", "RedriveAllowPolicy"):
        if key in props:
            policy = dict(props[key])
            if "maxReceiveCount" in policy:
                policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
            attributes[key] = json.dumps(policy)
    if attributes:
        aws_client("sqs", moto_url).set_queue_attributes(QueueUrl=url, Attributes=attributes)


def _bucket(tpl: Template, moto_url: str, lid: str, props: dict[str, Any]) -> str:
    client = aws_client("s3", moto_url)
    name = tpl.physical_name(lid)
    client.create_bucket(Bucket=name)
    cors = props.get("CorsConfiguration")
    if cors:
        client.put_bucket_cors(
            Bucket=name,
            CORSConfiguration={"CORSRules": [_cors_rule(rule) for rule in cors["CorsRules"]]},
        )
    lifecycle = props.get("LifecycleConfiguration")
    if lifecycle:
        log.debug("bucket %s: LifecycleConfiguration ignored locally", lid)
    notif = props.get("NotificationConfiguration") or {}
    queue_configs = [
        _notification(cfg, "QueueArn", "Queue") for cfg in notif.get("QueueConfigurations") or []
    ]
    topic_configs = [
        _notification(cfg, "TopicArn", "Topic") for cfg in notif.get("TopicConfigurations") or []
    ]
    if queue_configs or topic_configs:
        config: dict[str, Any] = {}
        if queue_configs:
            config["QueueConfigurations"] = queue_configs
        if topic_configs:
            config["TopicConfigurations"] = topic_configs
        # moto sends an s3:TestEvent to each target first, as S3 does.
        client.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=config)
    tpl.set_physical(lid, name)
    log.info("bucket   %s -> %s", lid, name)
    return name


# CloudFormation's CorsRule property names -> the PutBucketCors API's.
_CORS_KEYS = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rule.items():
        api_key = _CORS_KEYS.get(key, key)
        if api_key == "MaxAgeSeconds":
            out[api_key] = int(value)
        elif api_key != "ID" and isinstance(value, str):
            out[api_key] = [v.strip() for v in value.split(",")]  # a CommaDelimitedList
        else:
            out[api_key] = value
    return out


def _notification(cfg: dict[str, Any], arn_key: str, cfn_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {arn_key: cfg[cfn_key], "Events": [cfg["Event"]]}
    rules = ((cfg.get("Filter") or {}).get("S3Key") or {}).get("Rules")
    if rules:
        out["Filter"] = {"Key": {"FilterRules": rules}}
    return out


def _ses(moto_url: str, tpl: Template) -> None:
    # SES v1 send_email needs a verified identity in moto (SESv2 does not).
    client = aws_client("ses", moto_url)
    client.verify_email_identity(EmailAddress=DEV_EMAIL_IDENTITY)
    for lid, props in tpl.of_type("AWS::SES::EmailIdentity"):
        identity = str(tpl.resolve(props.get("EmailIdentity", "")))
        if "@" in identity:
            client.verify_email_identity(EmailAddress=identity)
        elif identity:
            client.verify_domain_identity(Domain=identity)
        log.info("ses      %s -> %s", lid, identity)
