//! Looking at traces without Grafana: the MCP server (`mcp.rs`) and the web UI (`web.rs`). Both
//! are clients of the query API: the MCP tools call its router in-process (`api.rs`), the web
//! UI's page calls it from the browser.

pub mod api;
mod docs;
pub mod mcp;
pub mod summary;
pub mod web;

pub use api::QueryClient;
