//! The pages' security headers (CONTRACT §8): every HTML page, Swagger UI included, forbids
//! inline scripts and framing, and sends a referrer policy and `nosniff`.
use reqwest::StatusCode;

use crate::helpers::*;

/// The sources a CSP directive allows, or `None` when the policy lacks it.
fn directive<'a>(csp: &'a str, name: &str) -> Option<Vec<&'a str>> {
    csp.split(';').map(str::trim).find_map(|d| {
        let mut words = d.split_whitespace();
        (words.next() == Some(name)).then(|| words.collect())
    })
}

#[tokio::test]
async fn every_html_page_forbids_inline_scripts_and_framing() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let pages = [
        "/login".to_string(),
        "/".to_string(),
        format!("/test/realtime?vaultId={vault}"),
        "/api/docs".to_string(),
    ];
    for path in pages {
        let resp = owner.get(&path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{path} has no {name}"))
        };
        assert!(header("content-type").starts_with("text/html"), "{path}");
        let csp = header("content-security-policy");
        let scripts = directive(&csp, "script-src").expect("script-src");
        assert_eq!(scripts, ["'self'"], "{path}: {csp}");
        assert_eq!(
            directive(&csp, "frame-ancestors"),
            Some(vec!["'none'"]),
            "{path}"
        );
        assert_eq!(
            directive(&csp, "object-src"),
            Some(vec!["'none'"]),
            "{path}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
}
