//! Where a client is, from a MaxMind DB file: the GeoLite2 / GeoIP2 / DB-IP
//! City format that PowerDNS's geoip backend and Knot's geoip module read.
//!
//! Two layouts are read: MaxMind's nested City records
//! (`location.latitude`, `location.longitude`) and the flat records of
//! `@ip-location-db` and similar builds (top-level `latitude`,
//! `longitude`). Coordinates may be stored as doubles, floats, integers or
//! strings; anything else, or a point off the globe, is "no data".
//!
//! Databases are read into memory (each at most `max_bytes`) and swapped
//! whole when a file changes ([`GeoIp::check`], which
//! [`GeoIp::spawn_reloader`] runs every `check_interval_s`): a query sees
//! either the old database or the new one, never a mix, and a file that
//! fails to load leaves the one before it in place. The authority asks its
//! `[[locations]]` table first (an operator's own blocks win over a bought
//! database), then the databases in the order configured, then falls back
//! to `default_location`.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use maxminddb::{PathElement, Reader};
use serde::de::{self, Deserializer, Visitor};

use crate::config::{GeoIpConfig, GeoPoint};

/// A database file as loaded.
struct Database {
    reader: Reader<Vec<u8>>,
    /// Whether the last record read was in the flat layout: asked first
    /// next time (a database is in one layout throughout).
    flat: std::sync::atomic::AtomicBool,
    /// What the file looked like when read: a change reloads it.
    stamp: Stamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoHit {
    pub point: GeoPoint,
    /// The database's network for the address: how many leading bits
    /// decide this answer.
    pub prefix: u8,
}

/// What one [`GeoIp::check`] did to one file.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// The file could not be read or is not a MaxMind DB; the database
    /// loaded before (if any) stays.
    Failed(String),
}

/// The MaxMind databases, swapped whole on reload.
pub struct GeoIp {
    paths: Vec<PathBuf>,
    max_bytes: u64,
    check_interval: Duration,
    /// One slot per path, `None` until it first loads.
    current: ArcSwap<Vec<Option<Arc<Database>>>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("paths", &self.paths)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl GeoIp {
    /// Loads every database `config` names (paths as given: the caller
    /// resolves relative ones). A file that cannot load is an error here,
    /// at start-up; later, on reload, it only keeps the old copy.
    pub fn open(config: &GeoIpConfig) -> Result<GeoIp, String> {
        let geoip = GeoIp {
            paths: config.databases.clone(),
            max_bytes: config.max_bytes,
            check_interval: Duration::from_secs(config.check_interval_s),
            current: ArcSwap::from_pointee(vec![None; config.databases.len()]),
        };
        for (path, outcome) in geoip.paths.iter().zip(geoip.check()) {
            if let Reload::Failed(why) = outcome {
                return Err(format!("{}: {why}", path.display()));
            }
        }
        Ok(geoip)
    }

    /// Re-reads every file whose size or modification time changed since
    /// it was loaded, and swaps in what loads.
    pub fn check(&self) -> Vec<Reload> {
        let old = self.current.load_full();
        let mut next: Vec<Option<Arc<Database>>> = old.as_ref().clone();
        let mut outcomes = Vec::with_capacity(self.paths.len());
        for (slot, path) in next.iter_mut().zip(&self.paths) {
            let outcome = match stamp(path) {
                Ok(now) if slot.as_ref().is_some_and(|db| db.stamp == now) => Reload::Unchanged,
                Ok(now) => match load(path, self.max_bytes, now) {
                    Ok(db) => {
                        *slot = Some(Arc::new(db));
                        Reload::Reloaded
                    }
                    Err(why) => Reload::Failed(why),
                },
                Err(err) => Reload::Failed(format!("cannot stat: {err}")),
            };
            outcomes.push(outcome);
        }
        if outcomes.iter().any(|o| matches!(o, Reload::Reloaded)) {
            self.current.store(Arc::new(next));
        }
        outcomes
    }

    /// Checks the files every `check_interval_s` on a blocking thread
    /// (a database is tens of megabytes) until the task is dropped.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let geoip = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(geoip.check_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let checking = Arc::clone(&geoip);
                let Ok(outcomes) = tokio::task::spawn_blocking(move || checking.check()).await
                else {
                    continue;
                };
                for (path, outcome) in geoip.paths.iter().zip(outcomes) {
                    match outcome {
                        Reload::Unchanged => {}
                        Reload::Reloaded => {
                            tracing::info!(path = %path.display(), "GeoIP database reloaded");
                        }
                        Reload::Failed(why) => tracing::warn!(
                            path = %path.display(), %why,
                            "GeoIP database not reloaded; the previous one stays"
                        ),
                    }
                }
            }
        })
    }

    /// Where `addr` is, from the first database (in configured order) that
    /// has coordinates for it. IPv6 addresses skip IPv4-only databases.
    pub fn locate(&self, addr: IpAddr) -> Option<GeoHit> {
        let databases = self.current.load();
        databases.iter().flatten().find_map(|db| {
            if addr.is_ipv6() && db.reader.metadata().ip_version == 4 {
                return None;
            }
            let found = db.reader.lookup(addr).ok()?;
            if !found.has_data() {
                return None;
            }
            let point = coordinates(&found, &db.flat)?;
            let prefix = found.network().ok()?.prefix();
            Some(GeoHit { point, prefix })
        })
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

fn load(path: &Path, max_bytes: u64, stamp: Stamp) -> Result<Database, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("larger than geoip.max_bytes ({max_bytes})"));
    }
    let reader = Reader::from_source(bytes).map_err(|e| format!("not a MaxMind DB file: {e}"))?;
    Ok(Database {
        reader,
        flat: std::sync::atomic::AtomicBool::new(false),
        stamp,
    })
}

