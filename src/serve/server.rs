//! The controller: the current build, the call slots, the connected clients, and the MCP
//! handler (`tools/list`, `tools/call`) that every transport serves.

use super::call::{self, Arguments, OUTPUT_LIMIT, WORK_DIR};
use super::loaded::{tool_path, Loaded};
use super::workdir::WorkDirs;
use crate::commands::args::TrustArgs;
use crate::rootfs;
use megabin_format::exit;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use runtime_check::Cache;
use runtime_check::{run_call, Call, Cancel, Ending, Invocation, Outcome, Ticker};
use runtime_check::{Measurer, Memo};
use runtime_check::{Refusal, Request, EXIT_NOT_FOUND};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wasmtime::Engine;

/// Name of the tool `--expose-programs` adds.
pub const RUN_TOOL: &str = "run";

/// What `megabin serve` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    /// The build output.
    pub out: PathBuf,
    /// The rootfs whose files are verified on each call.
    pub rootfs: PathBuf,
    /// Pin, cache and hashing flags.
    pub trust: TrustArgs,
    /// Calls running at once; the rest wait.
    pub max_concurrency: usize,
    /// Default (and upper bound of the tools') time limit per call.
    pub timeout: Option<Duration>,
    /// Default (and upper bound of the tools') memory cap per call.
    pub max_memory: Option<usize>,
    /// Offer the `run` tool.
    pub expose_programs: bool,
}

/// State shared by every client and transport.
pub struct Server {
    opts: Options,
    engine: Engine,
    cache: Option<Cache>,
    /// The measurements calls have read or written (one `fstat` per call, no record read).
    memo: Memo,
    current: RwLock<Arc<Loaded>>,
    slots: tokio::sync::Semaphore,
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// The calls' `/work` directories.
    work: WorkDirs,
    _ticker: Ticker,
}

/// The MCP handler: a cheap handle on the [`Server`].
#[derive(Clone)]
pub struct Handler(pub Arc<Server>);

impl Server {
    /// Loads the build (refusing it exactly as `megabin run` would) and starts the epoch ticker.
    pub fn start(opts: Options, cache: Option<Cache>) -> Result<Arc<Server>, Refusal> {
        let instances = (opts.max_concurrency as u32).saturating_add(2);
        let engine = Engine::new(&runtime_check::pooled_config(instances))
            .or_else(|_| Engine::new(&runtime_check::engine_config()))
            .map_err(|e| Refusal {
                exit_code: exit::FAILURE,
                message: format!("cannot create the Wasmtime engine: {e}"),
            })?;
        let loaded = Loaded::load(&opts.out, &opts.trust, &engine, cache.as_ref())?;
        let work = WorkDirs::new().map_err(|e| Refusal {
            exit_code: exit::FAILURE,
            message: format!("cannot create the directory of the calls' work directories: {e}"),
        })?;
        let ticker = Ticker::start(&engine);
        Ok(Arc::new(Server {
            slots: tokio::sync::Semaphore::new(opts.max_concurrency.max(1)),
            opts,
            engine,
            cache,
            memo: Memo::default(),
            current: RwLock::new(Arc::new(loaded)),
            peers: Mutex::new(Vec::new()),
            work,
            _ticker: ticker,
        }))
    }

    /// The build new calls use.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.read().unwrap().clone()
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Loads OUT again and, if it verifies, makes it the current build. Returns whether the
    /// build changed; an error leaves the current build serving.
    pub fn reload(&self) -> Result<bool, String> {
        let new = Loaded::load(
            &self.opts.out,
            &self.opts.trust,
            &self.engine,
            self.cache.as_ref(),
        )
        .map_err(|r| r.message)?;
        let mut cur = self.current.write().unwrap();
        let changed = cur.id() != new.id();
        *cur = Arc::new(new);
        Ok(changed)
    }

    /// Tells every connected client that the tool list changed (clients that are gone are
    /// forgotten).
    pub async fn notify_tools_changed(&self) {
        let peers: Vec<Peer<RoleServer>> = self.peers.lock().unwrap().clone();
        let mut alive = Vec::new();
        for p in peers {
            if p.notify_tool_list_changed().await.is_ok() {
                alive.push(p);
            }
        }
        *self.peers.lock().unwrap() = alive;
    }

