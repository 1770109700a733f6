//! The CLI's tests: every config file shipped in infra/ parses, and `up`
//! opens the local platform's storage. The whole platform's tests (`up`'s
//! topology, faults, drills, a SIGKILL) are in `tests/e2e`.

mod configs;
