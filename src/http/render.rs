//! Pages from templates. Every page of the dashboard and the sandbox is an askama template under
//! `templates/`, compiled into the binary and checked when it is built; it escapes every value it
//! prints, so no handler escapes anything by hand. Rendering can still fail at run time (a
//! value's `Display` failing): that is [`RenderError`], a 500 with a short Chinese page, logged.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// What a browser shows when a page could not be rendered. Static, so it cannot fail itself.
const FAILED_PAGE: &str = include_str!("../../templates/render_failed.html");

/// A template failed to render.
#[derive(Debug, thiserror::Error)]
#[error("页面生成失败：{0}")]
pub struct RenderError(#[from] askama::Error);

/// The page `template` renders to.
pub fn render(template: &impl Template) -> Result<String, RenderError> {
    Ok(template.render()?)
}

impl IntoResponse for RenderError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "a page template failed to render");
        failed_page()
    }
}

/// The 500 page: a template failed, and the cause is in the log.
fn failed_page() -> Response {
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, Html(FAILED_PAGE)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// A value whose `Display` fails, as a broken one would.
    struct Broken;

    impl fmt::Display for Broken {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            Err(fmt::Error)
        }
    }

    #[derive(Template)]
    #[template(source = "<p>{{ value }}</p>", ext = "html")]
    struct Page<T: fmt::Display> {
        value: T,
    }

    #[tokio::test]
    async fn a_page_that_fails_to_render_is_a_500_with_a_chinese_page() {
        assert_eq!(
            render(&Page { value: "<b>" }).expect("render"),
            "<p>&#60;b&#62;</p>"
        );
        let error = render(&Page { value: Broken }).expect_err("Display failed");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("页面生成失败"), "{text}");
    }
}
