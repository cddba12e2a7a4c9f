//! Which token services may receive a registry's credentials.
//!
//! A registry that answers `401` with `WWW-Authenticate: Bearer realm="…"`
//! asks the client to fetch a token from that URL with its credentials. The
//! realm is chosen by the registry, so it is checked before anything is sent:
//!
//! * it must be `https` on the registry's own host or on a host the project
//!   admin listed with the registry (`auth_hosts`);
//! * every address it resolves to must be public: loopback, private,
//!   link-local, shared (CGNAT) and other reserved ranges are refused, and
//!   the request is pinned to the checked addresses (no second DNS answer);
//! * only Slipway's own registry may point at a token service on loopback or
//!   over plain HTTP.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::registry::RegistryTarget;

/// A realm that may receive the credentials, and the addresses to use for it.
#[derive(Debug, Clone)]
pub(crate) struct VettedRealm {
    pub url: String,
    addrs: Vec<SocketAddr>,
}

impl VettedRealm {
    /// A resolver for ureq that answers only with the checked addresses.
    pub fn resolver(&self) -> impl Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static {
        let addrs = self.addrs.clone();
        move |_netloc: &str| Ok(addrs.clone())
    }
}

/// Why an address must not receive credentials, if it must not.
pub(crate) fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if a == 100 && (b & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.is_documentation() || a == 0 || a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

/// `host[:port][/path]` → the bare host name, lowercased, without brackets.
fn bare_host(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    let h = h.strip_prefix("https://").or_else(|| h.strip_prefix("http://")).unwrap_or(&h).to_string();
    let h = h.split('/').next().unwrap_or_default().to_string();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match h.matches(':').count() {
        1 => h.split(':').next().unwrap_or_default().to_string(),
        _ => h,
    }
}

/// Checks `realm` for `target`; resolves its host with `resolve` (the
/// system resolver in [`vet`]). The error says why the realm was refused.
pub(crate) fn vet_with(
    realm: &str,
    target: &RegistryTarget,
    resolve: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
) -> Result<VettedRealm, String> {
    let url = url::Url::parse(realm).map_err(|_| format!("the token service `{realm}` is not a URL"))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("the token service `{realm}` names no host")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("the token service URL of {} carries credentials of its own", target.host));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let own = host == bare_host(&target.host);
    let listed = target.auth_hosts.iter().any(|h| bare_host(h) == host);
    let scheme = url.scheme();
    if target.embedded {
        let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !(own || listed || loopback) {
            return Err(format!("the token service `{realm}` is not on the registry's host ({})", target.host));
        }
        if scheme != "https" && scheme != "http" {
            return Err(format!("the token service `{realm}` is not http(s)"));
        }
        let addrs = resolve(&host, port).map_err(|e| format!("the token service host {host} does not resolve: {e}"))?;
        return Ok(VettedRealm { url: url.to_string(), addrs });
    }
    if scheme != "https" {
        return Err(format!("the token service `{realm}` is not https (credentials are only sent over https)"));
    }
    if !(own || listed) {
        return Err(format!(
            "the token service host `{host}` is neither the registry's host nor one of its listed auth hosts \
             (a project admin can list it: `slipway registries add {} --auth-host {host} …`)",
            target.host
        ));
    }
    let addrs = resolve(&host, port).map_err(|e| format!("the token service host {host} does not resolve: {e}"))?;
    if addrs.is_empty() {
        return Err(format!("the token service host {host} has no address"));
    }
    if let Some((addr, why)) = addrs.iter().find_map(|a| forbidden_address(a.ip()).map(|why| (a, why))) {
        return Err(format!("the token service host {host} resolves to the {why} address {}", addr.ip()));
    }
    Ok(VettedRealm { url: url.to_string(), addrs })
}

/// [`vet_with`] using the system resolver.
pub(crate) fn vet(realm: &str, target: &RegistryTarget) -> Result<VettedRealm, String> {
    vet_with(realm, target, |host, port| (host, port).to_socket_addrs().map(|a| a.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, auth_hosts: &[&str], embedded: bool) -> RegistryTarget {
        RegistryTarget { auth_hosts: auth_hosts.iter().map(|s| s.to_string()).collect(), embedded, ..RegistryTarget::new(host) }
    }

    /// A resolver that gives every host the address `ip`.
    fn at(ip: &'static str) -> impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> {
        move |_, port| Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)])
    }

    #[test]
    fn only_https_realms_on_the_registry_or_a_listed_host_pass() {
        let t = target("reg.example:5000", &["auth.example"], false);
        assert!(vet_with("https://reg.example/token", &t, at("93.184.216.34")).is_ok());
        assert!(vet_with("https://auth.example:8443/token?x=1", &t, at("93.184.216.34")).is_ok());
        let e = vet_with("http://reg.example/token", &t, at("93.184.216.34")).unwrap_err();
        assert!(e.contains("not https"), "{e}");
        let e = vet_with("https://evil.example/token", &t, at("93.184.216.34")).unwrap_err();
        assert!(e.contains("neither the registry's host"), "{e}");
        assert!(vet_with("https://user:pw@reg.example/token", &t, at("93.184.216.34")).is_err());
        assert!(vet_with("not a url", &t, at("93.184.216.34")).is_err());
    }

    #[test]
    fn internal_addresses_are_refused_unless_the_registry_is_slipways_own() {
        let t = target("reg.example", &[], false);
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared"),
            ("0.0.0.0", "reserved"),
            ("::1", "loopback"),
            ("fd00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:169.254.169.254", "link-local"),
        ] {
            let e = vet_with("https://reg.example/token", &t, at(ip)).unwrap_err();
            assert!(e.contains(why), "{ip}: {e}");
        }
        let embedded = target("127.0.0.1:5000", &[], true);
        assert!(vet_with("http://127.0.0.1:3000/registry/token", &embedded, at("127.0.0.1")).is_ok());
        assert!(vet_with("http://169.254.169.254/latest", &embedded, at("169.254.169.254")).is_err());
    }

    #[test]
    fn the_pinned_resolver_answers_with_the_checked_addresses_only() {
        let t = target("reg.example", &[], false);
        let v = vet_with("https://reg.example/token", &t, at("93.184.216.34")).unwrap();
        let r = v.resolver();
        assert_eq!(r("reg.example:443").unwrap(), vec!["93.184.216.34:443".parse::<SocketAddr>().unwrap()]);
    }
}
