//! The commerce domain's own tests, on the embedded engine, without HTTP:
//! the saga's paths, garbage collection, the provider's books.

mod determinism;
mod gc;
mod harness;
mod import;
mod inventory;
mod patterns;
mod replica;
mod reviews;
mod saga;
