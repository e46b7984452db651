//! The egress guard: outbound requests may only reach public addresses.
//!
//! Host names are resolved by [`GuardedResolver`], which drops every forbidden address before
//! reqwest connects, so the connection is pinned to an address that was checked (no second
//! lookup an attacker's DNS could answer differently). IP-literal hosts never reach a resolver,
//! so [`EgressPolicy::check_url`] checks them before each request and each redirect. Loopback and
//! private ranges are opened only by an explicit allowlist, which the local stack and tests use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    /// The address is in a forbidden range.
    #[error("egress to {host} ({addr}) is forbidden: {range} addresses are not allowed")]
    Forbidden {
        /// Host as written.
        host: String,
        /// The offending address.
        addr: IpAddr,
        /// The range's name.
        range: &'static str,
    },
    /// Every resolved address was forbidden, or none was found.
    #[error("egress to {host} is forbidden: it resolves to no allowed address")]
    NoAllowedAddress {
        /// Host as written.
        host: String,
    },
    /// Not http(s) or no host.
    #[error("egress to `{0}` is forbidden: only http and https URLs with a host are allowed")]
    BadUrl(String),
    /// Plain http where https is required (see [`EgressPolicy::check_https`]).
    #[error(
        "egress to {host} over plain http is forbidden: https is required (http only to loopback or private hosts the allowlist opens)"
    )]
    InsecureScheme {
        /// Host as written.
        host: String,
    },
}

/// A network in the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedNet {
    addr: IpAddr,
    prefix: u8,
}

/// An allowlist entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid egress allowlist entry `{0}`: expected an IP address or CIDR such as 127.0.0.0/8")]
pub struct InvalidAllowEntry(pub String);

impl AllowedNet {
    /// Parses `127.0.0.1`, `127.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(text: &str) -> Result<Self, InvalidAllowEntry> {
        let bad = || InvalidAllowEntry(text.to_owned());
        let (a, p) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which destinations are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<AllowedNet>,
}

impl EgressPolicy {
    /// Public addresses only.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Public addresses plus the given networks (e.g. `127.0.0.1` for a local mock).
    pub fn with_allowlist<I, S>(entries: I) -> Result<Self, InvalidAllowEntry>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let allow = entries
            .into_iter()
            .map(|e| AllowedNet::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// The allowlist written as the functions' `EGRESS_ALLOWLIST` holds it: comma-separated IPs or
    /// CIDRs, blank entries skipped.
    pub fn from_list(list: &str) -> Result<Self, InvalidAllowEntry> {
        Self::with_allowlist(
            list.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty()),
        )
    }

    /// Public addresses plus the loopback hosts `127.0.0.1` and `::1`, the most a local stack opens.
    pub(crate) fn loopback_hosts() -> Self {
        let host = |addr: IpAddr| AllowedNet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        };
        Self {
            allow: vec![
                host(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                host(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        }
    }

    /// Whether `ip` may be contacted; `Err` names the forbidden range.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.allow.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        match forbidden_range(ip) {
            Some(range) => Err(range),
            None => Ok(()),
        }
    }

