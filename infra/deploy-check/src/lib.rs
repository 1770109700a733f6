//! Nothing here: the checks are this crate's tests (`tests/`).
