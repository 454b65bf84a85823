//! Which network addresses a destination may point at
//! (docs/security.md#destination-address-policy), and the creation-time check of
//! destination URLs. The delivery engine applies [`AddressPolicy::check_ip`] again to the
//! address it actually connects to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// The rules destinations are held to.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Allow `http://` as well as `https://`.
    pub allow_http: bool,
    /// Networks allowed although they are non-public (tests use `127.0.0.0/8`).
    pub allowed_networks: Vec<IpNet>,
    /// The only ports webhook URLs and token endpoints may use (BigCommerce allows only
    /// 443); empty: any port.
    pub allowed_ports: Vec<u16>,
    /// Names resolved to a fixed address instead of asking DNS (`dns_pins`, like curl's
    /// `--resolve`); the address is still judged by the policy.
    pub pinned: Vec<(String, IpAddr)>,
}

/// Why a destination was refused. The `Display` text completes a sentence that starts with
/// the field's path (`…/url must be an https URL`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("must be a valid absolute URL ({0})")]
    Malformed(String),
    #[error("must be an https URL")]
    NotHttps,
    #[error("must be an http or https URL")]
    BadScheme,
    #[error("must have a host")]
    NoHost,
    #[error("must not carry credentials; use an auth profile")]
    Credentials,
    #[error("must not point to {0} address {1}")]
    Forbidden(&'static str, IpAddr),
    #[error("must not point to localhost")]
    Localhost,
    #[error("must be at most 2048 characters long")]
    TooLong,
    #[error("must be a URL with the scheme {0}")]
    Scheme(&'static str),
    #[error("must use an allowed port ({allowed}), not {port}")]
    Port { port: u16, allowed: String },
}

impl AddressPolicy {
    /// Parses a list of CIDRs separated by commas (blank entries ignored). A bare address
    /// means that one address.
    pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR network (e.g. 127.0.0.0/8)"))
            })
            .collect()
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed_networks.iter().any(|net| net.contains(&ip))
    }

    /// Checks one address: `Err` names the kind of forbidden address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), DestinationError> {
        match forbidden_kind(ip) {
            Some(kind) if !self.allowed(ip) => Err(DestinationError::Forbidden(kind, ip)),
            _ => Ok(()),
        }
    }

    /// The creation-time check of a webhook URL or token endpoint: scheme, host, and a
    /// host that is literally a forbidden address or `localhost`. No DNS lookup.
    pub fn check_url(&self, raw: &str) -> Result<Url, DestinationError> {
        if raw.len() > 2048 {
            return Err(DestinationError::TooLong);
        }
        let url = Url::parse(raw).map_err(|e| DestinationError::Malformed(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ if self.allow_http => return Err(DestinationError::BadScheme),
            _ => return Err(DestinationError::NotHttps),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        self.check_port(&url)?;
        self.check_host(&url)?;
        Ok(url)
    }

    /// `allowed_ports`, at creation and again before each request: the URL's port, or its
    /// scheme's default, must be one of them.
    pub fn check_port(&self, url: &Url) -> Result<(), DestinationError> {
        if self.allowed_ports.is_empty() {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        if self.allowed_ports.contains(&port) {
            return Ok(());
        }
        let allowed: Vec<String> = self.allowed_ports.iter().map(u16::to_string).collect();
        Err(DestinationError::Port {
            port,
            allowed: allowed.join(", "),
        })
    }

    /// Parses `dns_pins`: `name=address` pairs separated by commas (blank entries
    /// ignored). Names are compared without case and without a trailing dot.
    pub fn parse_pins(list: &str) -> Result<Vec<(String, IpAddr)>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pin| {
                let (name, ip) = pin
                    .split_once('=')
                    .ok_or_else(|| format!("{pin:?} is not name=address"))?;
                let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
                if name.is_empty() {
                    return Err(format!("{pin:?} has no name"));
                }
                let ip = ip
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map_err(|_| format!("{pin:?}: {:?} is not an IP address", ip.trim()))?;
                Ok((name, ip))
            })
            .collect()
    }

    /// The address `name` is pinned to, if it is.
    pub fn pinned(&self, name: &str) -> Option<IpAddr> {
        let name = name.trim_end_matches('.');
        self.pinned
            .iter()
            .find(|(pinned, _)| pinned.eq_ignore_ascii_case(name))
            .map(|(_, ip)| *ip)
    }

    /// Parses `allowed_ports`: ports separated by commas (blank entries ignored).
    pub fn parse_ports(list: &str) -> Result<Vec<u16>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(format!("{s:?} is not a port (1-65535)")),
            })
            .collect()
    }

    /// The creation-time check of a broker URL (`amqp://`, `nats://`…): one of `schemes`
    /// (`described` names them for the error), and a host that is not literally a
    /// forbidden address or `localhost`. Credentials are allowed: the caller seals them.
    pub fn check_broker_url(
        &self,
        raw: &str,
        schemes: &[&str],
        described: &'static str,
    ) -> Result<Url, DestinationError> {
        if raw.len() > 2048 {
            return Err(DestinationError::TooLong);
        }
        let url = Url::parse(raw).map_err(|e| DestinationError::Malformed(e.to_string()))?;
        if !schemes.contains(&url.scheme()) {
            return Err(DestinationError::Scheme(described));
        }
        self.check_host(&url)?;
        Ok(url)
    }

    fn check_host(&self, url: &Url) -> Result<(), DestinationError> {
        match url.host() {
            None => return Err(DestinationError::NoHost),
            Some(Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4))?,
            Some(Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6))?,
            // URLs of schemes the URL standard does not know (`amqp`, `nats`) keep an IP
            // address as a name: it is judged as the address it is.
            Some(Host::Domain(name)) if name.parse::<IpAddr>().is_ok() => {
                if let Ok(ip) = name.parse::<IpAddr>() {
                    self.check_ip(ip)?;
                }
            }
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    let loopback_allowed = self.allowed(IpAddr::V4(Ipv4Addr::LOCALHOST))
                        || self.allowed(IpAddr::V6(Ipv6Addr::LOCALHOST));
                    if !loopback_allowed {
                        return Err(DestinationError::Localhost);
                    }
                }
            }
        }
        Ok(())
    }
}

