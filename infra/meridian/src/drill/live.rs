//! A running drill's progress posted to the routing API, so an SRE (and
//! the dashboard) can follow it live: the drill is started there, its
//! timeline moments are posted as they happen and its per-second figures
//! (each POP's and all of them together) every second, and its report when
//! it ends. The wire shapes are `routing::drills`'.
//!
//! Posting never fails a drill: the routing layer is what a drill may be
//! breaking, so a refused post is logged and the drill goes on (its report
//! files are the record).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use routing::drills::{DrillFinish, DrillMoment, DrillStart, DrillUpdate};

use super::load::{self, LiveLog, Record};
use super::report::{self, ALL_POPS, Second};
use super::{Moment, Outcome};

/// How long a second's figures may still change: a request is recorded
/// when it ends, stamped with when it started.
const SETTLE: Duration = load::REQUEST_TIMEOUT.saturating_add(Duration::from_secs(2));
/// Moments waiting to be posted, at most.
const MAX_PENDING_MOMENTS: usize = 256;
/// Each post's deadline.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where moments go to be posted.
pub type MomentSender = tokio::sync::mpsc::Sender<DrillMoment>;

/// Where a drill posts: the routing API and its admin token.
#[derive(Debug, Clone)]
pub struct Target {
    pub api: String,
    pub token: String,
}

/// A drill being posted.
#[derive(Debug)]
pub struct Live {
    client: reqwest::Client,
    target: Target,
    /// The drill's id at the routing layer.
    pub id: String,
    moments: tokio::sync::mpsc::Sender<DrillMoment>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<BTreeSet<(u64, String)>>,
}

impl Live {
    /// Starts the drill at the routing layer and posts the load's records
    /// (from `log`) every second until [`Live::finish`].
    pub async fn start(
        target: Target,
        start: DrillStart,
        log: LiveLog,
        started: Instant,
    ) -> anyhow::Result<Live> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(POST_TIMEOUT)
            .build()?;
        let summary =
            routing::client::drill_start(&client, &target.api, &target.token, &start).await?;
        let (moments, pending) = tokio::sync::mpsc::channel(MAX_PENDING_MOMENTS);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(post_loop(
            client.clone(),
            target.clone(),
            summary.id.clone(),
            log,
            started,
            pending,
            stopped,
        ));
        Ok(Live {
            client,
            target,
            id: summary.id,
            moments,
            stop,
            task,
        })
    }

    /// A sender of moments for another task (dropped when full, as
    /// [`Live::moment`]'s).
    pub fn moment_sender(&self) -> MomentSender {
        self.moments.clone()
    }

    /// Posts `moment` with the next update (dropped, logged, if the queue
    /// is full: the report keeps every moment).
    pub fn moment(&self, moment: &Moment) {
        let posted = self.moments.try_send(DrillMoment {
            at_ms: moment.at_ms,
            what: moment.what.clone(),
        });
        if posted.is_err() {
            tracing::warn!(what = %moment.what, "a drill moment was not posted live");
        }
    }

    /// Stops the live posts, then posts what the routing layer has not seen
    /// (the moments found afterwards, every second's final figures) and
    /// the report.
    pub async fn finish(self, outcome: &Outcome) -> anyhow::Result<String> {
        let _ = self.stop.send(true);
        let posted = self.task.await.unwrap_or_default();
        let timeline = outcome
            .timeline
            .iter()
            .filter(|m| !posted.contains(&(m.at_ms, m.what.clone())))
            .map(|m| DrillMoment {
                at_ms: m.at_ms,
                what: m.what.clone(),
            })
            .collect();
        let seconds = final_seconds(outcome);
        let (api, token) = (&self.target.api, &self.target.token);
        routing::client::drill_update(
            &self.client,
            api,
            token,
            &self.id,
            &DrillUpdate { timeline, seconds },
        )
        .await?;
        routing::client::drill_finish(
            &self.client,
            api,
            token,
            &self.id,
            &DrillFinish {
                passed: outcome.passed(),
                markdown: report::markdown(outcome),
                html: super::html::page(outcome)?,
            },
        )
        .await?;
        Ok(self.id)
    }
}

/// Every second of the whole load, each POP's and all together.
fn final_seconds(outcome: &Outcome) -> Vec<Second> {
    let duration = outcome.options.duration.as_secs().max(1);
    let mut seconds = Vec::new();
    for pop in report::pops(outcome) {
        seconds.extend(report::per_second(
            outcome.records.iter().filter(|r| r.pop == pop),
            duration,
            pop,
        ));
    }
    seconds.extend(report::per_second(
        outcome.records.iter(),
        duration,
        ALL_POPS,
    ));
    seconds
}

/// Every second: the records made since go into the seconds that may
/// still change, and the figures of each second that is over and has not
/// been posted as it is now (just ended, or completed by late answers),
/// with any new moments, are posted. Returns the moments it posted.
async fn post_loop(
    client: reqwest::Client,
    target: Target,
    id: String,
    log: LiveLog,
    started: Instant,
    mut pending: tokio::sync::mpsc::Receiver<DrillMoment>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> BTreeSet<(u64, String)> {
    let mut window: BTreeMap<u64, Vec<Record>> = BTreeMap::new();
    // Seconds that got records since they were last posted.
    let mut changed: BTreeSet<u64> = BTreeSet::new();
    let mut posted = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return posted,
        }
        for r in load::take(&log) {
            changed.insert(r.at_ms / 1000);
            window.entry(r.at_ms / 1000).or_default().push(r);
        }
        let now_s = started.elapsed().as_secs();
        let mut seconds = Vec::new();
        let over: Vec<u64> = changed.range(..now_s).copied().collect();
        for at_s in over {
            changed.remove(&at_s);
            let Some(records) = window.get(&at_s) else {
                continue;
            };
            let pops: BTreeSet<&str> = records.iter().map(|r| r.pop.as_str()).collect();
            for pop in pops {
                seconds.push(report::second(
                    at_s,
                    pop,
                    records.iter().filter(|r| r.pop == pop),
                ));
            }
            seconds.push(report::second(at_s, ALL_POPS, records.iter()));
        }
        let settle = SETTLE.as_secs();
        window.retain(|at_s, _| at_s + settle > now_s);
        let mut timeline = Vec::new();
        while let Ok(m) = pending.try_recv() {
            timeline.push(m);
        }
        if seconds.is_empty() && timeline.is_empty() {
            continue;
        }
        let sent: Vec<(u64, String)> = timeline.iter().map(|m| (m.at_ms, m.what.clone())).collect();
        let update = DrillUpdate { timeline, seconds };
        match routing::client::drill_update(&client, &target.api, &target.token, &id, &update).await
        {
            Ok(_) => posted.extend(sent),
            Err(e) => {
                // Its seconds go again next time (while still in the
                // window); its moments go with the final update.
                changed.extend(update.seconds.iter().map(|s| s.at_s));
                tracing::warn!(error = %format!("{e:#}"), "posting the drill's progress");
            }
        }
    }
}