    fn tools(&self, loaded: &Loaded) -> Vec<Tool> {
        let output = Arc::new(as_object(call::output_schema()));
        let mut tools: Vec<Tool> = loaded
            .tools()
            .iter()
            .map(|(name, t)| {
                let path = t.path.clone().unwrap_or_else(|| t.digest.to_string());
                let description = t
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Runs {path} (WASI program)"));
                let schema = t
                    .input_schema
                    .clone()
                    .unwrap_or_else(call::default_input_schema);
                let mut tool = Tool::new(name.clone(), description, Arc::new(as_object(schema)));
                tool.output_schema = Some(output.clone());
                tool
            })
            .collect();
        if self.opts.expose_programs {
            let mut schema = call::default_input_schema();
            schema["properties"]["program"] = serde_json::json!({
                "type": "string",
                "description": "Absolute path of a program of the manifest"
            });
            schema["required"] = serde_json::json!(["program"]);
            let mut tool = Tool::new(
                RUN_TOOL,
                "Runs any program of the container by its path, verified against the manifest",
                Arc::new(as_object(schema)),
            );
            tool.output_schema = Some(output);
            tools.push(tool);
        }
        tools
    }
}

fn as_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A call that ran: how it ended, the files it left, the digest of the program.
struct Ran {
    outcome: Outcome,
    files: Map<String, Value>,
    digest: String,
}

