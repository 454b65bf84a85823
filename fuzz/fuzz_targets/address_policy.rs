//! The destination address policy (crates/core/src/net.rs): the operator's lists
//! (`allowed_networks`, `allowed_ports`, `dns_pins`), webhook and token-endpoint URLs
//! (`check_url`), broker URLs (`check_broker_url`) and the forbidden address kinds.
//!
//! Input: one flag byte (bit 0: allow http), then lines: networks, ports, pins, a URL, a
//! broker URL; then any 20 bytes read as an IPv4 and an IPv6 address.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hookrelay_core::net::{forbidden_kind, AddressPolicy};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};

const BROKER_SCHEMES: &[&str] = &["amqp", "amqps", "nats", "tls"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    addresses(rest);
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.splitn(5, '\n');
    let mut line = || lines.next().unwrap_or("");
    let (networks, ports, pins, url, broker) = (line(), line(), line(), line(), line());

    let networks = AddressPolicy::parse_networks(networks);
    if let Ok(networks) = &networks {
        for net in networks {
            assert_eq!(net.to_string().parse::<IpNet>().ok(), Some(*net));
        }
    }
    let ports = AddressPolicy::parse_ports(ports);
    if let Ok(ports) = &ports {
        assert!(ports.iter().all(|&p| p > 0));
    }
    let pins = AddressPolicy::parse_pins(pins);
    if let Ok(pins) = &pins {
        for (name, _) in pins {
            assert!(!name.is_empty() && !name.ends_with('.'));
            assert_eq!(*name, name.to_ascii_lowercase());
        }
    }
    let policy = AddressPolicy {
        allow_http: flags & 1 == 1,
        allowed_networks: networks.unwrap_or_default(),
        allowed_ports: ports.unwrap_or_default(),
        pinned: pins.unwrap_or_default(),
    };
    // A pinned name is found whatever its case and with a trailing dot; the first pin of
    // a name wins.
    for (name, _) in &policy.pinned {
        let first = policy
            .pinned
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ip)| *ip);
        assert_eq!(
            policy.pinned(&format!("{}.", name.to_ascii_uppercase())),
            first
        );
    }

    // The default policy allows no non-public address at all.
    let strict = AddressPolicy::default();
    for p in [&strict, &policy] {
        if let Ok(accepted) = p.check_url(url) {
            check_accepted_url(p, &accepted);
            assert!(matches!(accepted.scheme(), "https" | "http"));
            assert!(accepted.scheme() == "https" || p.allow_http);
            assert!(accepted.username().is_empty() && accepted.password().is_none());
            if !p.allowed_ports.is_empty() {
                let port = accepted
                    .port_or_known_default()
                    .expect("http(s) has a port");
                assert!(p.allowed_ports.contains(&port));
            }
            // What was accepted is accepted again as it is stored (serialized).
            if accepted.as_str().len() <= 2048 {
                assert!(p.check_url(accepted.as_str()).is_ok(), "{accepted}");
            }
        }
        if let Ok(accepted) = p.check_broker_url(broker, BROKER_SCHEMES, "a broker URL") {
            assert!(BROKER_SCHEMES.contains(&accepted.scheme()));
            check_accepted_url(p, &accepted);
            if accepted.as_str().len() <= 2048 {
                let again = p
                    .check_broker_url(accepted.as_str(), BROKER_SCHEMES, "a broker URL")
                    .expect("accepted, serialized, refused");
                assert_eq!(again.host(), accepted.host());
            }
        }
    }
});

/// The host of an accepted URL is no forbidden address the policy does not allow, and
/// not `localhost` unless loopback is allowed.
fn check_accepted_url(policy: &AddressPolicy, url: &Url) {
    let ip = match url.host().expect("accepted without a host") {
        Host::Ipv4(v4) => IpAddr::V4(v4),
        Host::Ipv6(v6) => IpAddr::V6(v6),
        Host::Domain(name) => match name.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    assert!(
                        allowed(policy, IpAddr::V4(Ipv4Addr::LOCALHOST))
                            || allowed(policy, IpAddr::V6(Ipv6Addr::LOCALHOST))
                    );
                }
                return;
            }
        },
    };
    if forbidden_kind(ip).is_some() {
        assert!(allowed(policy, ip), "{url} points to {ip}");
    }
}

/// Whether one of the allowed networks holds `ip`, or the IPv4 address it embeds.
fn allowed(policy: &AddressPolicy, ip: IpAddr) -> bool {
    let embedded = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    policy
        .allowed_networks
        .iter()
        .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
}

/// The IPv4 address an IPv4-mapped, IPv4-translated or NAT64 address carries.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    let carries = (s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff)
        || s[..6] == [0, 0, 0, 0, 0xffff, 0]
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]);
    carries.then_some(Ipv4Addr::new(a, b, c, d))
}

/// `forbidden_kind` judges an IPv6 address that carries an IPv4 one as that address.
fn addresses(rest: &[u8]) {
    let Some(bytes) = rest
        .get(rest.len().saturating_sub(20)..)
        .filter(|b| b.len() == 20)
    else {
        return;
    };
    let v4 = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[4..]);
    let v6 = Ipv6Addr::from(octets);
    let kind = forbidden_kind(IpAddr::V4(v4));
    assert_eq!(
        forbidden_kind(IpAddr::V6(v4.to_ipv6_mapped())),
        kind,
        "{v4}"
    );
    let [a, b, c, d] = v4.octets();
    let nat64 = Ipv6Addr::new(
        0x64,
        0xff9b,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    );
    assert_eq!(forbidden_kind(IpAddr::V6(nat64)), kind, "{nat64}");
    // Only global unicast (2000::/3) may be public.
    if forbidden_kind(IpAddr::V6(v6)).is_none() && embedded_v4(v6).is_none() {
        assert_eq!(v6.segments()[0] & 0xe000, 0x2000, "{v6}");
    }
    if kind.is_none() {
        assert!(!v4.is_private() && !v4.is_loopback() && !v4.is_link_local() && !v4.is_multicast());
    }
}
