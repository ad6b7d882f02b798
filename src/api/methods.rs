//! Method routing for one path that knows its methods: a known path asked with a method it does
//! not have answers 405 `METHOD_NOT_ALLOWED` with an `Allow` header (RFC 9110 §15.5.6) naming
//! exactly the methods mounted on it. Every route of the app is built with it (the REST routes
//! from their annotations, the rest with [`get`]), so `Allow` can never drift from the router.
use poem::{Endpoint, IntoEndpoint, Request, Response, RouteMethod, http::Method};

use crate::error::AppError;

/// poem's [`RouteMethod`] (which also answers `HEAD` with the `GET` endpoint), plus the list
/// of what it routes, for `Allow`.
#[derive(Default)]
pub struct Methods {
    inner: RouteMethod,
    mounted: Vec<Method>,
}

impl Methods {
    #[must_use]
    pub fn method<E>(mut self, method: Method, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.mounted.push(method.clone());
        self.inner = self.inner.method(method, ep);
        self
    }

    fn routes(&self, method: &Method) -> bool {
        self.mounted.contains(method) || (method == Method::HEAD && self.routes(&Method::GET))
    }

    /// The `Allow` value: the mounted methods, and `HEAD` wherever `GET` is, in name order.
    pub fn allow(&self) -> String {
        let mut allow: Vec<&str> = self.mounted.iter().map(Method::as_str).collect();
        if self.routes(&Method::GET) && !self.mounted.contains(&Method::HEAD) {
            allow.push(Method::HEAD.as_str());
        }
        allow.sort_unstable();
        allow.join(", ")
    }
}

/// A path that only answers `GET` (and so `HEAD`).
pub fn get<E>(ep: E) -> Methods
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    Methods::default().method(Method::GET, ep)
}

impl Endpoint for Methods {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !self.routes(req.method()) {
            let allow = self.allow();
            return Err(AppError::MethodNotAllowed { allow }.into());
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::endpoint::make_sync;

    #[test]
    fn allow_names_every_mounted_method_and_head_beside_get() {
        let ok = || make_sync(|_| "ok");
        let methods = get(ok()).method(Method::POST, ok());
        assert_eq!(methods.allow(), "GET, HEAD, POST");
        assert!(methods.routes(&Method::HEAD));
        let post_only = Methods::default().method(Method::POST, ok());
        assert_eq!(post_only.allow(), "POST");
        assert!(!post_only.routes(&Method::HEAD));
    }
}
