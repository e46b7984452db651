//! Deployment-wide provider origin overrides (`PROVIDER_ORIGINS`): `provider=origin` pairs that send
//! every request to a provider (its API, authorization and token endpoints) to another origin,
//! keeping the path. For local providers in development and tests; set by the deployment only (a
//! template parameter, empty in AWS), never by a tenant or an end user.

use std::collections::BTreeMap;

/// Provider id → origin (`scheme://host[:port]`).
pub type ProviderOrigins = BTreeMap<String, String>;

/// Parses `provider=url` pairs, comma-separated; blank entries are skipped.
pub fn parse(raw: &str) -> Result<ProviderOrigins, String> {
    let mut out = BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (provider, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not `provider=url`"))?;
        let parsed = url::Url::parse(url.trim()).map_err(|e| format!("`{provider}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{provider}`: not an http(s) URL"));
        }
        out.insert(provider.trim().to_owned(), url.trim().to_owned());
    }
    Ok(out)
}

/// A URL template of `provider` (its base URL, an OAuth endpoint) sent to its override, keeping its
/// path; unchanged without one, or when the template's host is itself a value (a whole URL from
/// the connection, which the override cannot know).
pub fn provider_url(origins: &ProviderOrigins, provider: &str, template: &str) -> String {
    let Some(origin) = origins.get(provider) else {
        return template.to_owned();
    };
    if template.starts_with('{') {
        return template.to_owned();
    }
    let after_scheme = template.find("://").map_or(0, |i| i + 3);
    let path = template[after_scheme..]
        .find('/')
        .map_or("", |i| &template[after_scheme + i..]);
    format!("{origin}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_keeps_the_path_and_skips_value_hosts() {
        let origins = parse("stripe=http://127.0.0.1:9000, ,jira=https://j.test").unwrap();
        assert_eq!(
            provider_url(&origins, "stripe", "https://api.stripe.com/v1/customers"),
            "http://127.0.0.1:9000/v1/customers"
        );
        assert_eq!(
            provider_url(&origins, "stripe", "https://api.stripe.com"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            provider_url(&origins, "jira", "{config.site}/rest/api/3"),
            "{config.site}/rest/api/3"
        );
        assert_eq!(
            provider_url(&origins, "github", "https://api.github.com/user"),
            "https://api.github.com/user"
        );
    }

    #[test]
    fn bad_pairs_are_refused() {
        assert!(parse("stripe").is_err());
        assert!(parse("stripe=ftp://x").is_err());
        assert!(parse("stripe=not a url").is_err());
    }
}
