//! The authority's configuration (`dns.toml`): the zone, TTLs, SOA fields,
//! name servers and the CIDR → location table used to place clients.
//!
//! Parsed with serde (`deny_unknown_fields` everywhere, so a misspelt key is
//! an error rather than a silently ignored default) and checked as a whole by
//! [`DnsConfig::validate`], which [`DnsConfig::from_toml_str`] and
//! [`Authority::new`](crate::Authority::new) both call.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_server::proto::ProtoError;
use hickory_server::proto::rr::Name;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Most locations a config may list: every query scans them, so the bound
/// keeps a query's cost bounded too.
pub const MAX_LOCATIONS: usize = 4_096;
/// Most name server entries a config may list: the NS RRset and its glue go
/// into one UDP answer.
pub const MAX_NAME_SERVERS: usize = 16;
/// Largest TTL or SOA timer a record may carry (RFC 2181 §8: 31 bits).
pub const MAX_TTL_S: u32 = i32::MAX as u32;

/// The whole `dns.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The zone served, as an absolute name (`shop.example.`).
    pub zone: String,
    /// TTLs of the records the authority gives out.
    #[serde(default)]
    pub ttl: TtlConfig,
    /// The zone's SOA record.
    pub soa: SoaConfig,
    /// The zone's name servers (the apex NS RRset). A name inside the zone
    /// needs an `address`, which the authority serves as glue.
    pub name_servers: Vec<NameServerConfig>,
    /// Where clients are, by address block; the longest matching prefix wins.
    #[serde(default)]
    pub locations: Vec<LocationConfig>,
    /// Where a client is taken to be when no `locations` entry matches.
    pub default_location: GeoPoint,
    /// MaxMind DB files to place clients the `locations` table does not
    /// (`crate::geoip`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoip: Option<GeoIpConfig>,
}

/// Most databases `[geoip]` may list (e.g. one IPv4 and one IPv6 file).
pub const MAX_GEOIP_DATABASES: usize = 8;

/// `[geoip]`: MaxMind DB (GeoLite2 / GeoIP2 / DB-IP City) files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// Files asked in order; relative paths are relative to the DNS
    /// config's directory.
    pub databases: Vec<std::path::PathBuf>,
    /// How often the files are checked for a change, which reloads them.
    #[serde(default = "default_geoip_check_s")]
    pub check_interval_s: u64,
    /// Largest database file loaded (each is held in memory).
    #[serde(default = "default_geoip_max_bytes")]
    pub max_bytes: u64,
}

fn default_geoip_check_s() -> u64 {
    60
}

fn default_geoip_max_bytes() -> u64 {
    512 << 20
}

/// TTLs, in seconds. Dynamic names default to 5 s, so a failover reaches
/// resolvers within seconds; static ones (NS, SOA) to an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtlConfig {
    /// `api.<zone>`.
    pub api_s: u32,
    /// `<region>.api.<zone>`.
    pub region_s: u32,
    /// `<shard>.shard.<zone>`.
    pub shard_s: u32,
    /// The apex NS RRset and the name servers' addresses.
    pub ns_s: u32,
    /// The SOA record. Negative answers carry min(`soa_s`, `soa.minimum_s`),
    /// as RFC 2308 §5 asks.
    pub soa_s: u32,
}

impl Default for TtlConfig {
    fn default() -> Self {
        Self {
            api_s: 5,
            region_s: 5,
            shard_s: 5,
            ns_s: 3_600,
            soa_s: 3_600,
        }
    }
}

/// The SOA record's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaConfig {
    /// The primary name server (MNAME), absolute.
    pub mname: String,
    /// The hostmaster's mailbox as a name (RNAME, `hostmaster.shop.example.`).
    pub rname: String,
    /// The zone's serial. Nothing transfers this zone, so it only tells an
    /// operator which configuration answered.
    #[serde(default = "default_serial")]
    pub serial: u32,
    /// REFRESH: how often a secondary would check the serial.
    #[serde(default = "default_refresh_s")]
    pub refresh_s: u32,
    /// RETRY: how soon a secondary would retry a failed refresh.
    #[serde(default = "default_retry_s")]
    pub retry_s: u32,
    /// EXPIRE: how long a secondary would serve without a refresh.
    #[serde(default = "default_expire_s")]
    pub expire_s: u32,
    /// The negative-caching TTL (RFC 2308). Short by default: a name that is
    /// empty now (a drained region) should answer again soon after it returns.
    #[serde(default = "default_minimum_s")]
    pub minimum_s: u32,
}

