//! Control-plane endpoints: parsing Terraform's `cluster_endpoint` and rendering `host:port`.

use serde_json::{Value, json};

/// The port of an endpoint URL that names none (the EKS API server listens on 443).
pub const DEFAULT_PORT: u16 = 443;

/// A control-plane endpoint, as `spec.controlPlaneEndpoint` {host, port}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, without scheme or brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `https://host[:port][/path]`, `host:port` or `host` (IPv6 in brackets), surrounding
    /// whitespace trimmed. The scheme, user info, path, query and fragment are dropped; no port
    /// or an empty one (`https://host:`) means 443; a port outside 1..65535 is rejected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            |why: &str| format!("cluster_endpoint \"{text}\" is not a valid endpoint: {why}");
        let trimmed = text.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                if scheme.is_empty()
                    || !scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                {
                    return Err(invalid("bad scheme"));
                }
                rest
            }
            None => trimmed,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
        {
            return Err(invalid("illegal character in host"));
        }
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(invalid("bad port")),
            },
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// Reads `{host, port}` from a `controlPlaneEndpoint` object; `None` when the host is unset.
    /// A missing or zero port means 443.
    pub fn from_spec(value: Option<&serde_json::Map<String, Value>>) -> Option<Self> {
        let value = value?;
        let host = value.get("host")?.as_str().filter(|h| !h.is_empty())?;
        let port = value
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_PORT);
        Some(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The `{host, port}` object for a spec.
    pub fn to_spec(&self) -> Value {
        json!({"host": self.host, "port": self.port})
    }

    /// `host:port` for display (`[v6]:port` for IPv6).
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, u16) {
        let e = Endpoint::parse(text).unwrap();
        (e.host, e.port)
    }

    #[test]
    fn urls_lose_their_scheme_and_default_to_443() {
        assert_eq!(
            ok("https://ABC.gr7.ap-northeast-1.eks.amazonaws.com"),
            ("ABC.gr7.ap-northeast-1.eks.amazonaws.com".into(), 443)
        );
        assert_eq!(ok("https://10.0.0.1:6443/"), ("10.0.0.1".into(), 6443));
        assert_eq!(ok("10.0.0.1:6443"), ("10.0.0.1".into(), 6443));
        assert_eq!(ok("api.example.com"), ("api.example.com".into(), 443));
        assert_eq!(
            ok("https://user@h.example:8443/path?q#f"),
            ("h.example".into(), 8443)
        );
        assert_eq!(ok("https://[fd00::1]:6443"), ("fd00::1".into(), 6443));
        assert_eq!(ok("https://h.example:"), ("h.example".into(), 443));
        assert_eq!(ok("  h.example:6443\n"), ("h.example".into(), 6443));
        assert_eq!(ok("[fd00::1]:"), ("fd00::1".into(), 443));
    }

    #[test]
    fn garbage_is_rejected_with_the_value() {
        for bad in [
            "",
            "https://",
            "https://:443",
            "host:port",
            "host:0",
            "host:70000",
            "ht tp://x",
            "bad host",
            "[::1",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(err.contains("cluster_endpoint"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn display_is_host_colon_port() {
        assert_eq!(
            Endpoint::parse("https://10.0.0.1").unwrap().display(),
            "10.0.0.1:443"
        );
        assert_eq!(
            Endpoint::parse("https://[fd00::1]").unwrap().display(),
            "[fd00::1]:443"
        );
    }

    #[test]
    fn spec_endpoints_need_a_host() {
        let spec = serde_json::json!({"host": "h", "port": 6443});
        assert_eq!(Endpoint::from_spec(spec.as_object()).unwrap().port, 6443);
        let no_port = serde_json::json!({"host": "h", "port": 0});
        assert_eq!(Endpoint::from_spec(no_port.as_object()).unwrap().port, 443);
        let empty = serde_json::json!({"host": "", "port": 0});
        assert_eq!(Endpoint::from_spec(empty.as_object()), None);
    }
}
