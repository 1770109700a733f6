//! Hysteresis of one region's state machine.

use std::time::Duration;

use routing::health::{HealthPolicy, ProbeOutcome, RegionHealth};
use topology::routing::Health;

const FAST: ProbeOutcome = ProbeOutcome::Ready {
    latency: Duration::from_millis(2),
};
const SLOW: ProbeOutcome = ProbeOutcome::Ready {
    latency: Duration::from_millis(900),
};
const FAIL: ProbeOutcome = ProbeOutcome::Failed;

fn policy() -> HealthPolicy {
    HealthPolicy {
        fall: 3,
        rise: 2,
        window: 10,
        degraded_error_ratio: 0.3,
        degraded_latency_ms: 100.0,
        ..HealthPolicy::default()
    }
}

fn feed(h: &mut RegionHealth, outcomes: &[ProbeOutcome]) -> Vec<Health> {
    outcomes
        .iter()
        .filter_map(|o| h.observe(*o, &policy()))
        .collect()
}

#[test]
fn starts_down_and_rises_after_m_successes() {
    let mut h = RegionHealth::new();
    assert_eq!(h.health(), Health::Down);
    assert_eq!(feed(&mut h, &[FAST]), vec![]);
    assert_eq!(feed(&mut h, &[FAST]), vec![Health::Healthy]);
}

#[test]
fn falls_after_n_consecutive_failures_only() {
    let mut h = RegionHealth::new();
    feed(&mut h, &[FAST, FAST]);
    // Two failures, a success, two failures: never three in a row.
    assert!(!feed(&mut h, &[FAIL, FAIL, FAST, FAIL, FAIL]).contains(&Health::Down));
    assert_eq!(feed(&mut h, &[FAIL]).last(), Some(&Health::Down));
}

#[test]
fn flapping_never_takes_a_region_down_and_changes_it_at_most_once() {
    let mut h = RegionHealth::new();
    feed(&mut h, &[FAST, FAST]);
    let flaps: Vec<ProbeOutcome> = (0..200)
        .map(|i| if i % 2 == 0 { FAIL } else { FAST })
        .collect();
    let changes = feed(&mut h, &flaps);
    assert_eq!(
        changes,
        vec![Health::Degraded],
        "flapping flipped the state: {changes:?}"
    );
}

#[test]
fn flapping_while_down_does_not_bring_it_back() {
    let mut h = RegionHealth::new();
    let flaps: Vec<ProbeOutcome> = (0..50)
        .map(|i| if i % 2 == 0 { FAIL } else { FAST })
        .collect();
    assert_eq!(feed(&mut h, &flaps), vec![]);
    assert_eq!(h.health(), Health::Down);
}

#[test]
fn slow_probes_degrade_and_fast_ones_recover() {
    let mut h = RegionHealth::new();
    feed(&mut h, &[FAST, FAST]);
    let slow = vec![SLOW; 10];
    assert_eq!(feed(&mut h, &slow), vec![Health::Degraded]);
    let fast = vec![FAST; 10];
    assert_eq!(feed(&mut h, &fast), vec![Health::Healthy]);
    assert!(h.latency_ms().unwrap() < 100.0);
}

#[test]
fn recovery_is_judged_on_probes_since_it_came_back() {
    let mut h = RegionHealth::new();
    feed(&mut h, &[FAST, FAST, FAIL, FAIL, FAIL, FAIL, FAIL]);
    assert_eq!(h.health(), Health::Down);
    assert_eq!(feed(&mut h, &[FAST, FAST]), vec![Health::Healthy]);
}

/// A far region is judged against its baseline: probes at its distance
/// keep it healthy, and only latency above the baseline degrades it.
#[test]
fn distance_alone_does_not_degrade_a_region() {
    let policy = HealthPolicy::default();
    let ready = |ms: u64| ProbeOutcome::Ready {
        latency: Duration::from_millis(ms),
    };
    let mut far = RegionHealth::new().with_baseline(233.0);
    let mut near = RegionHealth::new();
    for _ in 0..policy.window {
        far.observe(ready(240), &policy);
        near.observe(ready(240), &policy);
    }
    assert_eq!(far.health(), Health::Healthy);
    assert_eq!(near.health(), Health::Degraded);
    for _ in 0..policy.window {
        far.observe(ready(233 + 200), &policy);
    }
    assert_eq!(far.health(), Health::Degraded);
}
