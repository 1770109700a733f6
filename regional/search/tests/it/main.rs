//! Integration tests of the search index, through its public API only.

mod concurrency;
mod filters;
mod hostile;
mod persistence;
mod sorting;
mod support;
mod writes;