fn default_serial() -> u32 {
    1
}
fn default_refresh_s() -> u32 {
    3_600
}
fn default_retry_s() -> u32 {
    600
}
fn default_expire_s() -> u32 {
    604_800
}
fn default_minimum_s() -> u32 {
    5
}

/// One name server: a `[[name_servers]]` entry. List a name twice to give it
/// both an IPv4 and an IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameServerConfig {
    /// The server's absolute name (`ns1.shop.example.`).
    pub name: String,
    /// Its address; required when `name` is inside the zone (glue).
    #[serde(default)]
    pub address: Option<IpAddr>,
}

/// One `[[locations]]` entry: clients in `cidr` are near this point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// An IPv4 or IPv6 block, with no host bits set (`10.1.0.0/16`).
    pub cidr: IpNet,
    /// Decimal degrees, −90 to 90.
    pub latitude: f64,
    /// Decimal degrees, −180 to 180.
    pub longitude: f64,
}

/// A point on the Earth, in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// Why a DNS configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML of the expected shape.
    #[error("DNS config is not valid TOML of the expected shape")]
    Toml(#[from] toml::de::Error),
    /// A name does not parse as a domain name.
    #[error("{field} {name:?} is not a valid domain name")]
    BadName {
        /// Which setting.
        field: String,
        /// The rejected text.
        name: String,
        #[source]
        source: ProtoError,
    },
    /// A name lacks its trailing dot, so it is ambiguous.
    #[error("{field} {name:?} must be absolute (end with '.')")]
    NotAbsolute {
        /// Which setting.
        field: String,
        /// The rejected text.
        name: String,
    },
    /// No `[[name_servers]]` entry.
    #[error("no name servers configured; the zone needs an NS RRset")]
    NoNameServers,
    /// Too many `[[name_servers]]` entries.
    #[error("{count} name server entries; at most {max} are allowed")]
    TooManyNameServers { count: usize, max: usize },
    /// An in-zone name server has no address, so resolvers could not reach it.
    #[error("name server {name:?} is inside the zone but has no address (its glue)")]
    MissingGlue { name: String },
    /// A name server's name collides with a name the authority answers itself.
    #[error("name server {name:?} collides with {reserved:?}, which the authority answers itself")]
    ReservedName { name: String, reserved: String },
    /// Too many `[[locations]]` entries.
    #[error("{count} locations; at most {max} are allowed")]
    TooManyLocations { count: usize, max: usize },
    /// A location's CIDR has host bits set, which is most likely a typo.
    #[error("location {cidr} has host bits set; did you mean {network}?")]
    HostBits { cidr: IpNet, network: IpNet },
    /// Two locations with the same CIDR: which one wins would be arbitrary.
    #[error("location {cidr} is listed more than once")]
    DuplicateCidr { cidr: IpNet },
    /// A latitude or longitude outside its range, or not a number.
    #[error("{field} = {value} is outside {min}..={max}")]
    CoordinateOutOfRange {
        /// Which setting (`locations[2].latitude`).
        field: String,
        value: f64,
        min: f64,
        max: f64,
    },
    /// A `[geoip]` setting out of its range.
    #[error("geoip.{field}: {why}")]
    GeoIp { field: &'static str, why: String },
    /// A TTL or SOA timer above 2³¹ − 1 seconds.
    #[error("{field} = {value_s} s is larger than the {max_s} s a record may carry")]
    TtlTooLarge {
        /// Which setting.
        field: &'static str,
        value_s: u32,
        max_s: u32,
    },
}

impl GeoIpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, why: &str| {
            Err(ConfigError::GeoIp {
                field,
                why: why.to_owned(),
            })
        };
        if self.databases.is_empty() || self.databases.len() > MAX_GEOIP_DATABASES {
            return bad("databases", "list 1 to 8 files");
        }
        if !(1..=86_400).contains(&self.check_interval_s) {
            return bad("check_interval_s", "must be 1 to 86400");
        }
        if !(1..=4 << 30).contains(&self.max_bytes) {
            return bad("max_bytes", "must be 1 to 4 GiB");
        }
        Ok(())
    }
}

