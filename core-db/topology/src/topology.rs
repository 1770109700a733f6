//! [`Topology`]: the regions Meridian runs in and, for each shard, its home
//! region and the ordered standbys it fails over to.
//!
//! Read from TOML (see `infra/local/topology.toml`) by
//! [`Topology::from_toml_str`], which checks the file as a whole, so a
//! `Topology` value is always consistent: every region a shard names exists,
//! no name is defined twice. Deserializing a `Topology` through serde runs
//! the same checks.
//!
//! The file is a table of arrays (`[[regions]]`, `[[shards]]`) so that later
//! sections (POPs, ports, inter-region latencies) can be added as new
//! top-level keys without disturbing existing ones; every struct denies
//! unknown fields, so a misspelt key is an error rather than a silent default.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::id::ShardedId;
use crate::names::{RegionId, ShardId};

/// A region: a place where Meridian runs a full regional stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    name: RegionId,
    /// Decimal degrees, in [-90, 90].
    latitude: f64,
    /// Decimal degrees, in [-180, 180].
    longitude: f64,
}

impl Region {
    /// The region's name.
    pub fn name(&self) -> &RegionId {
        &self.name
    }

    /// Latitude in decimal degrees, in [-90, 90].
    pub fn latitude(&self) -> f64 {
        self.latitude
    }

    /// Longitude in decimal degrees, in [-180, 180].
    /// Where the region is, for the latency model.
    pub fn place(&self) -> crate::latency::Place<'_> {
        crate::latency::Place {
            name: self.name.as_str(),
            latitude: self.latitude,
            longitude: self.longitude,
        }
    }

    pub fn longitude(&self) -> f64 {
        self.longitude
    }
}

/// A shard: one independently replicated slice of the data, served from its
/// home region and failed over to its standbys in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    id: ShardId,
    home: RegionId,
    /// Required (no serde default): a shard with no standby cannot fail over,
    /// so the file must say `standbys = []` explicitly.
    standbys: Vec<RegionId>,
}

impl Shard {
    /// The shard's id.
    pub fn id(&self) -> &ShardId {
        &self.id
    }

    /// The region the shard is served from normally.
    pub fn home(&self) -> &RegionId {
        &self.home
    }

    /// The regions that take over, in order of preference. Never contains
    /// the home region or a region twice.
    pub fn standbys(&self) -> &[RegionId] {
        &self.standbys
    }

    /// Every region that may serve the shard, in order of preference: the
    /// home region, then the standbys.
    pub fn candidates(&self) -> impl Iterator<Item = &RegionId> + Clone {
        std::iter::once(&self.home).chain(self.standbys.iter())
    }
}

/// The file as written, before the whole-file checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    regions: Vec<Region>,
    shards: Vec<Shard>,
    #[serde(default)]
    latency: crate::latency::LatencyConfig,
}

/// Regions and shards, checked to be consistent with each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TopologyFile")]
pub struct Topology {
    regions: Vec<Region>,
    shards: Vec<Shard>,
    latency: crate::latency::LatencyConfig,
}

