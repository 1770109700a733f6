//! infra/ checked as deploy time would check it, earlier: every overlay is
//! rendered with `kubectl kustomize` (what `kubectl apply -k` applies), each
//! object parsed into its typed struct and serialized back to the same
//! document, and the Meridian configs inside loaded by the services' own
//! loaders.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed step is a failed test"
)]

mod configs;
mod crds;
mod kubernetes;
mod region;
mod render;