impl DnsConfig {
    /// Parses and validates a `dns.toml`.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration as a whole.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.zone_name()?;
        self.soa_names()?;
        self.check_timers()?;
        self.name_server_names()?;
        self.check_locations()?;
        check_point("default_location", self.default_location)?;
        if let Some(geoip) = &self.geoip {
            geoip.validate()?;
        }
        Ok(())
    }

    /// The zone's apex, parsed.
    pub(crate) fn zone_name(&self) -> Result<Name, ConfigError> {
        absolute_name("zone", &self.zone)
    }

    /// The SOA's MNAME and RNAME, parsed.
    pub(crate) fn soa_names(&self) -> Result<(Name, Name), ConfigError> {
        Ok((
            absolute_name("soa.mname", &self.soa.mname)?,
            absolute_name("soa.rname", &self.soa.rname)?,
        ))
    }

    /// The name servers' names, parsed and checked against the zone.
    pub(crate) fn name_server_names(&self) -> Result<Vec<(Name, Option<IpAddr>)>, ConfigError> {
        let count = self.name_servers.len();
        if count == 0 {
            return Err(ConfigError::NoNameServers);
        }
        if count > MAX_NAME_SERVERS {
            return Err(ConfigError::TooManyNameServers {
                count,
                max: MAX_NAME_SERVERS,
            });
        }
        let zone = self.zone_name()?;
        // The apex and everything under `api.` and `shard.` are answered
        // from config and the routing table; a name server there would make
        // the answer depend on which rule is checked first.
        let subtrees = [label_under("api", &zone)?, label_under("shard", &zone)?];
        let mut out = Vec::with_capacity(count);
        for (index, ns) in self.name_servers.iter().enumerate() {
            let name = absolute_name(&format!("name_servers[{index}].name"), &ns.name)?;
            if zone.zone_of(&name) {
                // `Name`'s equality ignores case, as DNS does.
                let hit = if name == zone {
                    Some(&zone)
                } else {
                    subtrees.iter().find(|t| t.zone_of(&name))
                };
                if let Some(hit) = hit {
                    return Err(ConfigError::ReservedName {
                        name: ns.name.clone(),
                        reserved: hit.to_ascii(),
                    });
                }
                if ns.address.is_none() {
                    return Err(ConfigError::MissingGlue {
                        name: ns.name.clone(),
                    });
                }
            }
            out.push((name, ns.address));
        }
        Ok(out)
    }

    fn check_timers(&self) -> Result<(), ConfigError> {
        let timers = [
            ("ttl.api_s", self.ttl.api_s),
            ("ttl.region_s", self.ttl.region_s),
            ("ttl.shard_s", self.ttl.shard_s),
            ("ttl.ns_s", self.ttl.ns_s),
            ("ttl.soa_s", self.ttl.soa_s),
            ("soa.refresh_s", self.soa.refresh_s),
            ("soa.retry_s", self.soa.retry_s),
            ("soa.expire_s", self.soa.expire_s),
            ("soa.minimum_s", self.soa.minimum_s),
        ];
        for (field, value_s) in timers {
            if value_s > MAX_TTL_S {
                return Err(ConfigError::TtlTooLarge {
                    field,
                    value_s,
                    max_s: MAX_TTL_S,
                });
            }
        }
        Ok(())
    }

    fn check_locations(&self) -> Result<(), ConfigError> {
        let count = self.locations.len();
        if count > MAX_LOCATIONS {
            return Err(ConfigError::TooManyLocations {
                count,
                max: MAX_LOCATIONS,
            });
        }
        let mut seen = HashSet::with_capacity(count);
        for (index, location) in self.locations.iter().enumerate() {
            let cidr = location.cidr;
            if cidr.trunc() != cidr {
                return Err(ConfigError::HostBits {
                    cidr,
                    network: cidr.trunc(),
                });
            }
            if !seen.insert(cidr) {
                return Err(ConfigError::DuplicateCidr { cidr });
            }
            check_point(
                &format!("locations[{index}]"),
                GeoPoint {
                    latitude: location.latitude,
                    longitude: location.longitude,
                },
            )?;
        }
        Ok(())
    }
}

/// Parses `text` as an absolute domain name.
fn absolute_name(field: &str, text: &str) -> Result<Name, ConfigError> {
    let name = Name::from_ascii(text).map_err(|source| ConfigError::BadName {
        field: field.to_owned(),
        name: text.to_owned(),
        source,
    })?;
    if !name.is_fqdn() {
        return Err(ConfigError::NotAbsolute {
            field: field.to_owned(),
            name: text.to_owned(),
        });
    }
    Ok(name)
}