/// The record's coordinates, nested (MaxMind City) or flat; the layout
/// found last (`flat`) is tried first.
fn coordinates(
    found: &maxminddb::LookupResult<'_, Vec<u8>>,
    flat: &std::sync::atomic::AtomicBool,
) -> Option<GeoPoint> {
    use std::sync::atomic::Ordering::Relaxed;
    let read = |path: &[PathElement<'_>]| -> Option<f64> {
        found
            .decode_path::<Coordinate>(path)
            .ok()
            .flatten()
            .map(|c| c.0)
    };
    let layout = |flat: bool| -> Option<(f64, f64)> {
        let (latitude, longitude): (&[PathElement<'_>], &[PathElement<'_>]) = if flat {
            (
                &[PathElement::Key("latitude")],
                &[PathElement::Key("longitude")],
            )
        } else {
            (
                &[PathElement::Key("location"), PathElement::Key("latitude")],
                &[PathElement::Key("location"), PathElement::Key("longitude")],
            )
        };
        Some((read(latitude)?, read(longitude)?))
    };
    let first = flat.load(Relaxed);
    let (latitude, longitude) = match layout(first) {
        Some(point) => point,
        None => {
            let point = layout(!first)?;
            flat.store(!first, Relaxed);
            point
        }
    };
    let on_globe = latitude.is_finite()
        && longitude.is_finite()
        && (-90.0..=90.0).contains(&latitude)
        && (-180.0..=180.0).contains(&longitude);
    on_globe.then_some(GeoPoint {
        latitude,
        longitude,
    })
}

/// A coordinate however the database stores it.
struct Coordinate(f64);

impl<'de> serde::Deserialize<'de> for Coordinate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Lenient;
        impl Visitor<'_> for Lenient {
            type Value = Coordinate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of degrees")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(v))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(f64::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Coordinate, E> {
                Ok(Coordinate(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Coordinate, E> {
                Ok(Coordinate(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Coordinate, E> {
                v.trim()
                    .parse()
                    .map(Coordinate)
                    .map_err(|_| E::custom("not a number"))
            }
        }
        deserializer.deserialize_any(Lenient)
    }
}
