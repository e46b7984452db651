//! The hosted connect page's HTML: plain, accessible markup with one inline style sheet, no script
//! and no external asset, readable on a phone. Every value written into a page is escaped; secret
//! fields are never written back.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--line:#d0d7de;--accent:#0b57d0;--bad:#b3261e}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#14171a;--card:#1d2125;--line:#3a4149;--accent:#8ab4f8;--bad:#f2b8b5}}\
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:34rem;margin:0 auto;padding:1.5rem 1rem 3rem}h1{font-size:1.5rem;margin:.5rem 0 1rem}\
h2{font-size:1.15rem;margin:0 0 .5rem}section{background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:1rem 1.1rem;margin:0 0 1rem}\
label{display:block;font-weight:600;margin:.75rem 0 .25rem}input{width:100%;font:inherit;padding:.6rem .7rem;border:1px solid var(--line);border-radius:.5rem;background:transparent;color:inherit}\
input:focus,a:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}.help{font-size:.9rem;opacity:.8;margin:.2rem 0 0}\
.button,button{display:inline-block;margin-top:1rem;padding:.65rem 1.1rem;font:inherit;font-weight:600;color:#fff;background:var(--accent);border:0;border-radius:.5rem;text-decoration:none;cursor:pointer}\
@media (prefers-color-scheme:dark){.button,button{color:#0b1320}}.error{color:var(--bad);font-weight:600}\
.errors{border-color:var(--bad)}p.lead{margin:0 0 1rem}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (text) and `body` (HTML the caller escaped), with the headers every
/// connect page carries. `form_origins` are where its forms may go after they are submitted (the
/// return URL's origin: a form's answer redirects there).
pub fn page(status: StatusCode, title: &str, body: &str, form_origins: &[String]) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut form_action = String::from("'self'");
    for origin in form_origins {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action {form_action}; \
         base-uri 'none'; frame-ancestors 'none'"
    );
    html_response(status, html, &csp)
}

/// An HTML page's response: not cached, never framed, never sent on as a referrer (a page's URL
/// may hold a link's token), under the content security policy `csp`.
pub fn html_response(status: StatusCode, html: String, csp: &str) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(HeaderName::from_static("content-security-policy"), value);
    }
    response
}

/// A page that says what happened and, when there is one, links back to the tenant's app.
pub fn notice(status: StatusCode, title: &str, message: &str, back: Option<&str>) -> Response {
    let mut body = format!(
        "<h1>{}</h1><section role=\"status\"><p class=\"lead\">{}</p>",
        escape(title),
        escape(message)
    );
    if let Some(back) = back {
        body.push_str(&format!(
            "<a class=\"button\" href=\"{}\">Back to the app</a>",
            escape(back)
        ));
    }
    body.push_str("</section>");
    page(status, title, &body, &[])
}

/// One input of a credential form.
pub struct Input<'a> {
    /// The form field's name (`config.subdomain`, `credentials.api_key`).
    pub name: String,
    /// Label.
    pub label: &'a str,
    /// Help text.
    pub help: Option<&'a str>,
    /// Whether it must be filled in.
    pub required: bool,
    /// Whether it is secret (never written back into the page).
    pub secret: bool,
    /// The browser-side pattern (checked again on the server).
    pub pattern: Option<&'a str>,
    /// The value to show again (not for secrets).
    pub value: Option<&'a str>,
    /// What was wrong with it.
    pub error: Option<String>,
}

/// The inputs of a form, as HTML.
pub fn inputs(id: &str, inputs: &[Input<'_>]) -> String {
    let mut out = String::new();
    for (i, input) in inputs.iter().enumerate() {
        let field_id = format!("{id}-{i}");
        let mut described = Vec::new();
        out.push_str(&format!(
            "<label for=\"{field_id}\">{}</label>",
            escape(input.label)
        ));
        if let Some(help) = input.help {
            described.push(format!("{field_id}-help"));
            out.push_str(&format!(
                "<p class=\"help\" id=\"{field_id}-help\">{}</p>",
                escape(help)
            ));
        }
        if let Some(error) = &input.error {
            described.push(format!("{field_id}-error"));
            out.push_str(&format!(
                "<p class=\"error\" id=\"{field_id}-error\">{}</p>",
                escape(error)
            ));
        }
        out.push_str(&format!(
            "<input id=\"{field_id}\" name=\"{}\" type=\"{}\" autocomplete=\"off\" spellcheck=\"false\"",
            escape(&input.name),
            if input.secret { "password" } else { "text" }
        ));
        if input.required {
            out.push_str(" required");
        }
        if let Some(pattern) = input.pattern {
            out.push_str(&format!(" pattern=\"{}\"", escape(pattern)));
        }
        if let (false, Some(value)) = (input.secret, input.value) {
            out.push_str(&format!(" value=\"{}\"", escape(value)));
        }
        if input.error.is_some() {
            out.push_str(" aria-invalid=\"true\"");
        }
        if !described.is_empty() {
            out.push_str(&format!(" aria-describedby=\"{}\"", described.join(" ")));
        }
        out.push('>');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_secrets_never_written_back() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = inputs(
            "f",
            &[
                Input {
                    name: "credentials.api_key".into(),
                    label: "Key <b>",
                    help: None,
                    required: true,
                    secret: true,
                    pattern: Some("^a\"b$"),
                    value: Some("sk_live_secret"),
                    error: Some("wrong".into()),
                },
                Input {
                    name: "config.subdomain".into(),
                    label: "Subdomain",
                    help: Some("The part before .example.com"),
                    required: false,
                    secret: false,
                    pattern: None,
                    value: Some("acme\"><script>"),
                    error: None,
                },
            ],
        );
        assert!(!html.contains("sk_live_secret"));
        assert!(!html.contains("<script>") && !html.contains("<b>"));
        assert!(html.contains("type=\"password\""));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("value=\"acme&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("pattern=\"^a&quot;b$\""));
    }
}
