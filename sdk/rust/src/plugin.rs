//! The plugin builder: name, exported functions, limits, then `serve`.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Arc;

use crate::context::{CallState, Context, Logger};
use crate::serve::{self, End};
use crate::{sys, wire, Error, Result};

pub(crate) type Handler = Box<dyn Fn(&Context, &[u8]) -> Result<Vec<u8>> + Send + Sync>;

/// One exported function.
pub(crate) struct Function {
    pub(crate) name: String,
    pub(crate) handler: Handler,
}

/// The exit status when the program was not started by an Airlock host.
const EXIT_USAGE: u8 = 2;

/// A plugin: its name, the functions it exports and how it serves them.
///
/// Build it with [`Plugin::new`] and [`Plugin::handle`] (or
/// `Plugin::handle_json` with the `json` feature), then return
/// [`Plugin::serve`] from `main`.
///
/// # Lifecycle
///
/// 1. **Start.** The host starts the program with the socket on descriptor 3
///    and `AIRLOCK_PROTOCOL` set. Without them `serve` prints what the program
///    is to stderr and returns exit status 2.
/// 2. **Negotiate.** `serve` reads HELLO, picks the highest protocol version
///    both sides speak and answers WELCOME with the exported functions, or
///    ERROR `version_mismatch` naming both ranges and returns status 1.
/// 3. **Operate.** A pool of threads (one more than
///    [`Plugin::max_concurrency`], started as needed and reused) serves the
///    connection: one of them always reads, answering PING at once and
///    delivering CANCEL and host-call replies, while the others run calls.
///    Each call gets exactly one RESULT or ERROR; a handler panic becomes
///    ERROR `panic` and the plugin keeps serving.
/// 4. **Drain.** On SHUTDOWN new calls are refused with `unavailable`;
///    running ones get the grace period to finish, then are cancelled
///    without an answer (the host fails them when the plugin exits).
///    `serve` sends GOODBYE and returns status 0.
/// 5. **End.** If the host closes the connection, `serve` returns status 0
///    at once; if the host breaks the protocol, it reports the fault and
///    returns status 1. Handlers still running are abandoned when `main`
///    returns.
pub struct Plugin {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) functions: Vec<Function>,
    pub(crate) max_concurrency: usize,
    pub(crate) max_frame: usize,
    pub(crate) logger: Logger,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("functions", &self.functions().collect::<Vec<_>>())
            .field("max_concurrency", &self.max_concurrency)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl Plugin {
    /// The default for [`Plugin::max_concurrency`], the same as a manifest's
    /// default `limits.max_concurrency`.
    pub const DEFAULT_MAX_CONCURRENCY: usize = 16;

    /// A plugin with no functions yet. `name` should be the manifest's name
    /// (the SDK warns on stderr when the host loads it under another);
    /// `version` is usually `env!("CARGO_PKG_VERSION")`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Plugin {
        let name = name.into();
        Plugin {
            logger: Logger::new(&name),
            name,
            version: version.into(),
            functions: Vec::new(),
            max_concurrency: Plugin::DEFAULT_MAX_CONCURRENCY,
            max_frame: wire::DEFAULT_MAX_FRAME,
        }
    }

    /// Exports `handler` as function `name`: it gets the call's context and
    /// input bytes and returns output bytes, or an [`Error`] whose code and
    /// message the host receives.
    ///
    /// Handlers run on pool threads, several at a time, so they must be
    /// `Send + Sync`. A panic in a handler is caught and answered with code
    /// `panic`, and the plugin keeps serving; that needs the default
    /// `panic = "unwind"` profile setting (with `"abort"` a panic ends the
    /// process).
    ///
    /// # Panics
    ///
    /// When `name` is empty, longer than 65 535 bytes, or already exported:
    /// these are mistakes in the plugin's code, found the first time it runs.
    pub fn handle<F>(mut self, name: &str, handler: F) -> Plugin
    where
        F: Fn(&Context, &[u8]) -> Result<Vec<u8>> + Send + Sync + 'static,
    {
        assert!(
            !name.is_empty(),
            "airlock-plugin: a function name must not be empty"
        );
        assert!(
            name.len() <= wire::MAX_STR,
            "airlock-plugin: function name is {} bytes, the protocol allows {}",
            name.len(),
            wire::MAX_STR
        );
        assert!(
            self.functions.iter().all(|f| f.name != name),
            "airlock-plugin: function {name:?} is exported twice"
        );
        self.functions.push(Function {
            name: name.to_owned(),
            handler: Box::new(handler),
        });
        self
    }

    /// Exports a function that takes and returns JSON: the input is decoded
    /// into `Req` (a decode failure answers `bad_input` with serde's message)
    /// and the handler's `Resp` is encoded as the output.
    ///
    /// # Panics
    ///
    /// As [`Plugin::handle`].
    #[cfg(feature = "json")]
    pub fn handle_json<Req, Resp, F>(self, name: &str, handler: F) -> Plugin
    where
        Req: serde::de::DeserializeOwned,
        Resp: serde::Serialize,
        F: Fn(&Context, Req) -> Result<Resp> + Send + Sync + 'static,
    {
        let fname = name.to_owned();
        self.handle(name, move |ctx, input| {
            let req = serde_json::from_slice(input).map_err(|e| {
                Error::BadInput(format!("decode the input of \"{fname}\" as JSON: {e}"))
            })?;
            let resp = handler(ctx, req)?;
            serde_json::to_vec(&resp).map_err(|e| {
                Error::Internal(format!("encode the output of \"{fname}\" as JSON: {e}"))
            })
        })
    }

    /// How many handlers may run at once (default 16). Calls beyond it wait
    /// in a queue. Threads are started as needed, up to this number plus one
    /// that reads, and then reused: never one per call.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_concurrency(mut self, n: usize) -> Plugin {
        assert!(n > 0, "airlock-plugin: max_concurrency must be at least 1");
        self.max_concurrency = n;
        self
    }

    /// The largest frame the plugin accepts, header included (default
    /// 4 MiB + 4 KiB, the host's default). It bounds call inputs; outputs are
    /// bounded by the host's own maximum.
    ///
    /// # Panics
    ///
    /// When `bytes` is outside 64 KiB ..= 64 MiB, the range the protocol
    /// allows.
    pub fn max_frame(mut self, bytes: usize) -> Plugin {
        assert!(
            (wire::MIN_MAX_FRAME..=wire::MAX_MAX_FRAME).contains(&bytes),
            "airlock-plugin: max_frame {bytes} is outside {}..={}",
            wire::MIN_MAX_FRAME,
            wire::MAX_MAX_FRAME
        );
        self.max_frame = bytes;
        self
    }

    /// A logger for records outside any call, such as start-up messages.
    /// Records written before the host connects go to stderr.
    pub fn logger(&self) -> Logger {
        self.logger.clone()
    }

    /// The exported function names, in the order they were added.
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.functions.iter().map(|f| f.name.as_str())
    }

    /// Runs function `function` in this process, without a host, the way a
    /// call from the host would run it (panics become [`Error::Panic`], an
    /// unknown name [`Error::UnknownFunction`]). Made for tests. The context
    /// has no deadline and is never cancelled, logs go to stderr and host
    /// calls fail with [`Error::Unavailable`].
    ///
    /// ```
    /// let plugin = airlock_plugin::Plugin::new("echo", "0.1.0")
    ///     .handle("echo", |_ctx, input| Ok(input.to_vec()));
    /// assert_eq!(plugin.call("echo", b"hi").unwrap(), b"hi");
    /// assert!(plugin.call("ehco", b"hi").is_err());
    /// ```
    pub fn call(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        let Some(f) = self.functions.iter().find(|f| f.name == function) else {
            return Err(Error::UnknownFunction(self.unknown_function(function)));
        };
        let ctx = Context {
            call: Arc::new(CallState::new(1, 0)),
            session: None,
            logger: self.logger.clone(),
        };
        invoke(f, &ctx, input)
    }

    /// Serves the exported functions to the Airlock host that started this
    /// program, until the host shuts the plugin down or goes away. Returns
    /// the status `main` should exit with: 0 after SHUTDOWN (GOODBYE sent) or
    /// when the host closed the connection, 1 when the session failed
    /// (version mismatch, protocol error; the reason is printed to stderr), 2
    /// when the program was not started by a host.
    ///
    /// Call it once, from `main`.
    pub fn serve(self) -> ExitCode {
        if !std::env::var_os("AIRLOCK_PROTOCOL").is_some_and(|v| !v.is_empty()) {
            eprintln!("{}", self.run_by_hand("AIRLOCK_PROTOCOL is not set"));
            return ExitCode::from(EXIT_USAGE);
        }
        let stream = match sys::adopt_protocol_fd() {
            Ok(s) => s,
            Err(e) => {
                let why = format!("AIRLOCK_PROTOCOL is set but {e}");
                eprintln!("{}", self.run_by_hand(&why));
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let name = self.name.clone();
        match serve::run(self, stream) {
            End::Goodbye => ExitCode::SUCCESS,
            End::HostClosed => {
                eprintln!("{name}: the host closed the connection; exiting");
                ExitCode::SUCCESS
            }
            End::Failed(why) => {
                eprintln!("{name}: {why}");
                ExitCode::FAILURE
            }
        }
    }

    fn run_by_hand(&self, why: &str) -> String {
        format!(
            "{name} {version} is an Airlock plugin: it serves its functions ({fns}) to an \
             Airlock host over a socket on file descriptor 3, and does nothing when run by \
             hand ({why}).\n\
             Run it through a host instead, for example: airlock call <plugin-folder> <function> < input",
            name = self.name,
            version = self.version,
            fns = export_list(self.functions()),
        )
    }

    pub(crate) fn unknown_function(&self, function: &str) -> String {
        format!(
            "unknown function {function:?}; exports: {}",
            export_list(self.functions())
        )
    }
}

/// The exports as a comma-separated list, as unknown_function messages give
/// them.
pub(crate) fn export_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list = names.collect::<Vec<_>>().join(", ");
    if list.is_empty() {
        "(none)".to_owned()
    } else {
        list
    }
}