/// IPv6 forms that carry an IPv4 address are judged as that address
/// (docs/security.md#destination-address-policy): IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-translated (`::ffff:0:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`). 6to4 is refused
/// whole ([`forbidden_v6`]).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let translated = s[..6] == [0, 0, 0, 0, 0xffff, 0];
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if translated || nat64 {
                let [.., a, b, c, d] = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// `Some(kind)` when `ip` is not a public unicast address.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_unspecified() || a == 0 => "an unspecified",
        _ if ip.is_loopback() => "a loopback",
        _ if ip.is_private() => "a private",
        _ if ip.is_link_local() => "a link-local",
        _ if a == 100 && (64..128).contains(&b) => "a CGNAT",
        _ if ip.is_multicast() => "a multicast",
        _ if ip.is_broadcast() => "a broadcast",
        _ if ip.is_documentation() => "a documentation",
        _ if a == 198 && (b == 18 || b == 19) => "a benchmarking",
        _ if a == 192 && b == 0 && c == 0 => "a reserved",
        // The 6to4 relay anycast prefix (deprecated): it forwards into IPv6.
        _ if a == 192 && b == 88 && c == 99 => "a 6to4 relay",
        _ if a >= 240 => "a reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match () {
        _ if ip.is_unspecified() => "an unspecified",
        _ if ip.is_loopback() => "a loopback",
        _ if ip.is_multicast() => "a multicast",
        _ if (s[0] & 0xfe00) == 0xfc00 => "a private",
        _ if (s[0] & 0xffc0) == 0xfe80 => "a link-local",
        _ if (s[0] & 0xffc0) == 0xfec0 => "a site-local",
        _ if s[0] == 0x2001 && s[1] == 0x0db8 => "a documentation",
        _ if s[0] == 0x3fff && s[1] < 0x1000 => "a documentation",
        // 6to4 reaches the IPv4 address it carries (2002:a9fe:a9fe:: is 169.254.169.254)
        // through whichever relay answers; nothing legitimate needs it any more.
        _ if s[0] == 0x2002 => "a 6to4",
        // IPv4-compatible (deprecated) ::a.b.c.d
        _ if s[..6] == [0, 0, 0, 0, 0, 0] => "a reserved",
        // IETF protocol assignments: Teredo (which tunnels to an IPv4 address it hides),
        // benchmarking, ORCHID and the like; none is a webhook host.
        _ if s[0] == 0x2001 && s[1] < 0x0200 => "a reserved",
        // Only 2000::/3 is global unicast. The rest is reserved or special: the discard
        // prefix 100::/64, NAT64's local-use 64:ff9b:1::/48, SRv6 SIDs in 5f00::/16, and
        // whatever is not yet assigned.
        _ if (s[0] & 0xe000) != 0x2000 => "a reserved",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AddressPolicy {
        AddressPolicy::default()
    }

    #[test]
    fn broker_urls_are_held_to_the_same_policy() {
        let p = policy();
        let check = |u: &str| p.check_broker_url(u, &["amqp", "amqps"], "amqp://");
        assert!(check("amqp://guest:guest@broker.example.com:5672/%2f").is_ok());
        assert_eq!(
            check("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Err(DestinationError::Forbidden(
                "a loopback",
                "127.0.0.1".parse().unwrap()
            ))
        );
        assert!(matches!(
            check("amqp://10.0.0.5/"),
            Err(DestinationError::Forbidden(..))
        ));
        assert!(matches!(
            check("amqp://[::1]/"),
            Err(DestinationError::Forbidden(..))
        ));
        assert_eq!(check("amqp://localhost/"), Err(DestinationError::Localhost));
        assert_eq!(
            check("http://broker/"),
            Err(DestinationError::Scheme("amqp://"))
        );
        let open = AddressPolicy {
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..AddressPolicy::default()
        };
        assert!(open
            .check_broker_url("amqp://127.0.0.1/", &["amqp"], "amqp://")
            .is_ok());
    }

    #[test]
    fn https_required_unless_allow_http() {
        assert_eq!(
            policy().check_url("http://example.com/x"),
            Err(DestinationError::NotHttps)
        );
        assert!(policy().check_url("https://example.com/x").is_ok());
        let p = AddressPolicy {
            allow_http: true,
            ..Default::default()
        };
        assert!(p.check_url("http://example.com/x").is_ok());
        assert_eq!(
            p.check_url("ftp://example.com"),
            Err(DestinationError::BadScheme)
        );
    }

    #[test]
    fn literal_internal_hosts_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://0.0.0.0/",
            "https://192.0.2.1/",
            "https://[64:ff9b::a00:1]/",
            // 6to4, around 169.254.169.254 and around a public address; its relays.
            "https://[2002:a9fe:a9fe::]/",
            "https://[2002:5db8:d822::1]/",
            "https://192.88.99.1/",
            // IPv4-translated 127.0.0.1.
            "https://[::ffff:0:7f00:1]/",
            "https://[3fff::1]/",
            "https://[5f00::1]/",
            "https://[100::1]/",
            "https://[64:ff9b:1::a00:1]/",
            "https://[2001::1]/",
            "https://[2001:2::1]/",
            "https://[4000::1]/",
            // Decimal, hex, octal and short IPv4 spellings: the URL parser writes them as
            // the dotted address, which is what is judged.
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://0xa9.0xfe.0xa9.0xfe/",
        ] {
            assert!(
                matches!(
                    policy().check_url(url),
                    Err(DestinationError::Forbidden(..))
                ),
                "{url}"
            );
        }
        assert_eq!(
            policy().check_url("https://LocalHost./"),
            Err(DestinationError::Localhost)
        );
        // A zone id is not a host a URL may have: refused before any address check.
        for url in ["https://[fe80::1%25eth0]/", "https://[fe80::1%eth0]/"] {
            assert!(policy().check_url(url).is_err(), "{url}");
        }
        assert!(policy().check_url("https://93.184.216.34/").is_ok());
        // Global unicast IPv6 stays allowed.
        assert!(policy().check_url("https://[2606:4700::1111]/").is_ok());
        assert!(policy()
            .check_url("https://[2001:4860:4860::8888]/")
            .is_ok());
        // The documentation prefix is 3fff::/20, not its neighbours.
        assert!(policy().check_url("https://[3fff:1000::1]/").is_ok());
    }

    #[test]
    fn allowed_ports_hold_at_creation() {
        let p = AddressPolicy {
            allowed_ports: AddressPolicy::parse_ports("443, 8443").unwrap(),
            ..Default::default()
        };
        assert!(p.check_url("https://example.com/x").is_ok());
        assert!(p.check_url("https://example.com:8443/x").is_ok());
        assert_eq!(
            p.check_url("https://example.com:8080/x")
                .unwrap_err()
                .to_string(),
            "must use an allowed port (443, 8443), not 8080"
        );
        assert!(AddressPolicy::parse_ports("0").is_err());
        assert!(AddressPolicy::parse_ports("https").is_err());
        assert_eq!(AddressPolicy::parse_ports(" ").unwrap(), Vec::<u16>::new());
    }

    #[test]
    fn pins_parse_and_match_without_case() {
        let p = AddressPolicy {
            pinned: AddressPolicy::parse_pins("Hooks.Example.com.=10.0.0.1, v6.test=[fe80::1]")
                .unwrap(),
            ..Default::default()
        };
        assert_eq!(
            p.pinned("hooks.example.com"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            p.pinned("HOOKS.example.com."),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(p.pinned("v6.test"), Some("fe80::1".parse().unwrap()));
        assert_eq!(p.pinned("other.test"), None);
        assert!(AddressPolicy::parse_pins("nameonly").is_err());
        assert!(AddressPolicy::parse_pins("a.test=not-an-ip").is_err());
        assert!(AddressPolicy::parse_pins("=10.0.0.1").is_err());
    }

    #[test]
    fn allowed_networks_open_a_hole() {
        let p = AddressPolicy {
            allow_http: true,
            allowed_networks: AddressPolicy::parse_networks("127.0.0.0/8, ::1").unwrap(),
            allowed_ports: Vec::new(),
            pinned: Vec::new(),
        };
        assert!(p.check_url("http://127.0.0.1:9999/hook").is_ok());
        assert!(p.check_url("http://localhost:9999/hook").is_ok());
        assert!(p.check_url("http://[::ffff:127.0.0.1]:1/").is_ok());
        assert!(p.check_url("http://10.0.0.1/").is_err());
        assert!(AddressPolicy::parse_networks("nonsense").is_err());
    }
}
