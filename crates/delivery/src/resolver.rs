//! The SSRF guard on the address actually connected to
//! (docs/security.md#destination-address-policy).
//!
//! The API refuses destinations that are literally a forbidden address when they are
//! made, but a name can resolve to anything, and can resolve differently by the time a
//! delivery is sent (DNS rebinding). So the shared HTTP client resolves names through
//! [`GuardedResolver`], which hands the connector only addresses that pass
//! [`AddressPolicy::check_ip`]: the check and the connection use the same answer.
//! reqwest never calls a resolver for IP-literal hosts, so callers run [`check_target`]
//! before every request to cover those.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hookrelay_core::net::{forbidden_kind, AddressPolicy};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a name was not resolved to a usable address. It travels inside an [`io::Error`]
/// through hyper's connector; [`crate::destinations::webhook::http::describe_error`] finds it again to tell the
/// user the exact reason.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Every address the name resolved to is forbidden by the policy; the first is named.
    #[error("forbidden address {ip} ({kind})")]
    Forbidden { ip: IpAddr, kind: &'static str },
    /// The lookup itself failed.
    #[error("dns error: {0}")]
    Dns(io::Error),
    /// The lookup succeeded but returned no address at all.
    #[error("dns error: no addresses found")]
    NoAddresses,
}

impl ResolveError {
    /// The refusal for `ip`, or `None` when the policy allows it.
    pub fn check(policy: &AddressPolicy, ip: IpAddr) -> Option<Self> {
        policy.check_ip(ip).err().map(|_| ResolveError::Forbidden {
            ip,
            kind: kind_word(ip),
        })
    }
}

/// `forbidden_kind` words read as "a loopback"; the log says "(loopback)".
fn kind_word(ip: IpAddr) -> &'static str {
    let kind = forbidden_kind(ip).unwrap_or("forbidden");
    kind.strip_prefix("an ")
        .or_else(|| kind.strip_prefix("a "))
        .unwrap_or(kind)
}

/// A `reqwest` resolver that drops every address the [`AddressPolicy`] forbids.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }

    /// Resolves `name` (with its pin, or the system resolver) and keeps the allowed addresses. Public
    /// so that it can be exercised without a client.
    pub async fn lookup(&self, name: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let resolved: Vec<SocketAddr> = match self.policy.pinned(name) {
            // A pinned name's address is judged like any answer from DNS.
            Some(ip) => vec![SocketAddr::new(ip, 0)],
            None => tokio::net::lookup_host((name, 0))
                .await
                .map_err(ResolveError::Dns)?
                .collect(),
        };
        let mut refused = None;
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|addr| match ResolveError::check(&self.policy, addr.ip()) {
                Some(err) => {
                    refused.get_or_insert(err);
                    false
                }
                None => true,
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(err)) => Err(err),
            (true, None) => Err(ResolveError::NoAddresses),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            match this.lookup(name.as_str()).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(err) => {
                    let kind = match err {
                        ResolveError::Forbidden { .. } => io::ErrorKind::PermissionDenied,
                        _ => io::ErrorKind::Other,
                    };
                    Err(Box::new(io::Error::new(kind, err)) as _)
                }
            }
        })
    }
}

/// The pre-send check of a destination or token endpoint URL: the scheme, and a host that
/// is an IP literal (reqwest connects to those without asking the resolver). Names,
/// `localhost` included, are left to [`GuardedResolver`], which refuses them once they
/// resolve to a forbidden address.
pub fn check_target(policy: &AddressPolicy, url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        other if policy.allow_http => {
            return Err(format!(
                "scheme {other} is not allowed (http or https only)"
            ))
        }
        other => return Err(format!("scheme {other} is not allowed (https only)")),
    }
    if let Err(e) = policy.check_port(url) {
        return Err(format!("the URL {e}"));
    }
    let ip = match url.host() {
        None => return Err("URL has no host".to_owned()),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    match ResolveError::check(policy, ip) {
        Some(err) => Err(err.to_string()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> AddressPolicy {
        AddressPolicy {
            allow_http: true,
            allowed_networks: Vec::new(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        }
    }

    fn loopback_allowed() -> AddressPolicy {
        AddressPolicy {
            allow_http: true,
            allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8").unwrap(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn loopback_literal_refused_unless_allowed() {
        assert_eq!(
            check_target(&strict(), &url("http://127.0.0.1:8080/x")),
            Err("forbidden address 127.0.0.1 (loopback)".to_owned())
        );
        assert_eq!(
            check_target(&loopback_allowed(), &url("http://127.0.0.1:8080/x")),
            Ok(())
        );
        assert_eq!(
            check_target(&strict(), &url("https://10.0.0.1/")),
            Err("forbidden address 10.0.0.1 (private)".to_owned())
        );
        assert_eq!(
            check_target(&strict(), &url("https://100.64.1.1/")),
            Err("forbidden address 100.64.1.1 (CGNAT)".to_owned())
        );
        assert_eq!(
            check_target(&strict(), &url("https://93.184.216.34/")),
            Ok(())
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_literal_refused() {
        let err = check_target(&strict(), &url("https://[::ffff:127.0.0.1]/")).unwrap_err();
        assert!(
            err.starts_with("forbidden address ::ffff:127.0.0.1"),
            "{err}"
        );
        assert!(err.ends_with("(loopback)"), "{err}");
        assert!(check_target(&strict(), &url("https://[::1]/")).is_err());
        // The mapped form is judged as the IPv4 address it carries.
        assert_eq!(
            check_target(&loopback_allowed(), &url("https://[::ffff:127.0.0.1]/")),
            Ok(())
        );
    }

    #[test]
    fn scheme_rules() {
        let https_only = AddressPolicy::default();
        assert!(check_target(&https_only, &url("http://example.com/")).is_err());
        assert!(check_target(&https_only, &url("https://example.com/")).is_ok());
        assert!(check_target(&strict(), &url("http://example.com/")).is_ok());
        assert!(check_target(&strict(), &url("ftp://example.com/")).is_err());
        // Names, localhost included, are the resolver's job.
        assert!(check_target(&strict(), &url("http://localhost/")).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_localhost() {
        let resolver = GuardedResolver::new(Arc::new(strict()));
        let err = resolver.lookup("localhost").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text == "forbidden address 127.0.0.1 (loopback)"
                || text == "forbidden address ::1 (loopback)",
            "{text}"
        );

        let open = GuardedResolver::new(Arc::new(AddressPolicy {
            allow_http: true,
            allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8, ::1").unwrap(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        }));
        let addrs = open.lookup("localhost").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn resolver_error_travels_as_io_error() {
        let resolver = GuardedResolver::new(Arc::new(strict()));
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(err) => err,
        };
        let io = err.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
        assert!(io.to_string().starts_with("forbidden address "), "{io}");
    }
}
