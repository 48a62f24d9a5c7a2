#!/usr/bin/env python3
"""Validates JSON lines against docs/trace-schema.json.

A small checker for the JSON Schema keywords that schema uses (type, enum,
pattern, minimum, required, properties, additionalProperties, items,
minItems, maxItems, anyOf, $ref to #/$defs): the jsonschema module is not
assumed. Usage: trace_schema_check.py SCHEMA FILE; exit 0 if every line is an
object that matches, 1 (with the first problem) otherwise.
"""
import json
import re
import sys

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
KNOWN = {"$schema", "$id", "title", "description", "type", "enum", "pattern", "minimum", "required",
         "properties", "additionalProperties", "items", "minItems", "maxItems", "anyOf", "$ref", "$defs"}


def check(value, schema, root, path):
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by this checker")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            return f"{path}: unsupported $ref {ref}"
        return check(value, root["$defs"][ref[len("#/$defs/"):]], root, path)
    if "anyOf" in schema:
        if all(check(value, s, root, path) for s in schema["anyOf"]):
            return f"{path}: matches none of anyOf"
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            return f"{path}: {value!r} is not of type {types}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} not in {schema['enum']}"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return f"{path}: {value!r} does not match {schema['pattern']}"
    if TYPES["number"](value) and "minimum" in schema and value < schema["minimum"]:
        return f"{path}: {value!r} < {schema['minimum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{path}: missing {key}"
        props = schema.get("properties", {})
        for key, v in value.items():
            if key in props:
                err = check(v, props[key], root, f"{path}.{key}")
                if err:
                    return err
            elif schema.get("additionalProperties", True) is False:
                return f"{path}: unexpected property {key}"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        if "items" in schema:
            for i, v in enumerate(value):
                err = check(v, schema["items"], root, f"{path}[{i}]")
                if err:
                    return err
    return None


def main():
    schema = json.load(open(sys.argv[1]))
    n = 0
    for lineno, line in enumerate(open(sys.argv[2]), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"line {lineno}: not JSON: {e}")
            return 1
        err = check(obj, schema, schema, "$")
        if err:
            print(f"line {lineno}: {err}")
            return 1
        n += 1
    print(f"{n} objects valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
