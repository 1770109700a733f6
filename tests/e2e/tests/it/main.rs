//! End-to-end tests: the whole local topology (three regions with geography
//! between them, the routing layer and its DNS, four edge POPs running the
//! Spin component in edge-host) started in the test, in-process or as a
//! `meridian up` process, and driven through the POPs as shoppers are, by
//! HTTP clients and by a real browser.

mod browser;
mod drill;
mod faults;
mod geography;
mod journey;
mod recommend;
mod reviews;
mod sigkill;
mod stack;
mod support;
