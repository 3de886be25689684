"""template.yaml, read the way CloudFormation + SAM would, but resolved to LOCAL values.

- A YAML loader that turns CloudFormation short tags (`!Ref`, `!Sub`, `!GetAtt`, ...) into
  their long form (`{"Ref": ...}`, `{"Fn::Sub": ...}`), as the service does.
- Parameters (defaults, overridable), Conditions, SAM `Globals.Function` merged into every
  `AWS::Serverless::Function` with SAM's rules (maps merged, lists appended, scalars
  overridden by the function).
- Intrinsics resolved to what the local stack really uses: table names, moto queue URLs,
  secret ARNs moto generated, stream ARNs moto generated, and the devserver's own
  management endpoint in place of `https://<api>.execute-api.<region>.amazonaws.com/<stage>`.

`python -m devserver.template --transform template.yaml` runs the real SAM transform
(samtranslator, offline) and prints the CloudFormation JSON: `make validate` uses it.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devserver import ACCOUNT_ID, PARTITION, REGION, STACK_NAME, URL_SUFFIX

__all__ = [
    "FunctionSpec",
    "Template",
    "TemplateError",
    "load_yaml",
]

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"

# Short tags whose long form is not simply "Fn::<Tag>".
_SPECIAL_TAGS = {"Ref": "Ref", "Condition": "Condition"}


class TemplateError(Exception):
    """The template cannot be understood (or resolved) locally."""


class CfnLoader(yaml.SafeLoader):
    """SafeLoader + CloudFormation short-form intrinsic tags."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    key = _SPECIAL_TAGS.get(tag_suffix, f"Fn::{tag_suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        # `!GetAtt Res.Attr` is a dotted string in short form, a two-item list in long form.
        if tag_suffix == "GetAtt" and isinstance(value, str):
            res, _, attr = value.partition(".")
            value = [res, attr]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported node for !{tag_suffix}")
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    if not isinstance(doc, dict):
        raise TemplateError(f"{path}: not a template (top level is not a mapping)")
    return doc


def _merge_globals(glob: Any, own: Any) -> Any:
    """SAM's Globals merge: maps merge recursively, lists append, scalars: function wins."""
    if isinstance(glob, dict) and isinstance(own, dict):
        merged = dict(glob)
        for key, value in own.items():
            merged[key] = _merge_globals(glob[key], value) if key in glob else value
        return merged
    if isinstance(glob, list) and isinstance(own, list):
        return [*glob, *own]
    return own


def _to_env_string(value: Any) -> str:
    # CloudFormation stringifies environment values; booleans become "true"/"false".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


@dataclass
class FunctionSpec:
    """What the local "Lambda service" needs to run one AWS::Serverless::Function."""

    logical_id: str
    name: str
    arn: str
    code_uri: Path
    handler: str
    timeout: float
    memory_size: int
    environment: dict[str, str]
    layer_paths: list[Path]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


class Template:
    """A loaded template plus the local physical identity of each resource."""

    def __init__(
        self,
        path: Path,
        parameter_overrides: Mapping[str, str] | None = None,
        stack_name: str = STACK_NAME,
    ) -> None:
        self.path = path.resolve()
        self.base_dir = self.path.parent
        self.stack_name = stack_name
        self.raw = load_yaml(self.path)
        self.moto_url = ""
        # Where WebSocket API management endpoints point locally, e.g. http://127.0.0.1:8080
        self.ws_base_url = ""
        # Physical ids/attributes that only moto knows (secret ARNs, stream ARNs).
        self._physical_ref: dict[str, str] = {}
        self._physical_attrs: dict[str, dict[str, str]] = {}

        self.parameters = self._parameter_values(parameter_overrides or {})
        self.conditions: dict[str, bool] = {}
        raw_conditions = self.raw.get("Conditions") or {}
        for name in raw_conditions:
            self._condition(name, raw_conditions, set())

        glob = (self.raw.get("Globals") or {}).get("Function") or {}
        self.resources: dict[str, dict[str, Any]] = {}
        for lid, raw_res in (self.raw.get("Resources") or {}).items():
            cond = raw_res.get("Condition")
            if cond is not None and not self.conditions.get(cond, False):
                continue
            res = copy.deepcopy(raw_res)
            if res.get("Type") == SERVERLESS_FUNCTION and glob:
                res["Properties"] = _merge_globals(copy.deepcopy(glob), res.get("Properties") or {})
            self.resources[lid] = res

    # ------------------------------------------------------------------ parameters
    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared = self.raw.get("Parameters") or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value: Any = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default: pass --param {name}=...")
            ptype = str(spec.get("Type", "String"))
            if ptype.startswith("List<") or ptype == "CommaDelimitedList":
                value = value if isinstance(value, list) else str(value).split(",")
            else:
                value = _to_env_string(value)  # Ref of a Number parameter is a string too
            values[name] = value
        return values

    # ------------------------------------------------------------------ conditions
    def _condition(self, name: str, raw: Mapping[str, Any], seen: set[str]) -> bool:
        if name in self.conditions:
            return self.conditions[name]
        if name in seen:
            raise TemplateError(f"condition {name} refers to itself")
        if name not in raw:
            raise TemplateError(f"unknown condition {name}")
        value = bool(self._eval_condition(raw[name], raw, {*seen, name}))
        self.conditions[name] = value
        return value

    def _eval_condition(self, expr: Any, raw: Mapping[str, Any], seen: set[str]) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return self._condition(str(arg), raw, seen)
            if key == "Fn::Equals":
                left, right = (self._eval_condition(a, raw, seen) for a in arg)
                return _to_env_string(left) == _to_env_string(right)
            if key == "Fn::Not":
                return not self._eval_condition(arg[0], raw, seen)
            if key == "Fn::And":
                return all(self._eval_condition(a, raw, seen) for a in arg)
            if key == "Fn::Or":
                return any(self._eval_condition(a, raw, seen) for a in arg)
        return self.resolve(expr)

    # ------------------------------------------------------------------ physical ids
    def set_physical(self, logical_id: str, ref: str | None = None, **attrs: str) -> None:
        """Record what moto made of a resource (e.g. a secret's ARN, a table's StreamArn)."""
        if ref is not None:
            self._physical_ref[logical_id] = ref
        self._physical_attrs.setdefault(logical_id, {}).update(attrs)

    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"unknown resource {logical_id}") from None

    def resource_type(self, logical_id: str) -> str:
        return str(self.resource(logical_id).get("Type", ""))

    def of_type(self, *types: str) -> list[tuple[str, dict[str, Any]]]:
        """(logical id, raw Properties) of every active resource of the given types."""
        return [
            (lid, res.get("Properties") or {})
            for lid, res in self.resources.items()
            if res.get("Type") in types
        ]

    def physical_name(self, logical_id: str) -> str:
        """The name a named resource gets locally: its explicit name, else stack-LogicalId."""
        rtype = self.resource_type(logical_id)
        props = self.resource(logical_id).get("Properties") or {}
        explicit = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::Serverless::SimpleTable": "TableName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::SecretsManager::Secret": "Name",
            "AWS::SNS::Topic": "TopicName",
            SERVERLESS_FUNCTION: "FunctionName",
            "AWS::Lambda::Function": "FunctionName",
        }.get(rtype)
        if explicit and props.get(explicit) is not None:
            return str(self.resolve(props[explicit]))
        if rtype == "AWS::S3::Bucket":
            # Bucket names are lower case DNS labels.
            return f"{self.stack_name}-{logical_id}".lower()
        if rtype in (SERVERLESS_FUNCTION, "AWS::Lambda::Function"):
            return logical_id
        name = f"{self.stack_name}-{logical_id}"
        if rtype == "AWS::SQS::Queue" and self.resolve(props.get("FifoQueue", False)) in (
            True,
            "true",
        ):
            name += ".fifo"  # FIFO queue names must end in .fifo
        return name

    def _ref(self, name: str) -> Any:  # noqa: PLR0911 - one return per resource type
        pseudo: dict[str, Any] = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local"
            ),
            "AWS::NoValue": None,
            "AWS::NotificationARNs": [],
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self._physical_ref:
            return self._physical_ref[name]
        rtype = self.resource_type(name)
        if rtype in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable", "AWS::S3::Bucket"):
            return self.physical_name(name)
        if rtype in (SERVERLESS_FUNCTION, "AWS::Lambda::Function"):
            return self.physical_name(name)
        if rtype == "AWS::SQS::Queue":
            return f"{self.moto_url}/{ACCOUNT_ID}/{self.physical_name(name)}"
        if rtype == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{self.physical_name(name)}"
        if rtype == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{self.physical_name(name)}"
        if rtype == SERVERLESS_LAYER:
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
        # ApiGatewayV2 Api/Route/Integration/Authorizer/Stage..., log groups, alarms: the
        # logical id stands in for the generated id.
        return name

    def _get_att(self, name: str, attr: str) -> Any:  # noqa: PLR0911, PLR0912 - per type
        attrs = self._physical_attrs.get(name, {})
        if attr in attrs:
            return attrs[attr]
        rtype = self.resource_type(name)
        pname = self.physical_name(name)
        if rtype in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{pname}"
            if attr == "Arn":
                return arn
            if attr == "StreamArn":
                return f"{arn}/stream/local"
        if rtype == "AWS::SQS::Queue":
            if attr == "Arn":
                return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{pname}"
            if attr == "QueueName":
                return pname
            if attr == "QueueUrl":
                return self._ref(name)
        if rtype in (SERVERLESS_FUNCTION, "AWS::Lambda::Function") and attr == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{pname}"
        if rtype == "AWS::S3::Bucket":
            return {
                "Arn": f"arn:aws:s3:::{pname}",
                "DomainName": f"{pname}.s3.amazonaws.com",
                "RegionalDomainName": f"{pname}.s3.{REGION}.amazonaws.com",
            }.get(attr, pname)
        if rtype == "AWS::SNS::Topic" and attr in ("TopicArn", "Arn"):
            return self._ref(name)
        if rtype == "AWS::SecretsManager::Secret" and attr in ("Id", "Arn"):
            return self._ref(name)
        if attr == "Arn":
            return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{name}"
        return name

    # ------------------------------------------------------------------ resolution
    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in value to a local value (new object, input untouched)."""
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            # `!Ref AWS::NoValue` (e.g. inside !If) removes the item, as in CloudFormation.
            return [v for v in out if v is not _NO_VALUE]
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, arg)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        if isinstance(value, str):
            return self._localize(value)
        return value

    def _intrinsic(self, key: str, arg: Any) -> Any:  # noqa: PLR0911, PLR0912 - dispatch
        if key == "Ref":
            if arg == "AWS::NoValue":
                return _NO_VALUE
            return self._localize_any(self._ref(str(arg)))
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else list(arg)
            return self._localize_any(
                self._get_att(str(self.resolve(parts[0])), str(self.resolve(parts[1])))
            )
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self.conditions.get(cond, False) else no)
        if key == "Fn::Join":
            sep, items = arg
            return str(self.resolve(sep)).join(_to_env_string(i) for i in self.resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(str(self.resolve(sep)))
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._eval_condition({key: arg}, self.raw.get("Conditions") or {}, set())
        if key == "Fn::Base64":
            import base64

            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{REGION}{z}" for z in "abcdef"]
        if key == "Fn::FindInMap":
            mapname, top, second = (str(self.resolve(a)) for a in arg[:3])
            return self.resolve(self.raw["Mappings"][mapname][top][second])
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        raise TemplateError(f"intrinsic {key} is not supported locally")

    _SUB_VAR = re.compile(r"\$\{([^}]+)\}")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):  # ${!Literal} is an escaped literal "${Literal}"
                return "${" + expr[1:] + "}"
            if expr in variables:
                return _to_env_string(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                res, attr = expr.split(".", 1)
                return _to_env_string(self._get_att(res, attr))
            return _to_env_string(self._ref(expr))

        return self._localize(self._SUB_VAR.sub(replace, str(text)))

    def _localize_any(self, value: Any) -> Any:
        return self._localize(value) if isinstance(value, str) else value

    def _localize(self, text: str) -> str:
        """Point AWS WebSocket endpoints of this template's APIs at the devserver."""
        if not self.ws_base_url or "execute-api" not in text:
            return text
        http_base = self.ws_base_url
        ws_base = "ws://" + http_base.removeprefix("http://")

        def local_base(match: re.Match[str]) -> str:
            return ws_base if match.group(1) == "wss" else http_base

        for api_id in self.websocket_api_ids():
            pattern = re.compile(
                rf"(https|wss)://{re.escape(api_id)}\.execute-api\.[a-z0-9-]+\."
                rf"{re.escape(URL_SUFFIX)}"
            )
            text = pattern.sub(local_base, text)
        return text

    def websocket_api_ids(self) -> list[str]:
        return [
            lid
            for lid, props in self.of_type("AWS::ApiGatewayV2::Api")
            if str(props.get("ProtocolType", "")).upper() == "WEBSOCKET"
        ]

    # ------------------------------------------------------------------ functions
    def functions(self) -> list[FunctionSpec]:
        specs = []
        for lid, raw_props in self.of_type(SERVERLESS_FUNCTION):
            layers = [self._layer_path(layer) for layer in raw_props.get("Layers") or []]
            props = self.resolve({k: v for k, v in raw_props.items() if k != "Layers"})
            if "InlineCode" in props:
                raise TemplateError(f"{lid}: InlineCode is not supported by the devserver")
            code_uri = props.get("CodeUri")
            if not isinstance(code_uri, str):
                raise TemplateError(f"{lid}: CodeUri must be a local folder")
            variables = (props.get("Environment") or {}).get("Variables") or {}
            specs.append(
                FunctionSpec(
                    logical_id=lid,
                    name=self.physical_name(lid),
                    arn=str(self._get_att(lid, "Arn")),
                    code_uri=(self.base_dir / code_uri).resolve(),
                    handler=str(props.get("Handler", "app.lambda_handler")),
                    timeout=float(props.get("Timeout", 3)),
                    memory_size=int(props.get("MemorySize", 128)),
                    environment={k: _to_env_string(v) for k, v in variables.items()},
                    layer_paths=[p for p in layers if p is not None],
                    events=props.get("Events") or {},
                )
            )
        return specs

    def _layer_path(self, layer: Any) -> Path | None:
        # A layer from this template is mounted at /opt: its ContentUri goes on sys.path
        # (a `python/` subfolder if the layer has one, as Lambda puts /opt/python there).
        if isinstance(layer, dict) and "Ref" in layer and layer["Ref"] in self.resources:
            props = self.resources[layer["Ref"]].get("Properties") or {}
            content = props.get("ContentUri")
            if isinstance(content, str):
                path = (self.base_dir / content).resolve()
                return path / "python" if (path / "python").is_dir() else path
        return None  # a published layer ARN: nothing local to mount

    def function_by_arn(self, text: str) -> str | None:
        """The logical id of the function whose ARN appears in text (an integration URI)."""
        for lid, _ in self.of_type(SERVERLESS_FUNCTION, "AWS::Lambda::Function"):
            arn = str(self._get_att(lid, "Arn"))
            if arn in text:
                return lid
        return None


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE: Any = _NoValue()


