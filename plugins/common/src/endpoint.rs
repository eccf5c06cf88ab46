//! Checking a configured endpoint URL before anything is sent to it.
//!
//! Why it is shared: every HTTP sink lets the user override its endpoints, and a
//! mistyped one must be a config error naming the field (reported by `create` and
//! `tfo-agent validate`), not a failure at the first export. The check is the
//! same wherever the plugin needs nothing more specific.

/// `Ok` for an absolute `http://` or `https://` URL with a host; else why not.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = url.trim();
    if u.is_empty() {
        return Err("must not be empty".into());
    }
    let uri: http::Uri = u.parse().map_err(|e| format!("{u:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{u:?} must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{u:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn accepts_http_urls_and_says_why_not() {
        assert!(check_url("https://api.example.com/v1/x").is_ok());
        assert!(check_url(" http://127.0.0.1:8080 ").is_ok());
        assert_eq!(check_url("  ").unwrap_err(), "must not be empty");
        assert!(check_url("ftp://h/x").unwrap_err().contains("http://"));
        assert!(check_url("not a url").unwrap_err().contains("is not a URL"));
        assert!(check_url("/just/a/path").is_err());
    }
}
