#![allow(unreachable_pub)] // a test binary: `pub` marks what its modules share
//! End-to-end tests: the built `vivace` binary on free ports and a temporary data dir, driven by
//! real clients (the OpenTelemetry Python SDK exporters, tonic and HTTP clients) over sockets.
//!
//! Run through `scripts/test.sh`, which installs the pinned Python clients and sets
//! `VIVACE_PYTHON`.

mod arrow;
mod auth;
mod bad_input;
mod blocks;
mod cli;
mod crash;
mod generator;
mod jaeger;
mod lifecycle;
mod mcp;
mod metrics;
mod model;
mod node;
mod opencensus;
mod outage;
mod roundtrip;
mod search;
mod storage;
mod support;
mod tenancy;
mod ui;
mod vulture;
mod zipkin;
