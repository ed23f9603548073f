//! Trusted headers: an authenticator in front (an API gateway, a service mesh) has resolved
//! the caller and says so in a header. Believed only from the configured source networks,
//! since anyone else could set the same header.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use super::Principal;
use crate::config::TrustedHeaderConfig;
use crate::domain::Role;

#[derive(Debug)]
pub struct TrustedHeader {
    org_header: HeaderName,
    role_header: HeaderName,
    default_role: Role,
    networks: Vec<IpNet>,
}

impl TrustedHeader {
    pub fn new(config: &TrustedHeaderConfig) -> Self {
        Self {
            org_header: config.org_header.0.clone(),
            role_header: config.role_header.0.clone(),
            default_role: config.default_role,
            networks: config.networks.iter().map(|n| n.0).collect(),
        }
    }

    /// `None` when the header does not apply (absent, or from an untrusted peer), so other
    /// credentials are tried; `Some(None)` when it applies but is unusable, which refuses the
    /// request rather than falling back to a weaker check.
    pub fn resolve(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<Option<Principal>> {
        let org = headers.get(&self.org_header)?;
        let peer = peer?;
        if !self.networks.iter().any(|n| n.contains(&peer)) {
            tracing::debug!(%peer, "trusted org header from an untrusted peer ignored");
            return None;
        }
        let org = org.to_str().ok().map(str::trim).filter(|o| is_valid_org(o));
        let role = match headers.get(&self.role_header).map(|v| v.as_bytes()) {
            None => Some(self.default_role),
            Some(v) if v.eq_ignore_ascii_case(b"admin") => Some(Role::Admin),
            Some(v) if v.eq_ignore_ascii_case(b"member") => Some(Role::Member),
            Some(_) => None,
        };
        Some(org.zip(role).map(|(org, role)| Principal {
            org: org.to_string(),
            role,
        }))
    }
}

fn is_valid_org(org: &str) -> bool {
    !org.is_empty() && org.len() <= 256 && !org.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;

    fn trusted() -> TrustedHeader {
        TrustedHeader::new(&TrustedHeaderConfig {
            enabled: true,
            networks: ["10.0.0.0/8", "127.0.0.1"]
                .map(|n| Network::try_from(n.to_string()).unwrap())
                .to_vec(),
            ..Default::default()
        })
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn believed_only_from_trusted_networks() {
        let t = trusted();
        let h = headers(&[("x-authenticated-org", "acme")]);
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.168.1.1".parse().unwrap();
        let p = t.resolve(&h, Some(inside)).unwrap().unwrap();
        assert_eq!((p.org.as_str(), p.role), ("acme", Role::Member));
        assert!(t.resolve(&h, Some(outside)).is_none());
        assert!(t.resolve(&h, None).is_none());
        assert!(t.resolve(&headers(&[]), Some(inside)).is_none());
    }

    #[test]
    fn role_header_and_bad_values() {
        let t = trusted();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let admin = headers(&[
            ("x-authenticated-org", "acme"),
            ("x-authenticated-role", "Admin"),
        ]);
        assert_eq!(
            t.resolve(&admin, Some(local)).unwrap().unwrap().role,
            Role::Admin
        );
        let bogus = headers(&[
            ("x-authenticated-org", "acme"),
            ("x-authenticated-role", "root"),
        ]);
        assert_eq!(t.resolve(&bogus, Some(local)), Some(None));
        let empty = headers(&[("x-authenticated-org", " ")]);
        assert_eq!(t.resolve(&empty, Some(local)), Some(None));
    }

    #[test]
    fn networks_must_parse() {
        for network in ["10.0.0.0/8", "::1", "127.0.0.1"] {
            assert!(Network::try_from(network.to_string()).is_ok(), "{network}");
        }
        assert!(Network::try_from("ten".to_string()).is_err());
    }
}
