//! The CLI's tests: every config file shipped in infra/ parses, and `up`
//! opens the local platform's storage.

mod configs;
mod crash;
mod faults;
