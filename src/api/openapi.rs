//! `GET /api/openapi.json`: an OpenAPI 3.0 description of every REST route. Written as data
//! (the handlers parse bodies themselves to name the failing field, which the derive-based
//! generators could not do); a test checks it against the router's routes.
use poem::{handler, web::Json};
use serde_json::{Value, json};

/// (method, path, summary, request schema, success status, response schema)
type RouteDoc = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    Option<&'static str>,
);

pub const ROUTES: &[RouteDoc] = &[
    (
        "post",
        "/api/auth/register",
        "Create an account and sign in",
        Some("Register"),
        201,
        Some("UserEnvelope"),
    ),
    (
        "post",
        "/api/auth/login",
        "Sign in",
        Some("Login"),
        200,
        Some("UserEnvelope"),
    ),
    (
        "post",
        "/api/auth/logout",
        "Sign out and disconnect this session's sockets",
        None,
        204,
        None,
    ),
    (
        "get",
        "/api/auth/session",
        "The current session",
        None,
        200,
        Some("Session"),
    ),
    (
        "get",
        "/api/vaults",
        "The caller's vaults",
        None,
        200,
        Some("VaultList"),
    ),
    (
        "post",
        "/api/vaults",
        "Create a vault (the caller owns it)",
        Some("CreateVault"),
        201,
        Some("VaultEnvelope"),
    ),
    (
        "get",
        "/api/vaults/{id}",
        "A vault and the caller's role",
        None,
        200,
        Some("VaultWithRole"),
    ),
    (
        "patch",
        "/api/vaults/{id}",
        "Rename or describe a vault (owner)",
        Some("PatchVault"),
        200,
        Some("VaultEnvelope"),
    ),
    (
        "delete",
        "/api/vaults/{id}",
        "Delete a vault (owner)",
        None,
        204,
        None,
    ),
    (
        "get",
        "/api/vaults/{id}/members",
        "A vault's members",
        None,
        200,
        Some("MemberList"),
    ),
    (
        "post",
        "/api/vaults/{id}/members",
        "Add a member by email (owner)",
        Some("AddMember"),
        201,
        Some("MemberEnvelope"),
    ),
    (
        "patch",
        "/api/vaults/{id}/members/{userId}",
        "Change a member's role (owner)",
        Some("ChangeRole"),
        200,
        Some("MemberEnvelope"),
    ),
    (
        "delete",
        "/api/vaults/{id}/members/{userId}",
        "Remove a member (owner) or leave",
        None,
        204,
        None,
    ),
    (
        "get",
        "/api/vaults/{id}/sources",
        "A page of sources, newest first",
        None,
        200,
        Some("SourcePage"),
    ),
    (
        "post",
        "/api/vaults/{id}/sources",
        "Add a source (owner, contributor)",
        Some("CreateSource"),
        201,
        Some("SourceEnvelope"),
    ),
    (
        "get",
        "/api/sources/{id}",
        "A source",
        None,
        200,
        Some("SourceEnvelope"),
    ),
    (
        "patch",
        "/api/sources/{id}",
        "Update a source; 409 on a stale version",
        Some("PatchSource"),
        200,
        Some("SourceEnvelope"),
    ),
    (
        "delete",
        "/api/sources/{id}",
        "Delete a source (owner, contributor)",
        None,
        204,
        None,
    ),
    (
        "get",
        "/api/vaults/{id}/events",
        "The vault's event log, oldest first",
        None,
        200,
        Some("EventPage"),
    ),
];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn parameters(path: &str, method: &str) -> Vec<Value> {
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }))
        .collect();
    let query = |name: &str, ty: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": ty } });
    match (method, path) {
        ("get", "/api/vaults/{id}/sources") => {
            params.extend([query("limit", "integer"), query("cursor", "string")])
        }
        ("get", "/api/vaults/{id}/events") => {
            params.extend([query("since", "integer"), query("limit", "integer")])
        }
        _ => {}
    }
    params
}

pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, body, status, response) in ROUTES {
        let mut responses = json!({
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "403": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" },
            "409": { "$ref": "#/components/responses/Error" },
            "429": { "$ref": "#/components/responses/Error" },
        });
        responses[status.to_string()] = match response {
            Some(name) => {
                json!({ "description": "OK", "content": { "application/json": { "schema": schema_ref(name) } } })
            }
            None => json!({ "description": "No content" }),
        };
        let mut op = json!({ "summary": summary, "parameters": parameters(path, method), "responses": responses });
        if let Some(name) = body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "SyncScript Vault", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "schemas": schemas(), "responses": {
            "Error": { "description": "Error", "content": { "application/json": { "schema": schema_ref("Error") } } }
        } },
    })
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn schemas() -> Value {
    let s = json!({ "type": "string" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let time = json!({ "type": "string", "format": "date-time" });
    let role = json!({ "type": "string", "enum": ["owner", "contributor", "viewer"] });
    json!({
        "Error": obj(&["error"], json!({ "error": obj(&["code", "message"], json!({
            "code": s, "message": s,
            "details": { "type": "array", "items": obj(&["field", "message"], json!({ "field": s, "message": s })) } })) })),
        "User": obj(&["id", "email", "name"], json!({ "id": uuid, "email": s, "name": s })),
        "UserEnvelope": obj(&["user"], json!({ "user": schema_ref("User") })),
        "Session": obj(&["user", "expiresAt"], json!({ "user": schema_ref("User"), "expiresAt": time })),
        "Register": obj(&["email", "name", "password"], json!({ "email": s, "name": s, "password": { "type": "string", "minLength": 8, "maxLength": 256 } })),
        "Login": obj(&["email", "password"], json!({ "email": s, "password": s })),
        "Vault": obj(&["id", "name", "description", "createdAt", "updatedAt"], json!({ "id": uuid, "name": s, "description": s, "createdAt": time, "updatedAt": time })),
        "VaultEnvelope": obj(&["vault"], json!({ "vault": schema_ref("Vault") })),
        "VaultWithRole": obj(&["vault", "role"], json!({ "vault": schema_ref("Vault"), "role": role })),
        "VaultList": obj(&["vaults"], json!({ "vaults": { "type": "array", "items": { "allOf": [schema_ref("Vault"), obj(&["role"], json!({ "role": role }))] } } })),
        "CreateVault": obj(&["name"], json!({ "name": { "type": "string", "maxLength": 200 }, "description": { "type": "string", "maxLength": 2000 } })),
        "PatchVault": obj(&[], json!({ "name": s, "description": s })),
        "Member": obj(&["userId", "email", "name", "role", "joinedAt"], json!({ "userId": uuid, "email": s, "name": s, "role": role, "joinedAt": time })),
        "MemberEnvelope": obj(&["member"], json!({ "member": schema_ref("Member") })),
        "MemberList": obj(&["members"], json!({ "members": { "type": "array", "items": schema_ref("Member") } })),
        "AddMember": obj(&["email", "role"], json!({ "email": s, "role": role })),
        "ChangeRole": obj(&["role"], json!({ "role": role })),
        "Source": obj(&["id", "vaultId", "title", "fileUrl", "createdBy", "createdAt", "updatedAt", "version"], json!({
            "id": uuid, "vaultId": uuid, "title": s, "fileUrl": { "type": "string", "format": "uri" },
            "createdBy": { "type": "string", "format": "uuid", "nullable": true }, "createdAt": time, "updatedAt": time, "version": { "type": "integer" } })),
        "SourceEnvelope": obj(&["source"], json!({ "source": schema_ref("Source") })),
        "SourcePage": obj(&["sources", "nextCursor"], json!({ "sources": { "type": "array", "items": schema_ref("Source") }, "nextCursor": { "type": "string", "nullable": true } })),
        "CreateSource": obj(&["title", "fileUrl"], json!({ "title": { "type": "string", "maxLength": 300 }, "fileUrl": { "type": "string", "format": "uri", "maxLength": 2048 } })),
        "PatchSource": obj(&[], json!({ "title": s, "fileUrl": s, "version": { "type": "integer" } })),
        "EventPage": obj(&["events", "latestSeq"], json!({ "events": { "type": "array", "items": { "type": "object" } }, "latestSeq": { "type": "integer" } })),
    })
}

#[handler]
pub async fn document() -> Json<Value> {
    Json(build())
}
