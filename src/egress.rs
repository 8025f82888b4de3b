//! Where a metric provider (`web`, `prometheus`) may send its request.
//!
//! A metric's URL or address is written by whoever may write an AnalysisTemplate, and
//! the request leaves from the controller's pod with the controller's network
//! identity; its answer (or the first bytes of an error page) lands in the
//! AnalysisRun's status, which that tenant can read. Without a fence a tenant
//! could read the cloud's instance-metadata service (the node's credentials)
//! or any unauthenticated endpoint only the controller can reach.
//!
//! The fence is on addresses, checked where they are known: an IP literal in
//! the URL or in a redirect's `Location` before the request, and every address
//! a hostname resolves to at connect time (a custom resolver, so a name that
//! re-resolves to a denied address between two lookups is still refused).
//! Through an HTTP proxy the proxy resolves the name; the name is then checked
//! once by this process before the request is handed to it.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;

/// Addresses no web metric may reach unless the platform says otherwise:
/// link-local (the metadata services of AWS, GCP and Azure at
/// 169.254.169.254, and IPv6 link-local), AWS's IPv6 metadata address, and
/// Alibaba Cloud's metadata address.
pub const DEFAULT_DENIED: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// Most redirects a web metric follows.
const MAX_REDIRECTS: usize = 5;

/// A refused destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "the controller refuses to reach {} ({rule}); \
         the platform sets this with --metric-deny-cidr / --metric-allow-cidr",
        described(host, address)
    )]
    Refused {
        host: String,
        address: IpAddr,
        rule: String,
    },
    #[error("{0} resolves to no address")]
    Unresolved(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("the URL has no host")]
    NoHost,
}

/// `169.254.169.254`, or `metadata.internal (169.254.169.254)` for a name.
fn described(host: &str, address: &IpAddr) -> String {
    if host.trim_matches(['[', ']']) == address.to_string() {
        address.to_string()
    } else {
        format!("{host} ({address})")
    }
}

/// Denied and allowed address ranges. An address is refused when it is in a
/// denied range, or when allowed ranges are given and it is in none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    denied: Vec<IpNet>,
    allowed: Vec<IpNet>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy {
            denied: DEFAULT_DENIED
                .iter()
                .filter_map(|cidr| cidr.parse().ok())
                .collect(),
            allowed: Vec::new(),
        }
    }
}

impl EgressPolicy {
    pub fn new(denied: Vec<IpNet>, allowed: Vec<IpNet>) -> EgressPolicy {
        EgressPolicy { denied, allowed }
    }

    pub fn denied(&self) -> &[IpNet] {
        &self.denied
    }

    /// Whether `address` may be reached; `host` names it in the error.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), EgressError> {
        // An IPv4 address written as IPv6 (::ffff:169.254.169.254) is the IPv4 address.
        let address = address.to_canonical();
        let refused = |rule: String| EgressError::Refused {
            host: host.to_string(),
            address,
            rule,
        };
        if let Some(net) = self.denied.iter().find(|net| net.contains(&address)) {
            return Err(refused(format!("in denied range {net}")));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|net| net.contains(&address)) {
            let ranges: Vec<String> = self.allowed.iter().map(ToString::to_string).collect();
            return Err(refused(format!(
                "outside the allowed ranges {}",
                ranges.join(", ")
            )));
        }
        Ok(())
    }

    /// Check the host of `url` when it is an IP literal (a hostname is checked
    /// when it resolves).
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<(), EgressError> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(EgressError::NoHost),
        }
    }

    /// Check every address `url`'s host resolves to (for requests a proxy
    /// makes, where this process's resolver is not asked).
    pub async fn check_resolved(&self, url: &reqwest::Url) -> Result<(), EgressError> {
        self.check_literal(url)?;
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(80);
        self.resolve(name, port).await.map(drop)
    }

    /// Resolve `name` and keep it only if every address is allowed: a name
    /// that also points at a denied address is refused as a whole, so which
    /// address the connection happens to use cannot matter.
    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| EgressError::Unresolved(name.to_string()))?
            .collect();
        if addresses.is_empty() {
            return Err(EgressError::Unresolved(name.to_string()));
        }
        for address in &addresses {
            self.check(name, address.ip())?;
        }
        Ok(addresses)
    }

    /// A reqwest resolver that applies this policy at connect time.
    pub fn resolver(self: &Arc<Self>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            policy: Arc::clone(self),
        })
    }

    /// A redirect policy that refuses IP-literal hops outside this policy
    /// (hostname hops go through [`GuardedResolver`]) and long chains.
    pub fn redirects(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let policy = Arc::clone(self);
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(EgressError::TooManyRedirects);
            }
            match policy.check_literal(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }
}

