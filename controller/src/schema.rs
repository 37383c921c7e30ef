//! Checks a CRD schema against Kubernetes' rules for structural schemas.
//!
//! No API server is available to reject a non-structural CRD for us, so the
//! rules are checked here: every node has a type (unless it preserves unknown
//! fields or is int-or-string), `anyOf`/`oneOf`/`allOf`/`not` carry no types,
//! `nullable` sits beside a type, `additionalProperties` never sits beside
//! `properties`, no `$ref` or definitions remain, and `items` is one schema.

use serde_json::Value;

/// Every rule broken, as "path: what".
pub fn structural_violations(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, "$", &mut out, true);
    out
}

fn walk(node: &Value, path: &str, out: &mut Vec<String>, needs_type: bool) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: a schema must be an object"));
        return;
    };
    let free = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match obj.get("type") {
        Some(Value::String(_)) => {}
        Some(other) => out.push(format!("{path}: type must be one string, not {other}")),
        None if needs_type && !free => out.push(format!("{path}: no type")),
        None => {}
    }
    if obj.contains_key("nullable") && !obj.contains_key("type") && !free {
        out.push(format!("{path}: nullable without a type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: additionalProperties beside properties"));
    }
    for bad in ["$ref", "definitions", "$defs", "$schema"] {
        if obj.contains_key(bad) {
            out.push(format!("{path}: {bad} is not allowed"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(v, &format!("{path}.{k}"), out, true);
        }
    }
    match obj.get("items") {
        Some(items @ Value::Object(_)) => walk(items, &format!("{path}[]"), out, true),
        Some(_) => out.push(format!("{path}: items must be one schema")),
        None => {}
    }
    if let Some(ap @ Value::Object(_)) = obj.get("additionalProperties") {
        walk(ap, &format!("{path}{{}}"), out, true);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = obj.get(combinator) {
            for (i, b) in branches.iter().enumerate() {
                check_value_validation_only(b, &format!("{path}.{combinator}[{i}]"), out);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        check_value_validation_only(not, &format!("{path}.not"), out);
    }
}

/// Inside anyOf/oneOf/allOf/not only value validations may appear.
fn check_value_validation_only(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    for forbidden in [
        "type",
        "additionalProperties",
        "default",
        "nullable",
        "description",
    ] {
        if obj.contains_key(forbidden) {
            out.push(format!("{path}: {forbidden} inside a combinator"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_value_validation_only(v, &format!("{path}.{k}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_each_broken_rule() {
        let bad = json!({
            "type": "object",
            "properties": {
                "a": {},
                "b": {"type": ["string", "null"]},
                "c": {"nullable": true},
                "d": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
                "e": {"type": "string", "anyOf": [{"type": "string"}]},
                "f": {"$ref": "#/definitions/x", "type": "object"}
            }
        });
        let v = structural_violations(&bad);
        for needle in [
            "$.a: no type",
            "$.b: type must be one string",
            "$.c: nullable without a type",
            "$.d: additionalProperties beside properties",
            "$.e.anyOf[0]: type inside",
            "$.f: $ref",
        ] {
            assert!(
                v.iter().any(|x| x.starts_with(needle)),
                "{needle} not found in {v:?}"
            );
        }
    }

    #[test]
    fn accepts_free_form_nodes_and_int_or_string() {
        let ok = json!({
            "type": "object",
            "properties": {
                "free": {"x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"format": "int32"}]},
                "n": {"type": "string", "nullable": true}
            }
        });
        assert_eq!(structural_violations(&ok), Vec::<String>::new());
    }
}
