//! The edge component (the same .wasm Spin would run) in edge-host, against
//! real regional services and the real routing layer, all on 127.0.0.1.

mod bounds;
mod edge;
mod front;
mod worker;
mod world;
