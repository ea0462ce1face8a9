#!/usr/bin/env python3
"""Checks recorded HTTP responses of a real `jelly serve` against the OpenAPI 3.1 document it
serves at /v1/openapi.yaml. Run by Tests/JellyServerTests/OpenAPITests.swift; also by hand:

    python3 scripts/check-openapi.py OPENAPI.yaml RECORDS.json

RECORDS.json is a list of {"method", "path", "status", "headers": {lowercased: value},
"body_base64"}. Exit 0 when every record is described by the document and every documented
(operation, status) was seen; exit 1 with one line per finding otherwise; exit 2 when this
script cannot run (a missing Python package: python3 -m pip install openapi-spec-validator).

What is checked, per record:
- the path matches one of the document's path templates and the method is documented there
  (a wrong method on a known path must be 405 with an Error body);
- the status is documented for that operation;
- a response documented with content has a Content-Type among its media types and a body
  that validates against the schema, strictly: an object property the schema does not name
  is a finding (so fields the server adds must be documented);
- a response documented without content has an empty body;
- every header the response documents as required is present, and every documented header
  that is present matches its schema (the ETag's quoted version, the access names).
And over all records: every documented (method, path, status) was produced at least once,
except those given with --not-produced "METHOD PATH STATUS" (each must name a documented one).
"""
import argparse
import base64
import copy
import json
import re
import sys

try:
    import yaml
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate as validate_spec
except ImportError as error:  # pragma: no cover
    print(f"check-openapi: {error}; install with: python3 -m pip install openapi-spec-validator", file=sys.stderr)
    sys.exit(2)

METHODS = ["get", "put", "post", "delete", "patch", "head", "options"]


def resolve(doc, node):
    """Follows $ref chains inside the document."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, not {ref}")
        target = doc
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def strict(doc, schema, seen=None):
    """The schema with every object that lists properties closed to others, $refs inlined."""
    seen = seen or set()
    if isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return {}
        return strict(doc, resolve(doc, schema), seen | {ref})
    if isinstance(schema, list):
        return [strict(doc, s, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(doc, v, seen) if k in ("items", "additionalProperties", "oneOf", "anyOf", "allOf", "not") else copy.deepcopy(v)
           for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {name: strict(doc, s, seen) for name, s in schema["properties"].items()}
        out.setdefault("additionalProperties", False)
    return out


def template_regex(template):
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def media_matches(documented, actual):
    actual = actual.split(";")[0].strip().lower()
    documented = documented.lower()
    if documented == "*/*":
        return True
    if documented.endswith("/*"):
        return actual.startswith(documented[:-1])
    return documented == actual


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("document")
    parser.add_argument("records")
    parser.add_argument("--not-produced", action="append", default=[],
                        help='"METHOD PATH STATUS" documented but not produced by this run, with the reason elsewhere')
    args = parser.parse_args()

    with open(args.document) as f:
        doc = yaml.safe_load(f)
    findings = []
    try:
        validate_spec(doc)
    except Exception as error:  # the document itself is not valid OpenAPI 3.1
        findings.append(f"the document is not valid OpenAPI: {str(error).splitlines()[0]}")
    with open(args.records) as f:
        records = json.load(f)

    paths = [(template, template_regex(template), item) for template, item in doc.get("paths", {}).items()]
    documented = set()
    for template, _, item in paths:
        for method in METHODS:
            if method in item:
                for status in item[method].get("responses", {}):
                    documented.add((method, template, str(status)))
    seen = set()

    for i, record in enumerate(records):
        method = record["method"].lower()
        path = record["path"].split("?")[0]
        status = str(record["status"])
        headers = {k.lower(): v for k, v in record["headers"].items()}
        body = base64.b64decode(record["body_base64"])
        where = f"#{i} {record['method']} {record['path']} -> {status}"
        match = next(((t, item) for t, rx, item in paths if rx.match(path)), None)
        if match is None:
            findings.append(f"{where}: no path of the document matches")
            continue
        template, item = match
        if method not in item:
            if status != "405":
                findings.append(f"{where}: {method.upper()} is not documented on {template} (only a 405 would be expected)")
            else:
                check_body(doc, where, {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}, headers, body, findings)
            continue
        responses = item[method].get("responses", {})
        if status not in responses:
            findings.append(f"{where}: status {status} is not documented for {method.upper()} {template}")
            continue
        seen.add((method, template, status))
        response = resolve(doc, responses[status])
        for name, header in (response.get("headers") or {}).items():
            header = resolve(doc, header)
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    findings.append(f"{where}: required header {name} is missing")
            elif "schema" in header:
                for error in Draft202012Validator(strict(doc, header["schema"])).iter_errors(value):
                    findings.append(f"{where}: header {name}: {error.message}")
        content = response.get("content")
        if content:
            check_body(doc, where, content, headers, body, findings)
        elif body:
            findings.append(f"{where}: documented without a body, got {len(body)} bytes")

    for entry in args.not_produced:
        method, template, status = entry.split()
        key = (method.lower(), template, status)
        if key not in documented:
            findings.append(f"--not-produced {entry}: not a documented response")
        documented.discard(key)
    for method, template, status in sorted(documented - seen):
        findings.append(f"documented but never produced: {method.upper()} {template} -> {status}")

    for finding in findings:
        print(finding)
    print(f"check-openapi: {len(records)} responses, {len(seen)} documented responses produced, {len(findings)} findings")
    return 1 if findings else 0


def check_body(doc, where, content, headers, body, findings):
    actual = headers.get("content-type", "")
    media = next((m for m in content if media_matches(m, actual)), None)
    if media is None:
        findings.append(f"{where}: Content-Type {actual!r} is not among {sorted(content)}")
        return
    schema = content[media].get("schema")
    if schema is None or not actual.split(";")[0].strip().endswith("json"):
        return
    try:
        value = json.loads(body)
    except ValueError:
        findings.append(f"{where}: the body is not JSON: {body[:80]!r}")
        return
    validator = Draft202012Validator(strict(doc, schema))
    for error in validator.iter_errors(value):
        at = "/".join(str(p) for p in error.absolute_path) or "(root)"
        findings.append(f"{where}: body at {at}: {error.message}")


if __name__ == "__main__":
    sys.exit(main())
