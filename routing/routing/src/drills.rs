//! Failure drills as the routing layer keeps them, so an SRE (and the
//! dashboard) can follow one live and read its report afterwards: a
//! running drill posts its timeline and per-second figures here (admin
//! token), and its report when it ends; anyone may list the drills, read
//! one, follow it by long poll, and fetch a finished report. The wire
//! shapes below are the one definition `meridian drill` posts and this API
//! serves.
//!
//! Kept in memory, bounded: at most [`MAX_DRILLS`] drills (the oldest
//! finished one, else the oldest gone silent, makes room), each with at
//! most [`MAX_TIMELINE`] moments, [`MAX_SECONDS`] per-second figures and a
//! report of at most [`MAX_REPORT_BYTES`]. A restart of the routing layer
//! forgets them; the drill's own report files are the record.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use topology::RegionId;

/// Drills kept.
pub const MAX_DRILLS: usize = 16;
/// Timeline moments kept per drill.
pub const MAX_TIMELINE: usize = 1_000;
/// Per-second figures kept per drill (an hour at eight POPs and the total).
pub const MAX_SECONDS: usize = 3_600 * 9;
/// Largest report (Markdown and HTML together).
pub const MAX_REPORT_BYTES: usize = 8 << 20;
/// Largest `what` of a moment, POP name, scenario or hypothesis.
pub const MAX_TEXT: usize = 2_000;
/// A running drill that posted nothing for this long may be evicted to make
/// room (its process is presumably gone).
pub const SILENT_AFTER: Duration = Duration::from_secs(120);

/// What a drill says of itself when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillStart {
    /// e.g. `region-outage`.
    pub scenario: String,
    pub region: RegionId,
    pub hypothesis: String,
    pub duration_s: u64,
    pub fault_at_s: u64,
    pub fault_for_s: u64,
}

/// One timeline entry, since the drill's load started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillMoment {
    pub at_ms: u64,
    pub what: String,
}

/// The `pop` of a second that adds up every POP's figures (the drill
/// posts it, its report and the dashboard chart it).
pub const ALL_POPS: &str = "all POPs";

/// One second of shopper load at one POP (`pop` = [`ALL_POPS`] for every
/// POP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSecond {
    pub at_s: u64,
    pub pop: String,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What a running drill posts: new moments, and seconds (a second posted
/// again replaces the earlier figures: late answers complete it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillUpdate {
    #[serde(default)]
    pub timeline: Vec<DrillMoment>,
    #[serde(default)]
    pub seconds: Vec<DrillSecond>,
}

/// What a drill posts when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillFinish {
    /// Whether every invariant held.
    pub passed: bool,
    pub markdown: String,
    pub html: String,
}

/// Where a drill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    Running,
    Passed,
    Failed,
}

/// A drill in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    pub id: String,
    pub scenario: String,
    pub region: RegionId,
    pub state: DrillState,
    /// Unix milliseconds.
    pub started_ms: u64,
    /// Rises with every change to the drill.
    pub version: u64,
}

/// A drill with everything it posted (not its report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    #[serde(flatten)]
    pub summary: DrillSummary,
    pub start: DrillStart,
    pub timeline: Vec<DrillMoment>,
    pub seconds: Vec<DrillSecond>,
}

/// Why the store refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DrillError {
    #[error("no drill {id}")]
    NotFound { id: String },
    #[error("drill {id} has ended")]
    Ended { id: String },
    #[error("drill {id} has no report yet")]
    NoReport { id: String },
    #[error("{MAX_DRILLS} drills are running: none can be evicted")]
    Full,
    #[error("{what} is past its bound of {limit}")]
    TooMany { what: &'static str, limit: usize },
}

struct Entry {
    drill: Drill,
    seconds: BTreeMap<(u64, String), DrillSecond>,
    report: Option<Arc<(String, String)>>,
    touched: Instant,
}

/// The drills, shared by the API's handlers.
#[derive(Clone)]
pub struct Drills {
    inner: Arc<Mutex<VecDeque<Entry>>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for Drills {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drills")
            .field("kept", &self.inner.lock().len())
            .finish()
    }
}