/// Why a topology file was rejected, or a lookup in it failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// The text is larger than [`Topology::MAX_TOML_BYTES`].
    #[error("topology file is {len_bytes} bytes; at most {max} are allowed", max = Topology::MAX_TOML_BYTES)]
    TooLarge {
        /// Size of the rejected text.
        len_bytes: usize,
    },
    /// Not TOML, or not the expected shape (missing or unknown field, bad
    /// region or shard name, wrong type).
    #[error("topology file does not parse")]
    Parse {
        /// The TOML deserializer's error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// `regions` is empty.
    #[error("topology defines no regions")]
    NoRegions,
    /// `shards` is empty.
    #[error("topology defines no shards")]
    NoShards,
    /// More regions than [`Topology::MAX_REGIONS`].
    #[error("topology defines {count} regions; at most {max} are allowed", max = Topology::MAX_REGIONS)]
    TooManyRegions {
        /// How many the file defines.
        count: usize,
    },
    /// More shards than [`Topology::MAX_SHARDS`].
    #[error("topology defines {count} shards; at most {max} are allowed", max = Topology::MAX_SHARDS)]
    TooManyShards {
        /// How many the file defines.
        count: usize,
    },
    /// Two regions share a name.
    #[error("region {region} is defined more than once")]
    DuplicateRegion {
        /// The repeated name.
        region: RegionId,
    },
    /// Latitude outside [-90, 90] (or not a number).
    #[error("region {region} has latitude {latitude}; it must be within [-90, 90]")]
    BadLatitude {
        /// The offending region.
        region: RegionId,
        /// The value in the file.
        latitude: f64,
    },
    /// Longitude outside [-180, 180] (or not a number).
    #[error("region {region} has longitude {longitude}; it must be within [-180, 180]")]
    BadLongitude {
        /// The offending region.
        region: RegionId,
        /// The value in the file.
        longitude: f64,
    },
    /// Two shards share an id.
    #[error("shard {shard} is defined more than once")]
    DuplicateShard {
        /// The repeated id.
        shard: ShardId,
    },
    /// A shard's home is not a defined region.
    #[error("shard {shard} has home {region}, which is not a defined region")]
    UnknownHome {
        /// The offending shard.
        shard: ShardId,
        /// The undefined region.
        region: RegionId,
    },
    /// A shard's standby is not a defined region.
    #[error("shard {shard} has standby {region}, which is not a defined region")]
    UnknownStandby {
        /// The offending shard.
        shard: ShardId,
        /// The undefined region.
        region: RegionId,
    },
    /// A shard lists its home region among its standbys.
    #[error("shard {shard} lists its home region {region} as a standby")]
    StandbyIsHome {
        /// The offending shard.
        shard: ShardId,
        /// Its home region.
        region: RegionId,
    },
    /// A shard lists the same standby twice.
    #[error("shard {shard} lists standby {region} more than once")]
    DuplicateStandby {
        /// The offending shard.
        shard: ShardId,
        /// The repeated region.
        region: RegionId,
    },
    /// `[latency]` has a number out of range.
    #[error("{reason}")]
    Latency {
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A lookup named a shard the topology does not define.
    #[error("shard {shard} is not in the topology")]
    UnknownShard {
        /// The shard looked up.
        shard: ShardId,
    },
}

impl Topology {
    /// Largest topology text accepted, in bytes; far above any real file.
    pub const MAX_TOML_BYTES: usize = 1024 * 1024;
    /// Most regions a topology may define.
    pub const MAX_REGIONS: usize = 64;
    /// Most shards a topology may define.
    pub const MAX_SHARDS: usize = 256;

    /// Parses and validates a topology file's text.
    pub fn from_toml_str(text: &str) -> Result<Self, TopologyError> {
        if text.len() > Self::MAX_TOML_BYTES {
            return Err(TopologyError::TooLarge {
                len_bytes: text.len(),
            });
        }
        let file: TopologyFile =
            toml::from_str(text).map_err(|source| TopologyError::Parse { source })?;
        Self::try_from(file)
    }

    /// All regions, in file order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region with this name, if defined.
    pub fn region(&self, name: &RegionId) -> Option<&Region> {
        // Linear: at most MAX_REGIONS, and usually a handful.
        self.regions.iter().find(|r| &r.name == name)
    }

    /// All shards, in file order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard with this id, if defined.
    pub fn shard(&self, id: &ShardId) -> Option<&Shard> {
        self.shards.iter().find(|s| &s.id == id)
    }

    /// The latency model (`[latency]`).
    pub fn latency(&self) -> &crate::latency::LatencyConfig {
        &self.latency
    }

    /// The modelled round trip between two regions of this topology
    /// (`None` when either is unknown).
    pub fn region_rtt(&self, a: &RegionId, b: &RegionId) -> Option<std::time::Duration> {
        let (a, b) = (self.region(a)?, self.region(b)?);
        Some(self.latency.rtt(a.place(), b.place()))
    }

    /// The shard that owns `id`.
    pub fn shard_for(&self, id: &ShardedId) -> Result<&Shard, TopologyError> {
        self.shard(id.shard())
            .ok_or_else(|| TopologyError::UnknownShard {
                shard: id.shard().clone(),
            })
    }
}

impl TryFrom<TopologyFile> for Topology {
    type Error = TopologyError;

    fn try_from(file: TopologyFile) -> Result<Self, TopologyError> {
        let TopologyFile {
            regions,
            shards,
            latency,
        } = file;
        latency
            .validate()
            .map_err(|reason| TopologyError::Latency { reason })?;
        if regions.is_empty() {
            return Err(TopologyError::NoRegions);
        }
        if shards.is_empty() {
            return Err(TopologyError::NoShards);
        }
        if regions.len() > Self::MAX_REGIONS {
            return Err(TopologyError::TooManyRegions {
                count: regions.len(),
            });
        }
        if shards.len() > Self::MAX_SHARDS {
            return Err(TopologyError::TooManyShards {
                count: shards.len(),
            });
        }

        let mut region_names = BTreeSet::new();
        for region in &regions {
            if !region_names.insert(&region.name) {
                return Err(TopologyError::DuplicateRegion {
                    region: region.name.clone(),
                });
            }
            // `contains` is false for NaN, which TOML can spell (`nan`).
            if !(-90.0..=90.0).contains(&region.latitude) {
                return Err(TopologyError::BadLatitude {
                    region: region.name.clone(),
                    latitude: region.latitude,
                });
            }
            if !(-180.0..=180.0).contains(&region.longitude) {
                return Err(TopologyError::BadLongitude {
                    region: region.name.clone(),
                    longitude: region.longitude,
                });
            }
        }

        let mut shard_ids = BTreeSet::new();
        for shard in &shards {
            if !shard_ids.insert(&shard.id) {
                return Err(TopologyError::DuplicateShard {
                    shard: shard.id.clone(),
                });
            }
            if !region_names.contains(&shard.home) {
                return Err(TopologyError::UnknownHome {
                    shard: shard.id.clone(),
                    region: shard.home.clone(),
                });
            }
            let mut seen = BTreeSet::new();
            for standby in &shard.standbys {
                if !region_names.contains(standby) {
                    return Err(TopologyError::UnknownStandby {
                        shard: shard.id.clone(),
                        region: standby.clone(),
                    });
                }
                if standby == &shard.home {
                    return Err(TopologyError::StandbyIsHome {
                        shard: shard.id.clone(),
                        region: standby.clone(),
                    });
                }
                if !seen.insert(standby) {
                    return Err(TopologyError::DuplicateStandby {
                        shard: shard.id.clone(),
                        region: standby.clone(),
                    });
                }
            }
        }

        Ok(Self {
            regions,
            shards,
            latency,
        })
    }
}
