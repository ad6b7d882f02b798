//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from each handler's
//! `#[utoipa::path]` and the bodies' `ToSchema`. The REST routes are mounted from those same
//! annotations ([`ApiRoutes::mount`]), so no route is served undocumented or documented unserved.
//! A handler lists only the statuses its own logic gives; `responses` gives each error its body
//! and adds the responses that come from shared code.
mod responses;

use std::{collections::BTreeMap, sync::Arc};

use poem::{Endpoint, Response, Route, endpoint::make_sync, http::Method};
use utoipa::{
    __dev::{SchemaReferences, Tags},
    PartialSchema, ToSchema,
    openapi::{
        ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr, Schema,
        path::HttpMethod,
        security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme},
        tag::TagBuilder,
    },
};

use super::methods::{self, Methods};
use crate::error::ErrorEnvelope;

/// The security scheme's name in the document; the cookie's own name comes from the settings.
const SESSION: &str = "session";

/// The REST routes and their documentation, built together.
#[derive(Default)]
pub struct ApiRoutes {
    methods: BTreeMap<String, Methods>,
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
        responses::describe_errors(&mut operation);
        responses::add_shared(&mut operation);
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
        let route = Route::new().at("/openapi.json", methods::get(serve));
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

fn document(paths: Paths, mut schemas: Vec<(String, RefOr<Schema>)>, cookie_name: &str) -> OpenApi {
    schemas.push((ErrorEnvelope::name().into(), ErrorEnvelope::schema()));
    ErrorEnvelope::schemas(&mut schemas);
    let cookie = ApiKeyValue::with_description(
        cookie_name,
        "The session cookie that register and login set (HttpOnly; a browser sends it itself)",
    );
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .responses_from_iter(responses::components())
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
