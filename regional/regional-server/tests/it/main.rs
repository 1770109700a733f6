//! Integration tests of the regional service, driven through its HTTP API
//! in-process (127.0.0.1, port 0) on the embedded engine.

mod api;
mod cart;
mod catalog;
mod checkout;
mod fixture;
mod import;
mod inventory;
mod maybe_applied;
mod openapi;
mod process;
mod replication;
mod reviews;
mod rotation;
mod validation;