/// Runs a handler, turning a panic into [`Error::Panic`].
pub(crate) fn invoke(f: &Function, ctx: &Context, input: &[u8]) -> Result<Vec<u8>> {
    match panic::catch_unwind(AssertUnwindSafe(|| (f.handler)(ctx, input))) {
        Ok(r) => r,
        Err(payload) => {
            let what = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "a non-string panic payload".to_owned()
            };
            Err(Error::Panic(format!(
                "handler {:?} panicked: {what}",
                f.name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin() -> Plugin {
        Plugin::new("t", "0.0.1")
            .handle("echo", |_ctx, input| Ok(input.to_vec()))
            .handle("boom", |_ctx, _input| panic!("kaboom {}", 42))
            .handle("fail", |_ctx, _input| Err(Error::BadInput("no".into())))
    }

    #[test]
    fn call_runs_handlers_in_process() {
        let p = plugin();
        assert_eq!(p.call("echo", b"abc").unwrap(), b"abc");
        assert!(matches!(p.call("fail", b""), Err(Error::BadInput(m)) if m == "no"));
    }

    #[test]
    fn call_turns_panics_into_errors() {
        let p = plugin();
        match p.call("boom", b"") {
            Err(Error::Panic(m)) => assert!(m.contains("kaboom 42"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.call("echo", b"after").unwrap(), b"after");
    }

    #[test]
    fn unknown_function_lists_exports() {
        match plugin().call("ehco", b"") {
            Err(Error::UnknownFunction(m)) => {
                assert_eq!(m, "unknown function \"ehco\"; exports: echo, boom, fail")
            }
            other => panic!("{other:?}"),
        }
        let empty = Plugin::new("e", "0");
        assert!(
            matches!(empty.call("x", b""), Err(Error::UnknownFunction(m)) if m.ends_with("(none)"))
        );
    }

    #[test]
    #[should_panic(expected = "exported twice")]
    fn duplicate_names_panic() {
        let _ = plugin().handle("echo", |_ctx, _input| Ok(Vec::new()));
    }

    #[test]
    fn host_calls_without_a_host_are_unavailable() {
        let p = Plugin::new("h", "0").handle("kv", |ctx, _input| ctx.host_call("kv.get", b"k"));
        assert!(matches!(p.call("kv", b""), Err(Error::Unavailable(_))));
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_handlers_decode_and_encode() {
        #[derive(serde::Deserialize)]
        struct Req {
            a: i64,
            b: i64,
        }
        #[derive(serde::Serialize)]
        struct Resp {
            sum: i64,
        }
        let p = Plugin::new("j", "0").handle_json("add", |_ctx, r: Req| -> Result<Resp> {
            Ok(Resp { sum: r.a + r.b })
        });
        assert_eq!(p.call("add", br#"{"a":2,"b":3}"#).unwrap(), br#"{"sum":5}"#);
        match p.call("add", b"{\"a\":") {
            Err(Error::BadInput(m)) => {
                assert!(m.starts_with("decode the input of \"add\" as JSON"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
}