/// DNS resolution through [`EgressPolicy`].
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            // The port is replaced by the connector; 0 only satisfies the lookup.
            let addresses = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The answer's body, read in chunks and no further than `limit + 1` bytes:
/// an endpoint a tenant chose must not make the controller buffer an endless
/// answer. A result longer than `limit` means the answer was longer too.
pub async fn read_at_most(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            bytes.truncate(limit + 1);
            break;
        }
    }
    Ok(bytes)
}

static INSTALLED: OnceLock<Arc<EgressPolicy>> = OnceLock::new();

/// `builder` with `policy` applied to name resolution and redirects (IP
/// literals in the first URL are the caller's to check, with
/// [`EgressPolicy::check_literal`]).
pub fn guarded(
    builder: reqwest::ClientBuilder,
    policy: &Arc<EgressPolicy>,
) -> reqwest::ClientBuilder {
    builder
        .dns_resolver(policy.resolver())
        .redirect(policy.redirects())
}

/// Set the process's policy (the controller's flags), once, before any web
/// metric runs. Returns false when a policy was already set.
pub fn install(policy: EgressPolicy) -> bool {
    INSTALLED.set(Arc::new(policy)).is_ok()
}

/// The process's policy: what [`install`] set, or the default.
pub fn current() -> Arc<EgressPolicy> {
    Arc::clone(INSTALLED.get_or_init(|| Arc::new(EgressPolicy::default())))
}

/// The process's denied ranges without its allow-list: for alert targets,
/// which live outside the cluster (chat, paging) where metrics do not.
pub fn current_denied_only() -> Arc<EgressPolicy> {
    Arc::new(EgressPolicy::new(current().denied.clone(), Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_default_refuses_metadata_services_in_every_spelling() {
        let policy = EgressPolicy::default();
        for address in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "100.100.100.200",
        ] {
            let refused = policy.check("metadata", ip(address));
            assert!(
                matches!(refused, Err(EgressError::Refused { .. })),
                "{address}"
            );
        }
        for address in ["10.0.0.1", "127.0.0.1", "8.8.8.8", "::1", "100.100.100.201"] {
            assert_eq!(policy.check("ok", ip(address)), Ok(()), "{address}");
        }
    }

    #[test]
    fn allowed_ranges_admit_only_themselves_and_deny_still_wins() {
        let policy = EgressPolicy::new(
            vec!["10.96.0.10/32".parse().expect("cidr")],
            vec!["10.96.0.0/12".parse().expect("cidr")],
        );
        assert_eq!(policy.check("svc", ip("10.100.1.2")), Ok(()));
        let outside = policy.check("ext", ip("203.0.113.7")).expect_err("outside");
        assert!(
            outside
                .to_string()
                .contains("outside the allowed ranges 10.96.0.0/12")
        );
        let denied = policy.check("dns", ip("10.96.0.10")).expect_err("denied");
        assert!(denied.to_string().contains("denied range 10.96.0.10/32"));
    }

    #[test]
    fn ip_literals_in_urls_are_checked_before_any_request() {
        let policy = EgressPolicy::default();
        let url = |text: &str| reqwest::Url::parse(text).expect("url");
        assert!(
            policy
                .check_literal(&url("http://169.254.169.254/latest/meta-data/"))
                .is_err()
        );
        assert!(
            policy
                .check_literal(&url("http://[fe80::1]:8080/"))
                .is_err()
        );
        assert!(
            policy
                .check_literal(&url("http://[::ffff:a9fe:a9fe]/"))
                .is_err()
        );
        assert_eq!(policy.check_literal(&url("http://127.0.0.1:9090/")), Ok(()));
        assert_eq!(
            policy.check_literal(&url("https://example.invalid/")),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_name_is_refused_when_any_of_its_addresses_is_denied() {
        let loopback_only = EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")], vec![]);
        let refused = loopback_only
            .resolve("localhost", 80)
            .await
            .expect_err("localhost is loopback");
        assert!(matches!(refused, EgressError::Refused { .. }), "{refused}");
        assert!(
            EgressPolicy::default()
                .resolve("localhost", 80)
                .await
                .is_ok()
        );
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod server_tests;
