"""The profile's JSON Schema (draft-07), generated from the loader's own key table (shape.py).

Editors read it through a first line `# yaml-language-server: $schema=profile.schema.json`
(VS Code's YAML extension, JetBrains IDEs, Neovim with yaml-language-server) to complete keys
and flag mistakes while the profile is written. The package ships the generated file
(`profile.schema.json` beside this module); a test keeps it equal to what `generate()`
returns, and another feeds the schema and the loader the same profiles.

The schema holds every key, type, required key, value list and spelling, and the rules between
keys that JSON Schema can express: the hybrid-only sections, telemetry's requirements, licensing
as the prerequisite of services, endpoints while a service is activated, a justification for
an undocumented endpoint, a proxy for the interceptor. What it cannot express stays the
loader's alone and is said in the descriptions: addresses inside `environment.networks`, no
host bits in a network, a valid IDNA name, files that exist, numeric bounds of durations
written as text.

`python -m conformance.profile.schema` prints it; `--write` refreshes the shipped file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

from conformance.profile import shape
from conformance.profile_model import SERVICES_NEEDING_LICENSING, Mode, Telemetry

SCHEMA_FILE: Final = "profile.schema.json"
DRAFT: Final = "http://json-schema.org/draft-07/schema#"  # what editors' YAML servers read best

Schema = dict[str, Any]


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _rules() -> dict[int, list[Schema]]:
    """Conditions between keys, by the section (shape.py node) they belong to."""
    air_gapped = {"properties": {"mode": {"const": Mode.AIR_GAPPED.value}}, "required": ["mode"]}
    top: list[Schema] = [
        {
            # HA 2.2: no cloud connectivity, no telemetry in air-gapped mode.
            "if": air_gapped,
            "then": {
                "not": {"anyOf": [{"required": ["cloud"]}, {"required": ["proxy"]}]},
                "properties": {"telemetry": {"const": Telemetry.DISABLED.value}},
            },
        },
        {
            # CT 3: telemetry is on by default with licensing; a hybrid profile must say.
            "if": {"properties": {"mode": {"const": Mode.HYBRID.value}}, "required": ["mode"]},
            "then": {"required": ["telemetry"]},
        },
        {
            "if": {
                "properties": {"telemetry": {"const": Telemetry.ENABLED.value}},
                "required": ["telemetry"],
            },
            "then": {
                "required": ["cloud"],
                "properties": {
                    "cloud": {"properties": {"services": {"contains": {"const": "telemetry"}}}}
                },
            },
        },
        {
            # The interceptor sits behind the proxy.
            "if": {
                "properties": {
                    "lab": {"properties": {"intercept": {"const": True}}, "required": ["intercept"]}
                },
                "required": ["lab"],
            },
            "then": {"required": ["proxy"]},
        },
    ]
    cloud: list[Schema] = [
        {
            # CT 2: cloud licensing is the prerequisite of every Cloud Connected service.
            "if": {
                "properties": {
                    "services": {"contains": {"enum": sorted(SERVICES_NEEDING_LICENSING)}}
                }
            },
            "then": {"properties": {"services": {"contains": {"const": "licensing"}}}},
        },
        {
            "if": {"properties": {"services": {"minItems": 1}}},
            "then": {"required": ["endpoints"], "properties": {"endpoints": {"minItems": 1}}},
        },
    ]
    justified: list[Schema] = [
        {
            # Decision 5: an endpoint beyond Imagicle's documented ones needs a justification.
            "if": {
                "properties": {
                    "endpoint": {"not": {"pattern": _anchored(shape.DOCUMENTED_ENDPOINT_PATTERN)}}
                }
            },
            "then": {"required": ["justification"]},
        }
    ]
    return {id(shape.PROFILE): top, id(shape.CLOUD): cloud, id(shape.CLOUD_ENDPOINT): justified}


def _given(**keywords: object) -> Schema:
    """The keywords whose value is set (a bound left open is no keyword)."""
    return {key: value for key, value in keywords.items() if value is not None}


def _section(node: shape.Section, rules: dict[int, list[Schema]]) -> Schema:
    out: Schema = {
        "type": "object",
        "properties": {key.name: _node(key.node, rules) for key in node.keys},
    }
    if node.required:
        out["required"] = list(node.required)
    out["additionalProperties"] = False
    conditions = list(rules.get(id(node), ()))
    if node.one_of:
        conditions.append({"oneOf": [{"required": [key]} for key in node.one_of]})
    if conditions:
        out["allOf"] = conditions
    return out


def _kind(node: shape.Node, rules: dict[int, list[Schema]]) -> Schema:
    match node:
        case shape.Text():
            pattern = _anchored(node.pattern) if node.pattern is not None else None
            return {"type": "string", **_given(pattern=pattern, maxLength=node.max_length)}
        case shape.Choice() if node.numbers:
            # YAML reads an unquoted 1.2 as a number; the loader takes it as "1.2".
            return {"anyOf": [{"enum": list(node.values)}, {"enum": list(node.numbers)}]}
        case shape.Choice():
            return {"enum": list(node.values)}
        case shape.Flag():
            return {"type": "boolean"}
        case shape.Number():
            bounds = _given(
                exclusiveMinimum=node.above, minimum=node.at_least, maximum=node.at_most
            )
            return {"type": "number", **bounds}
        case shape.Either():
            return {"anyOf": [_node(option, rules) for option in node.options]}
        case shape.ListOf():
            out: Schema = {"type": "array", "items": _node(node.item, rules)}
            if node.non_empty:
                out["minItems"] = 1
            if node.unique:
                out["uniqueItems"] = True
            return out
        case shape.Section():
            return _section(node, rules)
    return {}


def _node(node: shape.Node, rules: dict[int, list[Schema]]) -> Schema:
    out: Schema = {"description": node.description} if node.description else {}
    return {**out, **_kind(node, rules)}


def generate() -> Schema:
    """The profile's JSON Schema, from shape.PROFILE."""
    body = _node(shape.PROFILE, _rules())
    return {
        "$schema": DRAFT,
        "$comment": (
            "Generated from conformance/profile/shape.py by `ucx-conformance profile schema`;"
            " the loader also checks what a schema cannot (docs/profile.md)."
        ),
        "title": "ucx-conformance deployment profile",
        **body,
    }


def render(schema: Schema) -> str:
    """The schema as the shipped file holds it: keys in table order, two-space indent."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped() -> str:
    """The text of the schema file shipped in the package."""
    return (resources.files("conformance.profile") / SCHEMA_FILE).read_text(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the generated schema, or with `--write` refresh the shipped file."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = render(generate())
    if args == ["--write"]:
        target = resources.files("conformance.profile") / SCHEMA_FILE
        with resources.as_file(target) as path:
            path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
