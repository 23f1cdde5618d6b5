//! What stands between the page and a request that is not the reviewer's: the Host check
//! (a DNS-rebinding page names another host), the CSRF token and origin check on the writes
//! (another site can make the browser post, but cannot read the token), and the headers every
//! response carries (a strict Content-Security-Policy: no inline script, nothing from elsewhere).

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

/// The Content-Security-Policy of every response: own scripts, styles and images only; no
/// inline script or style; forms post only here; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The checks of one running dashboard.
#[derive(Clone, Debug)]
pub struct Guard {
    /// `host:port` values a request may name.
    hosts: Vec<String>,
    origin: String,
    csrf_token: String,
}

impl Guard {
    /// The guard of a dashboard listening on `bound`, with a fresh random CSRF token.
    pub fn new(bound: SocketAddr) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the CSRF token: {e}"))?;
        Ok(Self::with_token(bound, hex::encode(bytes)))
    }

    pub fn with_token(bound: SocketAddr, csrf_token: String) -> Self {
        let port = bound.port();
        let mut hosts = vec![bound.to_string()];
        if bound.ip().is_loopback() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        hosts.dedup();
        Self {
            origin: format!("http://{bound}"),
            hosts,
            csrf_token,
        }
    }

    /// The URL the dashboard is reached at.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }

    /// Whether the request names this dashboard as its host (a rebound DNS name does not).
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| self.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)))
    }

    /// Whether a write comes from this dashboard's own page: the token it rendered, and (when
    /// the browser says) this origin and a same-origin fetch.
    pub fn write_allowed(&self, headers: &HeaderMap, token: &str) -> Result<(), &'static str> {
        if !constant_time_eq(token.as_bytes(), self.csrf_token.as_bytes()) {
            return Err("the form's CSRF token is missing or not this dashboard's; reload the page and try again");
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let ours = self
                .hosts
                .iter()
                .any(|host| origin.eq_ignore_ascii_case(&format!("http://{host}")));
            if !ours {
                return Err("the request came from another origin");
            }
        }
        if let Some(site) = headers.get("sec-fetch-site").and_then(|s| s.to_str().ok())
            && !matches!(site, "same-origin" | "none")
        {
            return Err("the request came from another site");
        }
        Ok(())
    }
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn guard() -> Guard {
        Guard::with_token("127.0.0.1:3100".parse().unwrap(), "t0k3n".into())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_requests_naming_this_dashboard_are_served() {
        let g = guard();
        assert!(g.host_allowed(&headers(&[("host", "127.0.0.1:3100")])));
        assert!(g.host_allowed(&headers(&[("host", "localhost:3100")])));
        assert!(!g.host_allowed(&headers(&[("host", "attacker.example:3100")])));
        assert!(!g.host_allowed(&headers(&[("host", "localhost:3101")])));
        assert!(!g.host_allowed(&headers(&[])));
        // A remote bind names only itself.
        let remote = Guard::with_token("10.0.0.5:3100".parse().unwrap(), "t".into());
        assert!(remote.host_allowed(&headers(&[("host", "10.0.0.5:3100")])));
        assert!(!remote.host_allowed(&headers(&[("host", "localhost:3100")])));
    }

    #[test]
    fn writes_need_the_token_and_this_origin() {
        let g = guard();
        let same = headers(&[("origin", "http://127.0.0.1:3100"), ("sec-fetch-site", "same-origin")]);
        assert_eq!(g.write_allowed(&same, "t0k3n"), Ok(()));
        assert!(g.write_allowed(&same, "wrong").is_err());
        assert!(g.write_allowed(&same, "").is_err());
        let elsewhere = headers(&[("origin", "http://evil.example")]);
        assert_eq!(
            g.write_allowed(&elsewhere, "t0k3n"),
            Err("the request came from another origin")
        );
        let cross = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(
            g.write_allowed(&cross, "t0k3n"),
            Err("the request came from another site")
        );
        // Older clients send neither header: the token alone decides.
        assert_eq!(g.write_allowed(&HeaderMap::new(), "t0k3n"), Ok(()));
    }

    #[test]
    fn fresh_tokens_differ() {
        let bound = "127.0.0.1:1".parse().unwrap();
        let (a, b) = (Guard::new(bound).unwrap(), Guard::new(bound).unwrap());
        assert_eq!(a.csrf_token().len(), 64);
        assert_ne!(a.csrf_token(), b.csrf_token());
    }
}
