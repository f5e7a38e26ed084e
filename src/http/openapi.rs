//! The OpenAPI 3.1 document, built from the route table so a route cannot exist without
//! being documented.

use serde_json::{Map, Value, json};

use super::ROUTES;

/// The document served at `/api/openapi.json`.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "400": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            }
        });
        if r.auth
            && let Some(o) = op.as_object_mut()
        {
            o.insert("security".into(), json!([{"bearer": []}]));
            if let Some(resp) = o.get_mut("responses").and_then(Value::as_object_mut) {
                resp.insert(
                    "401".into(),
                    json!({"$ref": "#/components/responses/Error"}),
                );
                resp.insert(
                    "403".into(),
                    json!({"$ref": "#/components/responses/Error"}),
                );
            }
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        if let Some(e) = entry.as_object_mut() {
            e.insert(r.method.to_string(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "order-copilot",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Order exceptions for Odoo distributors: the ranked queue, cases, approvals and the audit log."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"], "properties": {
                        "code": {"type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "conflict", "rate_limited", "internal"]},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"}
                    }}}
                }
            },
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
        }
    })
}
