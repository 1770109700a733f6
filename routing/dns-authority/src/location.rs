//! Where a client is: its address (from EDNS Client Subnet or the query's
//! source) mapped through the configured CIDR → location table, longest
//! prefix first, else the default location.
//!
//! Besides the point, a lookup says how many leading bits of the address the
//! answer depends on: the ECS scope prefix length (RFC 7871 §7.2.1) a
//! resolver may cache the answer for.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{GeoPoint, LocationConfig};

/// The CIDR → location table, ready for lookups.
#[derive(Debug, Clone)]
pub struct LocationTable {
    /// Longest prefix first, so the first block containing an address is its
    /// longest match.
    entries: Vec<(IpNet, GeoPoint)>,
    default: GeoPoint,
}

/// The result of [`LocationTable::locate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located {
    /// Where the client is taken to be.
    pub point: GeoPoint,
    /// The block that matched, or `None` when the default location was used.
    pub cidr: Option<IpNet>,
    /// How many leading bits of the address decide this location: every
    /// address sharing them gets the same one.
    pub scope_prefix: u8,
}

impl LocationTable {
    /// Builds the table from a (validated) config's `locations`.
    pub fn new(locations: &[LocationConfig], default: GeoPoint) -> Self {
        let mut entries: Vec<(IpNet, GeoPoint)> = locations
            .iter()
            .map(|l| {
                let point = GeoPoint {
                    latitude: l.latitude,
                    longitude: l.longitude,
                };
                (l.cidr.trunc(), point)
            })
            .collect();
        // Stable: equal prefixes keep config order, so results do not depend
        // on the sort algorithm.
        entries.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self { entries, default }
    }

    /// Locates `addr`. IPv4 and IPv6 are separate spaces: an IPv4-mapped
    /// IPv6 address is only matched by IPv6 blocks, so callers canonicalise
    /// socket addresses first.
    pub fn locate(&self, addr: IpAddr) -> Located {
        let matched = self.entries.iter().find(|(net, _)| net.contains(&addr));
        // The location holds for the whole matched block except where a
        // longer block that does not contain `addr` carves out part of it:
        // the scope must be long enough to exclude each such block, i.e. one
        // bit longer than the prefix `addr` shares with it.
        let carve_out = self
            .entries
            .iter()
            .filter(|(net, _)| !net.contains(&addr))
            .filter_map(|(net, _)| common_prefix_len(addr, net.network()))
            .map(|shared| shared.saturating_add(1))
            .max()
            .unwrap_or(0);
        let (point, cidr, matched_len) = match matched {
            Some((net, point)) => (*point, Some(*net), net.prefix_len()),
            None => (self.default, None, 0),
        };
        Located {
            point,
            cidr,
            scope_prefix: matched_len.max(carve_out),
        }
    }
}

/// How many leading bits `a` and `b` share; `None` across address families.
fn common_prefix_len(a: IpAddr, b: IpAddr) -> Option<u8> {
    let bits = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.to_bits() ^ b.to_bits()).leading_zeros(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits() ^ b.to_bits()).leading_zeros(),
        _ => return None,
    };
    // At most 128, so it fits.
    u8::try_from(bits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(cidr: &str, latitude: f64) -> LocationConfig {
        LocationConfig {
            cidr: cidr.parse().unwrap(),
            latitude,
            longitude: 0.0,
        }
    }

    const DEFAULT: GeoPoint = GeoPoint {
        latitude: -45.0,
        longitude: 0.0,
    };

    fn table() -> LocationTable {
        LocationTable::new(
            &[
                location("10.0.0.0/8", 1.0),
                location("10.2.0.0/16", 2.0),
                location("10.2.3.0/24", 3.0),
                location("2001:db8::/32", 4.0),
                location("2001:db8:1::/48", 5.0),
            ],
            DEFAULT,
        )
    }

    fn at(addr: &str) -> Located {
        table().locate(addr.parse().unwrap())
    }

    #[test]
    fn longest_prefix_wins_whatever_the_config_order() {
        assert_eq!(at("10.2.3.4").point.latitude, 3.0);
        assert_eq!(at("10.2.4.4").point.latitude, 2.0);
        assert_eq!(at("10.9.0.1").point.latitude, 1.0);
        assert_eq!(at("10.2.3.4").cidr, Some("10.2.3.0/24".parse().unwrap()));
    }

    #[test]
    fn ipv6_blocks_match_ipv6_addresses() {
        assert_eq!(at("2001:db8:1::7").point.latitude, 5.0);
        assert_eq!(at("2001:db8:2::7").point.latitude, 4.0);
        // An IPv4 block never matches an IPv6 address, mapped or not.
        assert_eq!(at("::ffff:10.2.3.4").point, DEFAULT);
    }

    #[test]
    fn unmatched_addresses_get_the_default() {
        let located = at("192.0.2.1");
        assert_eq!(located.point, DEFAULT);
        assert_eq!(located.cidr, None);
        assert_eq!(at("2001:db9::1").point, DEFAULT);
    }

    #[test]
    fn scope_covers_exactly_the_addresses_with_the_same_location() {
        // Innermost block: nothing longer carves it up.
        assert_eq!(at("10.2.3.4").scope_prefix, 24);
        // 10.2.128.1 shares 16 bits with 10.2.3.0/24's network, then
        // differs, so 17 bits separate it from the /24.
        assert_eq!(at("10.2.128.1").scope_prefix, 17);
        // 10.2.4.4 shares 21 bits with 10.2.3.0 (…0000_0100 vs …0000_0011).
        assert_eq!(at("10.2.4.4").scope_prefix, 22);
        // 192.0.2.1 shares nothing with 10/8: one bit decides the default.
        assert_eq!(at("192.0.2.1").scope_prefix, 1);
        // No blocks at all: the answer is the same for everyone.
        let empty = LocationTable::new(&[], DEFAULT);
        assert_eq!(empty.locate("192.0.2.1".parse().unwrap()).scope_prefix, 0);
    }
}