/// `label.<zone>`.
fn label_under(label: &str, zone: &Name) -> Result<Name, ConfigError> {
    zone.prepend_label(label)
        .map_err(|source| ConfigError::BadName {
            field: "zone".to_owned(),
            name: zone.to_ascii(),
            source,
        })
}

fn check_point(field: &str, point: GeoPoint) -> Result<(), ConfigError> {
    let checks = [
        ("latitude", point.latitude, 90.0),
        ("longitude", point.longitude, 180.0),
    ];
    for (which, value, max) in checks {
        // `contains` is false for NaN, so NaN is rejected too.
        if !(-max..=max).contains(&value) {
            return Err(ConfigError::CoordinateOutOfRange {
                field: format!("{field}.{which}"),
                value,
                min: -max,
                max,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        zone = "shop.example."
        default_location = { latitude = 0.0, longitude = 0.0 }
        [soa]
        mname = "ns1.shop.example."
        rname = "hostmaster.shop.example."
        [[name_servers]]
        name = "ns1.shop.example."
        address = "127.0.0.1"
    "#;

    #[test]
    fn geoip_settings_are_checked() {
        let with = |geoip: &str| DnsConfig::from_toml_str(&format!("{MINIMAL}\n[geoip]\n{geoip}"));
        let config = with("databases = [\"a.mmdb\"]").unwrap();
        let geoip = config.geoip.unwrap();
        assert_eq!(geoip.check_interval_s, 60);
        assert_eq!(geoip.max_bytes, 512 << 20);
        for bad in [
            "databases = []",
            "databases = [\"a\"]\ncheck_interval_s = 0",
            "databases = [\"a\"]\nmax_bytes = 0",
            "databases = [\"a\"]\nreload = true",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        assert!(DnsConfig::from_toml_str(MINIMAL).unwrap().geoip.is_none());
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let config = DnsConfig::from_toml_str(MINIMAL).unwrap();
        assert_eq!(config.ttl, TtlConfig::default());
        assert_eq!(config.soa.minimum_s, 5);
        assert!(config.locations.is_empty());
    }

    #[test]
    fn relative_zone_is_rejected() {
        let text = MINIMAL.replace(r#"zone = "shop.example.""#, r#"zone = "shop.example""#);
        let err = DnsConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, ConfigError::NotAbsolute { .. }), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = MINIMAL.replace("[soa]", "[soa]\nserail = 2");
        let err = DnsConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, ConfigError::Toml(_)), "{err}");
    }

    #[test]
    fn in_zone_name_server_needs_glue() {
        let text = MINIMAL.replace("address = \"127.0.0.1\"", "");
        let err = DnsConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, ConfigError::MissingGlue { .. }), "{err}");
    }

    #[test]
    fn name_server_under_api_is_rejected() {
        let text = MINIMAL.replace(
            "name = \"ns1.shop.example.\"",
            "name = \"x.api.shop.example.\"",
        );
        let err = DnsConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, ConfigError::ReservedName { .. }), "{err}");
    }

    #[test]
    fn bad_locations_are_rejected() {
        let host_bits = format!(
            "{MINIMAL}\n[[locations]]\ncidr = \"10.1.2.3/16\"\nlatitude = 1.0\nlongitude = 1.0\n"
        );
        let err = DnsConfig::from_toml_str(&host_bits).unwrap_err();
        assert!(matches!(err, ConfigError::HostBits { .. }), "{err}");

        let entry = "\n[[locations]]\ncidr = \"10.1.0.0/16\"\nlatitude = 1.0\nlongitude = 1.0\n";
        let duplicate = format!("{MINIMAL}{entry}{entry}");
        let err = DnsConfig::from_toml_str(&duplicate).unwrap_err();
        assert!(matches!(err, ConfigError::DuplicateCidr { .. }), "{err}");

        let far = format!(
            "{MINIMAL}\n[[locations]]\ncidr = \"10.1.0.0/16\"\nlatitude = 91.0\nlongitude = 1.0\n"
        );
        let err = DnsConfig::from_toml_str(&far).unwrap_err();
        assert!(
            matches!(err, ConfigError::CoordinateOutOfRange { .. }),
            "{err}"
        );
    }

    #[test]
    fn huge_ttl_is_rejected() {
        let text = format!("{MINIMAL}\n[ttl]\napi_s = 4294967295\n");
        let err = DnsConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, ConfigError::TtlTooLarge { .. }), "{err}");
    }
}
