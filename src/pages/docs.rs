//! `/api/docs`: Swagger UI rendering `/api/openapi.json`. Swagger UI is taken from npm at build
//! time (build.rs), like the Socket.IO client, so the page loads nothing from another host.
use poem::{IntoResponse, Response, Route, handler, http::StatusCode, web::Path};

use super::{Assets, content_type, methods, page, respond};

const BUNDLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js"));
const STYLES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css"));

pub fn routes() -> Route {
    Route::new()
        .at("/", methods::get(docs))
        .at("/assets/:file", methods::get(asset))
}

#[handler]
async fn docs() -> Response {
    page("docs.html")
}

#[handler]
async fn asset(Path(file): Path<String>) -> Response {
    let kind = content_type(&file);
    match file.as_str() {
        "swagger-ui-bundle.js" => respond(BUNDLE, kind),
        "swagger-ui.css" => respond(STYLES, kind),
        "docs.js" => match Assets::get(&file) {
            Some(f) => respond(f.data.into_owned(), kind),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