impl Default for Drills {
    fn default() -> Self {
        Drills {
            inner: Arc::default(),
            changed: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

fn check_text(what: &'static str, text: &str) -> Result<(), DrillError> {
    if text.len() > MAX_TEXT {
        return Err(DrillError::TooMany {
            what,
            limit: MAX_TEXT,
        });
    }
    Ok(())
}

impl Drills {
    /// Starts a drill: its id.
    pub fn start(&self, start: DrillStart) -> Result<DrillSummary, DrillError> {
        check_text("scenario", &start.scenario)?;
        check_text("hypothesis", &start.hypothesis)?;
        let mut drills = self.inner.lock();
        if drills.len() >= MAX_DRILLS {
            let evict = drills
                .iter()
                .position(|e| e.drill.summary.state != DrillState::Running)
                .or_else(|| {
                    drills
                        .iter()
                        .position(|e| e.touched.elapsed() >= SILENT_AFTER)
                })
                .ok_or(DrillError::Full)?;
            drills.remove(evict);
        }
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let summary = DrillSummary {
            id: ulid::Ulid::new().to_string(),
            scenario: start.scenario.clone(),
            region: start.region.clone(),
            state: DrillState::Running,
            started_ms,
            version: self.bump(),
        };
        drills.push_back(Entry {
            drill: Drill {
                summary: summary.clone(),
                start,
                timeline: Vec::new(),
                seconds: Vec::new(),
            },
            seconds: BTreeMap::new(),
            report: None,
            touched: Instant::now(),
        });
        Ok(summary)
    }

    /// Adds a running drill's moments and seconds.
    pub fn update(&self, id: &str, update: DrillUpdate) -> Result<DrillSummary, DrillError> {
        for m in &update.timeline {
            check_text("a moment's text", &m.what)?;
        }
        for s in &update.seconds {
            check_text("a POP's name", &s.pop)?;
        }
        let mut drills = self.inner.lock();
        let entry = find(&mut drills, id)?;
        if entry.drill.summary.state != DrillState::Running {
            return Err(DrillError::Ended { id: id.to_owned() });
        }
        if entry.drill.timeline.len() + update.timeline.len() > MAX_TIMELINE {
            return Err(DrillError::TooMany {
                what: "the timeline",
                limit: MAX_TIMELINE,
            });
        }
        let new = update
            .seconds
            .iter()
            .filter(|s| !entry.seconds.contains_key(&(s.at_s, s.pop.clone())))
            .count();
        if entry.seconds.len() + new > MAX_SECONDS {
            return Err(DrillError::TooMany {
                what: "the per-second figures",
                limit: MAX_SECONDS,
            });
        }
        entry.drill.timeline.extend(update.timeline);
        entry.drill.timeline.sort_by_key(|m| m.at_ms);
        for s in update.seconds {
            entry.seconds.insert((s.at_s, s.pop.clone()), s);
        }
        entry.drill.seconds = entry.seconds.values().cloned().collect();
        entry.touched = Instant::now();
        entry.drill.summary.version = self.bump();
        Ok(entry.drill.summary.clone())
    }

    /// Ends a drill with its verdict and report.
    pub fn finish(&self, id: &str, finish: DrillFinish) -> Result<DrillSummary, DrillError> {
        if finish.markdown.len() + finish.html.len() > MAX_REPORT_BYTES {
            return Err(DrillError::TooMany {
                what: "the report",
                limit: MAX_REPORT_BYTES,
            });
        }
        let mut drills = self.inner.lock();
        let entry = find(&mut drills, id)?;
        if entry.drill.summary.state != DrillState::Running {
            return Err(DrillError::Ended { id: id.to_owned() });
        }
        entry.drill.summary.state = if finish.passed {
            DrillState::Passed
        } else {
            DrillState::Failed
        };
        entry.report = Some(Arc::new((finish.markdown, finish.html)));
        entry.touched = Instant::now();
        entry.drill.summary.version = self.bump();
        Ok(entry.drill.summary.clone())
    }

    /// Every drill kept, newest first.
    pub fn list(&self) -> Vec<DrillSummary> {
        self.inner
            .lock()
            .iter()
            .rev()
            .map(|e| e.drill.summary.clone())
            .collect()
    }

    /// One drill.
    pub fn get(&self, id: &str) -> Result<Drill, DrillError> {
        let mut drills = self.inner.lock();
        Ok(find(&mut drills, id)?.drill.clone())
    }

    /// A finished drill's report: (Markdown, HTML).
    pub fn report(&self, id: &str) -> Result<Arc<(String, String)>, DrillError> {
        let mut drills = self.inner.lock();
        find(&mut drills, id)?
            .report
            .clone()
            .ok_or_else(|| DrillError::NoReport { id: id.to_owned() })
    }

    /// The drill once its version passes `since`, or after `wait` as it is
    /// then.
    pub async fn watch(&self, id: &str, since: u64, wait: Duration) -> Result<Drill, DrillError> {
        let mut changes = self.changed.subscribe();
        let _ = tokio::time::timeout(wait, async {
            loop {
                match self.get(id) {
                    Ok(d) if d.summary.version > since => return,
                    Err(_) => return,
                    Ok(_) => {}
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.get(id)
    }

    fn bump(&self) -> u64 {
        let mut version = 0;
        self.changed.send_modify(|v| {
            *v += 1;
            version = *v;
        });
        version
    }
}

fn find<'a>(drills: &'a mut VecDeque<Entry>, id: &str) -> Result<&'a mut Entry, DrillError> {
    drills
        .iter_mut()
        .find(|e| e.drill.summary.id == id)
        .ok_or_else(|| DrillError::NotFound { id: id.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DrillStart {
        DrillStart {
            scenario: "region-outage".into(),
            region: "eu-west".parse().expect("region"),
            hypothesis: "nothing is lost".into(),
            duration_s: 30,
            fault_at_s: 8,
            fault_for_s: 10,
        }
    }

    fn second(at_s: u64, pop: &str, requests: u64) -> DrillSecond {
        DrillSecond {
            at_s,
            pop: pop.into(),
            requests,
            errors: 0,
            p50_ms: 10.0,
            p99_ms: 20.0,
        }
    }

    #[test]
    fn a_drill_runs_posts_and_finishes() {
        let drills = Drills::default();
        let s = drills.start(start()).expect("start");
        assert_eq!(s.state, DrillState::Running);
        let u = drills
            .update(
                &s.id,
                DrillUpdate {
                    timeline: vec![DrillMoment {
                        at_ms: 8_000,
                        what: "fault injected".into(),
                    }],
                    seconds: vec![second(0, "dub", 3), second(1, "dub", 4)],
                },
            )
            .expect("update");
        assert!(u.version > s.version);
        // A second posted again replaces the earlier figures.
        drills
            .update(
                &s.id,
                DrillUpdate {
                    timeline: vec![],
                    seconds: vec![second(1, "dub", 9)],
                },
            )
            .expect("update");
        let d = drills.get(&s.id).expect("get");
        assert_eq!(d.seconds.len(), 2);
        assert_eq!(d.seconds[1].requests, 9);
        assert_eq!(d.timeline.len(), 1);
        assert_eq!(
            drills.report(&s.id),
            Err(DrillError::NoReport { id: s.id.clone() })
        );
        drills
            .finish(
                &s.id,
                DrillFinish {
                    passed: false,
                    markdown: "# md".into(),
                    html: "<p>".into(),
                },
            )
            .expect("finish");
        assert_eq!(drills.list()[0].state, DrillState::Failed);
        assert_eq!(drills.report(&s.id).expect("report").0, "# md");
        assert_eq!(
            drills.update(&s.id, DrillUpdate::default()),
            Err(DrillError::Ended { id: s.id.clone() })
        );
    }

    #[test]
    fn the_store_is_bounded() {
        let drills = Drills::default();
        let first = drills.start(start()).expect("start");
        drills
            .finish(
                &first.id,
                DrillFinish {
                    passed: true,
                    markdown: String::new(),
                    html: String::new(),
                },
            )
            .expect("finish");
        for _ in 1..MAX_DRILLS {
            drills.start(start()).expect("start");
        }
        // Full: the finished one makes room, then no running one can.
        drills.start(start()).expect("evicts the finished drill");
        assert!(matches!(
            drills.get(&first.id),
            Err(DrillError::NotFound { .. })
        ));
        assert_eq!(drills.start(start()), Err(DrillError::Full));
        assert_eq!(drills.list().len(), MAX_DRILLS);

        let id = drills.list()[0].id.clone();
        let many = DrillUpdate {
            timeline: (0..=MAX_TIMELINE as u64)
                .map(|at_ms| DrillMoment {
                    at_ms,
                    what: "x".into(),
                })
                .collect(),
            seconds: vec![],
        };
        assert!(matches!(
            drills.update(&id, many),
            Err(DrillError::TooMany { .. })
        ));
        let long = DrillUpdate {
            timeline: vec![DrillMoment {
                at_ms: 0,
                what: "x".repeat(MAX_TEXT + 1),
            }],
            seconds: vec![],
        };
        assert!(matches!(
            drills.update(&id, long),
            Err(DrillError::TooMany { .. })
        ));
        let big = DrillFinish {
            passed: true,
            markdown: "x".repeat(MAX_REPORT_BYTES),
            html: "y".into(),
        };
        assert!(matches!(
            drills.finish(&id, big),
            Err(DrillError::TooMany { .. })
        ));
    }

    #[tokio::test]
    async fn watch_answers_on_a_change_or_at_its_timeout() {
        let drills = Drills::default();
        let s = drills.start(start()).expect("start");
        let waiting = {
            let drills = drills.clone();
            let id = s.id.clone();
            tokio::spawn(async move { drills.watch(&id, s.version, Duration::from_secs(30)).await })
        };
        drills
            .update(
                &s.id,
                DrillUpdate {
                    timeline: vec![DrillMoment {
                        at_ms: 1,
                        what: "x".into(),
                    }],
                    seconds: vec![],
                },
            )
            .expect("update");
        let seen = waiting.await.expect("task").expect("watch");
        assert_eq!(seen.timeline.len(), 1);
        let unchanged = drills
            .watch(&s.id, seen.summary.version, Duration::from_millis(1))
            .await
            .expect("watch");
        assert_eq!(unchanged.summary.version, seen.summary.version);
    }
}
