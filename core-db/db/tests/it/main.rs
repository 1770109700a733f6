//! Unit-level properties of the storage API that need no engine: atomic
//! mutation semantics, key arithmetic, error classification. (Behaviour
//! through an engine is the conformance battery's job, in db-testkit.)

mod atomics;
mod keys;
