//! Write [Airlock](https://github.com/airlockhq/airlock) plugins in Rust.
//!
//! An Airlock host runs each process-tier plugin as its own OS process and
//! talks to it over a private socket, speaking the versioned binary protocol
//! of `docs/protocol.md`. This crate is the plugin's side of that protocol:
//! you name your functions, it negotiates, runs calls concurrently on a small
//! thread pool, answers heartbeats, delivers deadlines and cancellation,
//! turns panics into errors and drains on shutdown.
//!
#![cfg_attr(feature = "json", doc = "```no_run")]
#![cfg_attr(not(feature = "json"), doc = "```ignore")]
//! use airlock_plugin::{Context, Error, Level, Plugin, Result};
//! use std::process::ExitCode;
//!
//! /// Upper-cases UTF-8 text.
//! fn shout(ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
//!     let text = std::str::from_utf8(input)
//!         .map_err(|e| Error::BadInput(format!("input is not UTF-8: {e}")))?;
//!     ctx.log(Level::DEBUG, "shouting", &[("bytes", &input.len())]);
//!     Ok(text.to_uppercase().into_bytes())
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct AddRequest {
//!     a: i64,
//!     b: i64,
//! }
//!
//! #[derive(serde::Serialize)]
//! struct AddResponse {
//!     sum: i64,
//! }
//!
//! fn main() -> ExitCode {
//!     Plugin::new("demo", env!("CARGO_PKG_VERSION"))
//!         .handle("shout", shout)
//!         .handle_json("add", |_ctx, req: AddRequest| -> Result<AddResponse> {
//!             let sum = req.a.checked_add(req.b)
//!                 .ok_or_else(|| Error::BadInput("the sum overflows".into()))?;
//!             Ok(AddResponse { sum })
//!         })
//!         .serve()
//! }
//! ```
//!
//! Run by hand, such a program explains that it is a plugin and exits with
//! status 2; started by a host it serves until the host shuts it down.
//! [`Plugin::call`] runs a handler in-process for unit tests.
//!
//! # Features
//!
//! - `json` (default): `Plugin::handle_json`, typed handlers built on
//!   serde and serde_json (used by the example above), and typed calls to
//!   the host's built-in capabilities (`ctx.kv()`, `ctx.http()`, `ctx.fs()`,
//!   `ctx.clock()`, `ctx.random()`, `ctx.config()`; module `capability`).
//! - `attenuate` (default, needs `json`): [`Context::attenuate`], a plugin
//!   narrowing its own capability tokens, on RustCrypto's `hmac` and `sha2`.
//!
//! Without default features the crate has no dependencies.
//!
//! # Capabilities
//!
//! After negotiation the host sends the plugin one token per capability
//! the operator granted. [`Context::host_call`] presents the right one
//! itself: the token of the longest granted capability name that is a
//! dotted prefix of the function (`kv` for `kv.get`). A function whose
//! capability was not granted goes out with an empty token, and the host
//! answers [`Error::PermissionDenied`] naming the capability.
//!
//! A plugin can give up powers it no longer needs:
//! `ctx.attenuate("kv", &Caveat { ops: vec!["kv.get".into()], ..Default::default() })`
//! narrows its `kv` token to reads from then on, also across the fresh
//! tokens the host hands out later. It needs no key and cannot widen
//! anything.
//!
//! # Safety
//!
//! The only unsafe code adopts file descriptor 3 and, on Linux, makes the
//! epoll calls that let one thread watch the socket while another runs a
//! call (module `sys`, with a `SAFETY` comment on each block); every other
//! module forbids unsafe code.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(not(unix))]
compile_error!("airlock-plugin serves over a Unix socket and builds only for Unix targets");

#[cfg(feature = "json")]
#[forbid(unsafe_code)]
pub mod capability;
#[forbid(unsafe_code)]
mod context;
#[forbid(unsafe_code)]
mod error;
#[forbid(unsafe_code)]
mod plugin;
#[forbid(unsafe_code)]
mod serve;
#[allow(unsafe_code)]
mod sys;
#[cfg(feature = "attenuate")]
#[forbid(unsafe_code)]
pub mod token;
#[forbid(unsafe_code)]
pub mod wire;

pub use context::{Context, Level, Logger};
pub use error::Error;
pub use plugin::Plugin;
#[cfg(feature = "attenuate")]
pub use token::Caveat;

/// The result of a handler or host call.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_cross_threads() {
        send_sync::<crate::Context>();
        send_sync::<crate::Logger>();
        send_sync::<crate::Error>();
        send_sync::<crate::Plugin>();
    }
}