    /// Checks a URL's scheme and, for IP-literal hosts, the address. Names are checked when
    /// [`GuardedResolver`] resolves them.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressDenied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressDenied::BadUrl(url.to_string()));
        }
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(EgressDenied::BadUrl(url.to_string())),
        };
        self.check_ip(ip).map_err(|range| EgressDenied::Forbidden {
            host: url.host_str().unwrap_or_default().to_owned(),
            addr: ip,
            range,
        })
    }

    /// Whether plain http to `url` is acceptable where https is otherwise required: its host is a
    /// loopback or private address (an IP literal, or `localhost`) that the allowlist opens, such as
    /// a mock server of the local stack. Names other than `localhost` are never opened, since
    /// whether they resolve to an opened address is only known after connecting.
    pub fn opens_plain_http(&self, url: &Url) -> bool {
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            _ => return false,
        };
        forbidden_range(ip).is_some() && self.check_ip(ip).is_ok()
    }

    /// Checks `url` and every address its host resolves to now (a destination stored for later
    /// calls, such as a webhook endpoint, is refused at once rather than at its first call). A host
    /// that does not resolve is not refused here: every call checks again.
    pub async fn check_resolved(&self, url: &Url) -> Result<(), EgressDenied> {
        self.check_url(url)?;
        let Some(Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        let Ok(found) = tokio::net::lookup_host((host, 0)).await else {
            return Ok(());
        };
        for addr in found {
            self.check_ip(addr.ip())
                .map_err(|range| EgressDenied::Forbidden {
                    host: host.to_owned(),
                    addr: addr.ip(),
                    range,
                })?;
        }
        Ok(())
    }

    /// Requires https, except for the hosts [`Self::opens_plain_http`] opens. Checked before any
    /// connection, so nothing is sent in clear text.
    pub fn check_https(&self, url: &Url) -> Result<(), EgressDenied> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.opens_plain_http(url) => Ok(()),
            "http" => Err(EgressDenied::InsecureScheme {
                host: url.host_str().unwrap_or_default().to_owned(),
            }),
            _ => Err(EgressDenied::BadUrl(url.to_string())),
        }
    }
}

/// IPv4-mapped (`::ffff:a.b.c.d`) addresses as IPv4; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified (0.0.0.0/8)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 168, 0, 0], 16, "private"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved and broadcast"),
    ];
    RANGES
        .iter()
        .find(|(net, p, _)| in_v4(ip, *net, *p))
        .map(|(_, _, name)| *name)
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_range(v4).map(|_| "IPv4-mapped non-public");
    }
    // Deprecated IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an
    // IPv4 address that some stacks route to; judge them by it. The well-known NAT64 prefix is
    // judged rather than refused whole: an IPv6-only VPC reaches public IPv4 providers through it
    // (DNS64 answers 64:ff9b::a.b.c.d), and the translator connects to exactly the embedded address.
    let octets = ip.octets();
    if seg[..6] == [0, 0, 0, 0, 0, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
        return v4_range(v4).map(|_| "IPv6-embedded non-public IPv4");
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]);
        return v4_range(v4).map(|_| "6to4 non-public IPv4");
    }
    // Local-use NAT64 (64:ff9b:1::/48, RFC 8215) is refused whole: the operator picks the prefix
    // length, so where the IPv4 address sits (and hence what it is) cannot be known from here.
    if seg[..3] == [0x64, 0xff9b, 0x0001] {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    // Teredo (2001::/32) tunnels to an IPv4 relay and client, the latter stored obfuscated; no
    // provider API is served from it, so it is refused whole rather than decoded.
    if seg[..2] == [0x2001, 0] {
        return Some("Teredo (2001::/32)");
    }
    match seg[0] {
        s if s & 0xfe00 == 0xfc00 => Some("unique local (private)"),
        s if s & 0xffc0 == 0xfe80 => Some("link-local"),
        s if s & 0xffc0 == 0xfec0 => Some("site-local"),
        s if s & 0xff00 == 0xff00 => Some("multicast"),
        0x2001 if seg[1] == 0x0db8 => Some("documentation"),
        _ => None,
    }
}

/// The forbidden range `ip` is in, if any (ignoring any allowlist).
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

