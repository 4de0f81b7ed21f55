//! The end-to-end tests, one binary (linking dominates on small machines): the examples as real
//! servers over real HTTP on 127.0.0.1, and the promise index. The interop suite
//! (`tests/interop.rs`) is a binary of its own with its own harness.
#![allow(unreachable_pub)]

mod demo;
mod fleet_cache;
mod fleet_inbound;
mod grpc;
mod load_safety;
mod monitoring;
mod promises;
mod readme;
mod weather_api;
