//! The pages of CONTRACT §8: static HTML, CSS and JS embedded in the binary, plus the
//! Socket.IO browser client, taken from npm at build time (build.rs), never from a CDN; and
//! the API's documentation page (`docs`).
pub mod docs;

use poem::{
    Body, IntoResponse, Request, Response, Route, handler,
    http::{HeaderValue, StatusCode, header},
    web::{Data, Path, Redirect},
};

use crate::{api::methods, security::authenticate, state::AppState};

#[derive(rust_embed::Embed)]
#[folder = "src/pages/assets/"]
struct Assets;

const SOCKET_IO_CLIENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/socket.io.min.js"));

pub fn routes() -> Route {
    Route::new()
        .at("/", methods::get(home))
        .at("/login", methods::get(login))
        .at("/test/realtime", methods::get(realtime))
        .at("/assets/:file", methods::get(asset))
}

#[handler]
async fn login() -> Response {
    page("login.html")
}

#[handler]
async fn home(req: &Request, state: Data<&AppState>) -> Response {
    signed_in_page(req, &state, "index.html").await
}

#[handler]
async fn realtime(req: &Request, state: Data<&AppState>) -> Response {
    signed_in_page(req, &state, "realtime.html").await
}

/// The page, or a redirect to `/login?next=<this page>` without a valid session.
async fn signed_in_page(req: &Request, state: &AppState, file: &str) -> Response {
    match authenticate(state, req.headers()).await {
        Ok(_) => page(file),
        Err(_) => {
            let here = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Redirect::see_other(format!("/login?next={next}")).into_response()
        }
    }
}

/// Every page, Swagger UI's included, loads scripts, styles and connections from this origin
/// only (the Socket.IO WebSocket included: `'self'` matches `ws:`/`wss:` to the same host)
/// and may not be framed. `data:` images are the pages' empty favicon. Swagger UI needs no
/// `'unsafe-inline'` styles: React sets them through the CSSOM, which CSP leaves alone (the
/// Chromium suites fail on any violation).
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// An HTML page with its security headers (CONTRACT §8).
fn page(file: &str) -> Response {
    let Some(f) = Assets::get(file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut resp = respond(f.data.into_owned(), "text/html; charset=utf-8");
    let headers = resp.headers_mut();
    for (name, value) in [
        ("content-security-policy", PAGE_CSP),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_str(value).expect("a valid header"));
    }
    resp
}

#[handler]
async fn asset(Path(file): Path<String>) -> Response {
    if file == "socket.io.min.js" {
        return respond(SOCKET_IO_CLIENT, content_type(&file));
    }
    match Assets::get(&file) {
        Some(f) => respond(f.data.into_owned(), content_type(&file)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn respond(body: impl Into<Body>, content_type: &str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .body(body)
}