# ---------------------------------------------------------------------- SAM transform
class _OfflinePolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which would list policies in IAM.

    Managed policy names map to their well-known ARN form, as AWS managed policies do.
    """

    def load(self) -> dict[str, str]:
        return _ManagedPolicyMap()


class _ManagedPolicyMap(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return f"arn:aws:iam::aws:policy/{key}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and not key.startswith("arn:")

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - __missing__ answers


_LOCAL_URI_PROPERTIES = {
    SERVERLESS_FUNCTION: ("CodeUri",),
    SERVERLESS_LAYER: ("ContentUri",),
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
}


def sam_transform(path: Path, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    import os

    from samtranslator.translator.transform import (  # type: ignore[import-untyped]
        transform,
    )

    # samtranslator asks boto3 for the region (for ARNs); there is no profile here.
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    doc = load_yaml(path)
    # Local code folders become S3 URIs first, as `sam package` (and `sam validate`) do.
    for lid, res in (doc.get("Resources") or {}).items():
        props = res.get("Properties") or {}
        for key in _LOCAL_URI_PROPERTIES.get(res.get("Type"), ()):
            value = props.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                props[key] = f"s3://local-artifacts/{lid}/{key}.zip"
    result: dict[str, Any] = transform(
        doc,
        dict(parameters or {}),
        _OfflinePolicyLoader(),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver.template")
    parser.add_argument("template", nargs="?", default="template.yaml", type=Path)
    parser.add_argument(
        "--transform",
        action="store_true",
        help="run the SAM transform offline and print the CloudFormation JSON",
    )
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    params = dict(p.split("=", 1) for p in args.param)
    try:
        if args.transform:
            output: Any = sam_transform(args.template, params)
        else:
            tpl = Template(args.template, params)
            output = {
                "Parameters": tpl.parameters,
                "Conditions": tpl.conditions,
                "Functions": {
                    f.logical_id: {
                        "CodeUri": str(f.code_uri),
                        "Handler": f.handler,
                        "Timeout": f.timeout,
                        "Environment": f.environment,
                        "Layers": [str(p) for p in f.layer_paths],
                        "Events": f.events,
                    }
                    for f in tpl.functions()
                },
            }
    except Exception as exc:  # samtranslator raises InvalidDocumentException & co.
        causes = getattr(exc, "causes", None) or []
        sys.stderr.write(f"error: {exc}\n")
        for cause in causes:
            sys.stderr.write(f"  - {getattr(cause, 'message', cause)}\n")
        return 1
    sys.stdout.write(json.dumps(output, indent=2, sort_keys=False, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