/// A DNS resolver that returns only allowed addresses, so connections are pinned to them.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_denied = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(range) => {
                        first_denied.get_or_insert((a.ip(), range));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let err = match first_denied {
                    Some((addr, range)) => EgressDenied::Forbidden { host, addr, range },
                    None => EgressDenied::NoAllowedAddress { host },
                };
                return Err(Box::new(err) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(s: &str) -> bool {
        EgressPolicy::public_only()
            .check_ip(s.parse().unwrap())
            .is_err()
    }

    #[test]
    fn refuses_internal_ipv4_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(denied(ip), "{ip} should be denied");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "93.184.216.34"] {
            assert!(!denied(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn refuses_ipv6_and_mapped_forms() {
        for ip in [
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(denied(ip), "{ip} should be denied");
        }
        assert!(!denied("2606:4700:4700::1111"));
        assert!(!denied("::ffff:8.8.8.8"));
    }

    #[test]
    fn refuses_local_use_nat64_and_teredo_whole() {
        for ip in [
            // 64:ff9b:1::/48 with the v4 at /96, at /64 and a public one: all refused.
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:a9:fe:a9fe::",
            "64:ff9b:1::808:808",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            // 2001::/32, whatever the embedded server and (obfuscated) client.
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(denied(ip), "{ip} should be denied");
        }
        // Neighbours stay public: 64:ff9b:2:: is outside the /48, 2001:1:: outside the /32.
        for ip in ["64:ff9b:2::1", "2001:1::1", "2001:4860:4860::8888"] {
            assert!(!denied(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn well_known_nat64_is_judged_by_the_embedded_ipv4() {
        for v4 in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "100.64.0.1",
        ] {
            let v4: Ipv4Addr = v4.parse().unwrap();
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
            assert!(
                denied(&nat64.to_string()),
                "{nat64} ({v4}) should be denied"
            );
        }
        // A public IPv4 through the translator of an IPv6-only VPC stays reachable.
        assert!(!denied("64:ff9b::808:808"));
    }

    #[test]
    fn allowlist_opens_only_listed_networks() {
        let p = EgressPolicy::with_allowlist(["127.0.0.1"]).unwrap();
        assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check_ip("127.0.0.2".parse().unwrap()).is_err());
        assert!(p.check_ip("169.254.169.254".parse().unwrap()).is_err());
        assert!(EgressPolicy::with_allowlist(["10.0.0.0/33"]).is_err());
    }

    #[test]
    fn ip_literal_urls_are_checked() {
        let p = EgressPolicy::public_only();
        let err = p
            .check_url(&Url::parse("http://[::ffff:a9fe:a9fe]/latest/meta-data").unwrap())
            .unwrap_err();
        assert!(matches!(err, EgressDenied::Forbidden { .. }), "{err}");
        assert!(
            p.check_url(&Url::parse("file:///etc/passwd").unwrap())
                .is_err()
        );
        assert!(
            p.check_url(&Url::parse("https://api.stripe.com/v1").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn https_is_required_unless_the_allowlist_opens_the_host() {
        let url = |s: &str| Url::parse(s).unwrap();
        let public = EgressPolicy::public_only();
        assert!(public.check_https(&url("https://idp.example.com")).is_ok());
        for insecure in [
            "http://idp.example.com",
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://93.184.216.34",
        ] {
            assert!(
                matches!(
                    public.check_https(&url(insecure)),
                    Err(EgressDenied::InsecureScheme { .. })
                ),
                "{insecure}"
            );
        }
        let local = EgressPolicy::with_allowlist(["127.0.0.1", "::1"]).unwrap();
        assert!(local.check_https(&url("http://127.0.0.1:8080/x")).is_ok());
        assert!(local.check_https(&url("http://[::1]:8080/x")).is_ok());
        assert!(local.check_https(&url("http://LocalHost:8080/x")).is_ok());
        // Not opened: a private address off the list, a public address, any other name.
        for insecure in [
            "http://10.0.0.1/x",
            "http://93.184.216.34/x",
            "http://issuer.invalid/x",
        ] {
            assert!(local.check_https(&url(insecure)).is_err(), "{insecure}");
        }
        assert!(local.check_https(&url("ftp://127.0.0.1/x")).is_err());
    }

    #[tokio::test]
    async fn resolver_drops_loopback_names() {
        let r = GuardedResolver::new(Arc::new(EgressPolicy::public_only()));
        let name: Name = "localhost".parse().unwrap();
        let err = r.resolve(name).await.err().unwrap();
        assert!(err.downcast_ref::<EgressDenied>().is_some(), "{err}");
    }
}