/// What a call runs: the rootfs path verified and its limits.
struct Target {
    shown: String,
    path: String,
    timeout: Option<Duration>,
    max_memory: Option<usize>,
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Server {
    /// Resolves the called name to a target, or a protocol error for an unknown tool.
    fn target(
        &self,
        loaded: &Loaded,
        name: &str,
        args: &mut Option<Map<String, Value>>,
    ) -> Result<Result<Target, (i32, String)>, McpError> {
        if self.opts.expose_programs && name == RUN_TOOL {
            let program = args
                .as_mut()
                .and_then(|m| m.remove("program"))
                .and_then(|v| v.as_str().map(str::to_string));
            let Some(path) = program else {
                return Ok(Err((
                    EXIT_NOT_FOUND,
                    "`run` needs a `program`: an absolute path of the manifest".into(),
                )));
            };
            return Ok(Ok(Target {
                shown: format!("run {path}"),
                path,
                timeout: self.opts.timeout,
                max_memory: self.opts.max_memory,
            }));
        }
        let tool = loaded
            .tools()
            .get(name)
            .ok_or_else(|| McpError::invalid_params(format!("unknown tool `{name}`"), None))?;
        let Some(path) = tool_path(&loaded.container, tool) else {
            return Ok(Err((
                runtime_check::EXIT_REFUSED,
                format!(
                    "agent tool `{name}` names {}, which no binary has",
                    tool.digest
                ),
            )));
        };
        Ok(Ok(Target {
            shown: name.to_string(),
            path,
            timeout: min_opt(
                tool.timeout_ms.map(Duration::from_millis),
                self.opts.timeout,
            ),
            max_memory: min_opt(tool.max_memory.map(|m| m as usize), self.opts.max_memory),
        }))
    }

    /// Verifies and runs one call (blocking: runs on a blocking thread).
    fn execute(
        &self,
        loaded: &Loaded,
        target: &Target,
        args: Arguments,
        cancel: &Cancel,
    ) -> Result<Ran, (i32, String)> {
        let measurer = Measurer::with_memo(self.cache.as_ref(), self.opts.trust.rehash, &self.memo);
        let path = if target.path.starts_with('/') {
            target.path.clone()
        } else {
            format!("/{}", target.path)
        };
        let locate = |p: &str| rootfs::resolve(&self.opts.rootfs, p).ok().map(|t| t.host);
        let host = locate(&path);
        let verified = loaded
            .container
            .verify_request(&Request::Path { path, host }, &locate, &measurer)
            .map_err(|r| (r.exit_code, r.message))?;
        let digest = verified.digest.to_string();
        let prepared = loaded.prepared.get(&verified.megabinary).ok_or_else(|| {
            (
                runtime_check::EXIT_REFUSED,
                format!("megabinary {} is not loaded", verified.megabinary),
            )
        })?;
        let work = self.work.take().map_err(|e| {
            (
                exit::FAILURE,
                format!("cannot create the work directory: {e}"),
            )
        })?;
        call::write_files(work.path(), &args.files).map_err(|e| (exit::FAILURE, e))?;
        // A script: its interpreter's argv, and its verified copy readable at its path.
        let staged = verified
            .stage_script()
            .map_err(|e| (exit::FAILURE, format!("cannot stage the script: {e}")))?;
        let argv0 = target.shown.rsplit(' ').next().unwrap_or_default();
        let argv = verified.argv_prefix(argv0.to_string());
        let spec = Call {
            invocation: Invocation {
                args: argv.into_iter().chain(args.args).collect(),
                env: vec![("PWD".into(), WORK_DIR.into())],
                stdin: args.stdin,
                // `/work`, and `.` so that relative paths resolve inside it too.
                preopens: vec![
                    (work.path().to_path_buf(), WORK_DIR.into()),
                    (work.path().to_path_buf(), ".".into()),
                ],
                read_only: staged.iter().map(|s| s.preopen()).collect(),
            },
            max_memory: target.max_memory,
            timeout: target.timeout,
            output_limit: OUTPUT_LIMIT,
        };
        let outcome = run_call(
            &self.engine,
            prepared,
            verified.digest.bytes(),
            &spec,
            cancel,
        );
        let files = match outcome.ending {
            Ending::Exit(_) | Ending::Trap(_) | Ending::Memory { .. } => {
                call::changed_files(work.path(), &args.files)
            }
            _ => Map::new(),
        };
        Ok(Ran {
            outcome,
            files,
            digest,
        })
    }
}

/// Logs one call on stderr, as one `write` (stderr is unbuffered: `eprintln!` would write each
/// piece of the line with a system call of its own).
fn log_call(shown: &str, digest: &str, code: i32, started: Instant, note: &str) {
    use std::io::Write;
    let line = format!(
        "megabin: serve: call {shown} {digest} exit={code} time={:.3}ms{note}\n",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// How the log line of a call notes its ending (nothing for a plain exit).
fn ending_note(ending: &Ending) -> &'static str {
    match ending {
        Ending::Cancelled => " cancelled",
        Ending::Timeout(_) => " timeout",
        Ending::Trap(_) => " trap",
        Ending::Memory { .. } => " memory",
        Ending::Failed(_) => " failed",
        Ending::Exit(_) => "",
    }
}

fn structured(value: Value, text: String, is_error: bool) -> CallToolResponse {
    let mut r = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    r.structured_content = Some(value);
    r.into()
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(caps)
            .with_server_info(rmcp::model::Implementation::new(
                "megabin",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Each tool runs a verified WASI program in a fresh sandbox. Arguments: args \
                 (argv), stdin (text), files (written into /work, the working directory). \
                 Files created or changed in /work are returned.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let loaded = self.0.current();
        Ok(ListToolsResult::with_all_items(self.0.tools(&loaded)))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.0.peers.lock().unwrap().push(context.peer);
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        let server = self.0.clone();
        let loaded = server.current();
        let name = request.name.to_string();
        let mut arguments = request.arguments;
        let target = match server.target(&loaded, &name, &mut arguments)? {
            Ok(t) => t,
            Err((code, message)) => {
                log_call(&name, "-", code, started, " refused");
                let (v, text) = call::refusal_value(code, &message);
                return Ok(structured(v, text, true));
            }
        };
        let args = match call::parse_arguments(arguments.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                log_call(
                    &target.shown,
                    "-",
                    exit::USAGE,
                    started,
                    " invalid arguments",
                );
                let (v, text) =
                    call::refusal_value(exit::USAGE, &format!("invalid arguments: {e}"));
                return Ok(structured(v, text, true));
            }
        };
        let ct = context.ct.clone();
        // Wait for a slot; a call cancelled while queued never starts.
        let permit = tokio::select! {
            p = server.slots.acquire() => p.map_err(|_| McpError::internal_error("shutting down", None))?,
            _ = ct.cancelled() => {
                log_call(&target.shown, "-", runtime_check::EXIT_TIMEOUT, started, " cancelled while queued");
                return Err(McpError::internal_error("cancelled", None));
            }
        };
        let cancel = Cancel::default();
        let job = {
            let server = server.clone();
            let cancel = cancel.clone();
            let target_path = target.path.clone();
            let shown = target.shown.clone();
            let (timeout, max_memory) = (target.timeout, target.max_memory);
            tokio::task::spawn_blocking(move || {
                let t = Target {
                    shown,
                    path: target_path,
                    timeout,
                    max_memory,
                };
                server.execute(&loaded, &t, args, &cancel)
            })
        };
        let mut job = job;
        let finished = tokio::select! {
            r = &mut job => Some(r),
            _ = ct.cancelled() => None,
        };
        let joined = match finished {
            Some(r) => r,
            None => {
                // `notifications/cancelled`: stop the instance at its next epoch check.
                cancel.cancel();
                job.await
            }
        };
        drop(permit);
        let result =
            joined.map_err(|e| McpError::internal_error(format!("call failed: {e}"), None))?;
        match result {
            Ok(Ran {
                outcome,
                files,
                digest,
            }) => {
                let note = ending_note(&outcome.ending);
                log_call(
                    &target.shown,
                    &digest,
                    outcome.ending.exit_code(),
                    started,
                    note,
                );
                let (v, text, is_error) = call::result_value(&target.shown, &outcome, files);
                Ok(structured(v, text, is_error))
            }
            Err((code, message)) => {
                log_call(&target.shown, "-", code, started, " refused");
                let (v, text) = call::refusal_value(code, &message);
                Ok(structured(v, text, true))
            }
        }
    }
}
