//! The document's error responses: each error a handler documents gets the contract's envelope
//! with its status's one code, and every operation gets the responses of the shared code it
//! passes through (the `Origin` guard, the session check, the JSON body reader, the database).
use serde_json::json;
use utoipa::{
    ToSchema,
    openapi::{
        AllOfBuilder, Content, ContentBuilder, ObjectBuilder, Ref, RefOr, Response,
        ResponseBuilder, Schema, Type, path::Operation,
    },
};

use crate::error::{AppError, ErrorCode, ErrorEnvelope};

/// A response any operation may give for a reason outside its handler.
struct Shared {
    name: &'static str,
    error: AppError,
    when: &'static str,
    applies: fn(&Operation) -> bool,
}

fn shared_responses() -> [Shared; 7] {
    let always = |_: &Operation| true;
    let with_session = |op: &Operation| op.security.is_none();
    let with_body = |op: &Operation| op.request_body.is_some();
    [
        Shared {
            name: "NoSession",
            error: AppError::Unauthorized("Authentication required"),
            when: "No session cookie, or the session expired or was revoked",
            applies: with_session,
        },
        Shared {
            name: "ForeignOrigin",
            error: AppError::Forbidden("Origin not allowed"),
            when: "The request's `Origin` is neither the server's own nor in `server.allowed_origins`",
            applies: always,
        },
        Shared {
            name: "InvalidBody",
            error: AppError::field("body", "is not valid JSON"),
            when: "Malformed JSON, or a field of the wrong type or out of bounds (`details` names each)",
            applies: with_body,
        },
        Shared {
            name: "BodyTooLarge",
            error: AppError::PayloadTooLarge,
            when: "The body is larger than `server.max_body_bytes` (1 MiB by default)",
            applies: with_body,
        },
        Shared {
            name: "NotJson",
            error: AppError::UnsupportedMediaType,
            when: "The body is not `application/json`",
            applies: with_body,
        },
        Shared {
            name: "Internal",
            error: AppError::internal("example"),
            when: "An unexpected failure (its cause is logged, never shown)",
            applies: always,
        },
        Shared {
            name: "Unavailable",
            error: AppError::Unavailable,
            when: "The database cannot be reached",
            applies: always,
        },
    ]
}

/// Adds each shared response that applies and that the operation does not document itself; a
/// 403 the handler documents also names the `Origin` guard's.
pub fn add_shared(op: &mut Operation) {
    for shared in shared_responses() {
        if !(shared.applies)(op) {
            continue;
        }
        let status = shared.error.status().as_u16().to_string();
        match op.responses.responses.get_mut(&status) {
            Some(RefOr::T(own)) if status == "403" => {
                own.description = format!("{}. Or: {}", own.description, shared.when);
            }
            Some(_) => {}
            None => {
                let shared_ref = Ref::from_response_name(shared.name).into();
                op.responses.responses.insert(status, shared_ref);
            }
        }
    }
}

fn code_of(status: &str) -> ErrorCode {
    let code = ErrorCode::ALL
        .into_iter()
        .find(|code| code.status().as_str() == status);
    code.unwrap_or_else(|| panic!("no error code has status {status}"))
}

/// Each error response's schema: the envelope, with `code` fixed to the one its status carries
/// (so a client generator names the right code, and a wrong one fails validation).
fn error_schema(code: ErrorCode) -> RefOr<Schema> {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            serde_json::to_value(code).expect("a code serializes")
        ]));
    let error = ObjectBuilder::new().property("code", code);
    let fixed = ObjectBuilder::new().property("error", error);
    AllOfBuilder::new()
        .item(Ref::from_schema_name(ErrorEnvelope::name()))
        .item(fixed)
        .into()
}

/// Gives each error a handler documents its body: the envelope, its code, and an example.
pub fn describe_errors(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with('2') {
            continue;
        }
        let code = code_of(status);
        let example = json!({ "error": { "code": code, "message": response.description } });
        let content = error_content(code, example);
        response
            .content
            .insert("application/json".into(), content.into());
    }
}

fn error_content(code: ErrorCode, example: serde_json::Value) -> Content {
    ContentBuilder::new()
        .schema(Some(error_schema(code)))
        .example(Some(example))
        .build()
}

/// The shared responses, as `components.responses`.
pub fn components() -> impl Iterator<Item = (&'static str, Response)> {
    shared_responses().into_iter().map(|shared| {
        let example = json!({ "error": shared.error.body() });
        let content = error_content(shared.error.code(), example);
        let response = ResponseBuilder::new()
            .description(shared.when)
            .content("application/json", content)
            .build();
        (shared.name, response)
    })
}
