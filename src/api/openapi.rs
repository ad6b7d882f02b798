//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from each handler's
//! `#[utoipa::path]` and the bodies' `ToSchema`. The REST routes are mounted from those same
//! annotations ([`ApiRoutes::mount`]), so no route is served undocumented or documented unserved.
//! Responses that come from shared code rather than from a handler (the `Origin` guard, the
//! session check, the JSON body reader, database failures) are added to every operation they
//! apply to here, once, instead of on each handler.
use std::{collections::BTreeMap, sync::Arc};

use poem::{Endpoint, Response, Route, RouteMethod, endpoint::make_sync, http::Method};
use serde_json::json;
use utoipa::{
    __dev::{SchemaReferences, Tags},
    PartialSchema, ToSchema,
    openapi::{
        AllOfBuilder, ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi,
        OpenApiBuilder, Paths, Ref, RefOr, ResponseBuilder, Schema, Type,
        path::{HttpMethod, Operation},
        security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme},
        tag::TagBuilder,
    },
};

use crate::error::{AppError, ErrorCode, ErrorEnvelope};

/// The security scheme's name in the document; the cookie's own name comes from the settings.
const SESSION: &str = "session";

/// The REST routes and their documentation, built together.
#[derive(Default)]
pub struct ApiRoutes {
    methods: BTreeMap<String, RouteMethod>,
    paths: Paths,
    // Name and schema of every component an operation refers to.
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl ApiRoutes {
    /// Mounts `handler` at the method and path its `#[utoipa::path(impl_for = …)]` names (an
    /// `/api/…` path: this router is nested at `/api`) and adds its operation to the document.
    // `SchemaReferences` and `Tags` are how utoipa's own router bindings (utoipa-axum) collect
    // an operation's schemas and tags; poem has no such binding, so this is one.
    pub fn mount<H>(mut self, handler: H) -> Self
    where
        H: utoipa::Path + SchemaReferences + Tags<'static> + Endpoint + 'static,
    {
        let (path, methods) = (H::path(), H::methods());
        let mut operation = H::operation();
        operation.tags = Some(H::tags().into_iter().map(String::from).collect());
        add_shared_responses(&mut operation);
        name_error_codes(&mut operation);
        self.paths
            .add_path_operation(&path, methods.clone(), operation);
        H::schemas(&mut self.schemas);
        let handler = Arc::new(handler);
        let route = router_path(&path);
        let mut method_router = self.methods.remove(&route).unwrap_or_default();
        for method in methods {
            method_router = method_router.method(http_method(method), handler.clone());
        }
        self.methods.insert(route, method_router);
        self
    }

    /// The router, plus `/openapi.json` serving the document with `cookie_name` as the
    /// session's security scheme.
    pub fn into_route(self, cookie_name: &str) -> Route {
        let doc = document(self.paths, self.schemas, cookie_name);
        let json = doc.to_json().expect("the OpenAPI document serializes");
        let serve = make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(json.clone())
        });
        let route = Route::new().at("/openapi.json", poem::get(serve));
        self.methods
            .into_iter()
            .fold(route, |route, (path, methods)| route.at(path, methods))
    }
}

/// `/api/vaults/{id}` → `/vaults/:id`, poem's spelling under the `/api` nest.
fn router_path(path: &str) -> String {
    let path = path
        .strip_prefix("/api")
        .expect("REST paths start with /api");
    path.split('/')
        .map(|segment| match segment.strip_prefix('{') {
            Some(param) => format!(":{}", param.trim_end_matches('}')),
            None => segment.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn http_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
        _ => panic!("a REST route with a method the router does not mount"),
    }
}

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
fn add_shared_responses(op: &mut Operation) {
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

/// Narrows each handler-documented error to its code, with an example naming it (Swagger UI
/// would otherwise show the first code of the enum).
fn name_error_codes(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with('2') {
            continue;
        }
        let code = code_of(status);
        let example = json!({ "error": { "code": code, "message": response.description } });
        for content in response.content.values_mut() {
            if let RefOr::T(content) = content {
                content.schema = Some(error_schema(code));
                content.example.get_or_insert_with(|| example.clone());
            }
        }
    }
}

fn document(paths: Paths, mut schemas: Vec<(String, RefOr<Schema>)>, cookie_name: &str) -> OpenApi {
    schemas.push((ErrorEnvelope::name().into(), ErrorEnvelope::schema()));
    ErrorEnvelope::schemas(&mut schemas);
    let responses = shared_responses().map(|shared| {
        let content = ContentBuilder::new()
            .schema(Some(error_schema(shared.error.code())))
            .example(Some(json!({ "error": shared.error.body() })))
            .build();
        let response = ResponseBuilder::new()
            .description(shared.when)
            .content("application/json", content)
            .build();
        (shared.name, response)
    });
    let cookie = ApiKeyValue::with_description(
        cookie_name,
        "The session cookie that register and login set (HttpOnly; a browser sends it itself)",
    );
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .responses_from_iter(responses)
        .security_scheme(SESSION, SecurityScheme::ApiKey(ApiKey::Cookie(cookie)))
        .build();
    let tags = [
        ("auth", "Accounts and cookie sessions (CONTRACT §3)"),
        ("vaults", "Vaults the caller belongs to"),
        ("members", "Who belongs to a vault, and as what"),
        ("sources", "The documents of a vault"),
        ("events", "A vault's event log (CONTRACT §6)"),
    ]
    .map(|(name, about)| {
        TagBuilder::new()
            .name(name)
            .description(Some(about))
            .build()
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("SyncScript Vault")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Shared vaults of sources, over REST (this document) and Socket.IO. \
                     Errors are `{\"error\": {code, message, details?}}`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .security(Some([SecurityRequirement::new(
            SESSION,
            Vec::<String>::new(),
        )]))
        .tags(Some(tags))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_paths_become_poem_paths_under_the_api_nest() {
        assert_eq!(router_path("/api/vaults"), "/vaults");
        assert_eq!(
            router_path("/api/vaults/{id}/members/{userId}"),
            "/vaults/:id/members/:userId"
        );
    }
}
