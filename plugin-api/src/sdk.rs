//! What a plugin author uses: the [`Plugin`] trait, the [`export_plugin!`] macro,
//! panic guards on every entry point, an instance-owned tokio runtime and a `tracing`
//! bridge that sends the plugin's log events to the host.
//!
//! Why each piece exists:
//! - a panic that unwinds out of an `extern "C"` function aborts the whole agent, so
//!   every call is wrapped in `catch_unwind` and a panic becomes [`ErrorKind::Panic`];
//! - a cdylib has its own copy of tokio's statics and cannot use the host's runtime,
//!   so [`Context::runtime`] builds one per instance, shut down and joined in
//!   `shutdown` so the library can be unloaded afterwards;
//! - a cdylib's own global `tracing` subscriber would be silent, so events are
//!   forwarded to [`HostServices::log`] while the plugin's code runs.

use std::{
    any::Any,
    cell::RefCell,
    fmt::Write as _,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{Mutex, Once},
    time::{Duration, Instant},
};

use abi_stable::std_types::{RResult, RStr, RString};
use tracing::{field::Field, Dispatch, Level};
use tracing_subscriber::{layer::Context as LayerContext, prelude::*, Layer, Registry};

use crate::{contract::*, data::Batch};

/// What an instance can reach: its name, the host, and its own tokio runtime.
pub struct Context {
    plugin: &'static str,
    instance: String,
    host: HostHandle,
    dispatch: Dispatch,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    runtime_handle: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Worker threads of the instance runtime: 2 unless set by
    /// [`Context::use_worker_threads`]; 0 (set by
    /// [`Context::use_current_thread_runtime`]) for none.
    worker_threads: std::sync::atomic::AtomicUsize,
}

/// Worker threads of an instance runtime unless the plugin asks otherwise.
const DEFAULT_WORKER_THREADS: usize = 2;

impl Context {
    fn new(plugin: &'static str, instance: String, host: HostHandle) -> Self {
        let dispatch = Dispatch::new(Registry::default().with(HostLogLayer { host: host.clone() }));
        Context {
            plugin,
            instance,
            host,
            dispatch,
            runtime: Mutex::new(None),
            runtime_handle: Default::default(),
            worker_threads: std::sync::atomic::AtomicUsize::new(DEFAULT_WORKER_THREADS),
        }
    }

    /// Asks for a runtime without worker threads, for a polling source whose I/O
    /// all happens inside `collect` (through [`block_on`](Self::block_on)): its
    /// tasks and sockets are then driven by the host's instance thread itself, so
    /// a collection costs no wake-up of, and no hand-over between, other threads,
    /// and the instance has two threads fewer. Tasks spawned with
    /// [`spawn`](Self::spawn) only run during a `block_on`, so a push source
    /// (listeners, subscriptions) must not ask for this. Call it in the
    /// constructor, before the runtime is first used.
    pub fn use_current_thread_runtime(&self) {
        self.worker_threads
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Asks for `n` worker threads (at least one) instead of the default two, for
    /// an instance whose background tasks are light (a scrape endpoint answering
    /// a few requests a minute): each worker thread is a stack and a malloc arena
    /// kept resident for the life of the instance. Call it in the constructor,
    /// before the runtime is first used.
    pub fn use_worker_threads(&self, n: usize) {
        self.worker_threads
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    fn current_thread(&self) -> bool {
        self.worker_threads
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    }

    /// The plugin's name.
    pub fn plugin_name(&self) -> &'static str {
        self.plugin
    }

    /// This instance's name (the key under `integrations:` in the agent config).
    pub fn instance_name(&self) -> &str {
        &self.instance
    }

    /// The host callbacks (for `emit` from push sources).
    pub fn host(&self) -> &HostHandle {
        &self.host
    }

    /// Pushes a batch to the host pipeline (push sources). `Full` asks you to slow down.
    pub fn emit(&self, batch: Batch) -> EmitStatus {
        self.host.emit(batch)
    }

    /// A batch this instance emitted or returned from `collect` earlier, handed back
    /// by the host once it was exported (ABI 1.2, [`HostServices::reclaimed`]): a
    /// source that writes its next batch into the old one's strings and vectors
    /// (clear and refill, not drop; `tfo_plugin_common::reuse`) spares a malloc
    /// here and a free in the host per string. `None` when
    /// there is none now; build a new batch then. Asking is what makes the host keep
    /// them, so a source that never asks costs nothing.
    pub fn reclaimed_batch(&self) -> Option<Batch> {
        self.host.reclaimed().into_option()
    }

    /// The instance's own tokio runtime (two worker threads named like the host's
    /// instance thread, as many as [`use_worker_threads`](Self::use_worker_threads)
    /// asked for, or none after
    /// [`use_current_thread_runtime`](Self::use_current_thread_runtime)), built on
    /// first use and shut down in `shutdown`.
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime_handle
            .get_or_init(|| {
                let mut builder = if self.current_thread() {
                    tokio::runtime::Builder::new_current_thread()
                } else {
                    let mut b = tokio::runtime::Builder::new_multi_thread();
                    b.worker_threads(
                        self.worker_threads
                            .load(std::sync::atomic::Ordering::Relaxed),
                    );
                    b
                };
                let rt = builder
                    .max_blocking_threads(8)
                    // Named like the host's instance thread (unique per
                    // generation), so the host can tell if one outlives shutdown.
                    .thread_name(
                        std::thread::current()
                            .name()
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("tfo-{}-rt", self.instance)),
                    )
                    .enable_all()
                    .build()
                    .expect("building the instance runtime");
                let handle = rt.handle().clone();
                *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = Some(rt);
                handle
            })
            .clone()
    }

    /// Runs a future to completion on the instance runtime, with the host log bridge.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        use tracing::instrument::WithSubscriber;
        let handle = self.runtime();
        let fut = fut.with_subscriber(self.dispatch.clone());
        if self.current_thread() {
            // Only the runtime's own `block_on` drives the I/O and timer drivers of
            // a current-thread runtime (a `Handle::block_on` would wait forever).
            let rt = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(rt) = rt.as_ref() {
                return rt.block_on(fut);
            }
        }
        handle.block_on(fut)
    }

    /// Spawns a background task on the instance runtime, with the host log bridge.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        use tracing::instrument::WithSubscriber;
        self.runtime()
            .spawn(fut.with_subscriber(self.dispatch.clone()))
    }

    fn shutdown_runtime(&self, within: Duration) {
        let rt = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(within);
        }
    }
}

/// The trait a plugin implements. Every method has a default so a sink implements
/// `export`, a polling source `collect`, a push source `start`.
pub trait Plugin: Send + 'static {
    /// Starts background work (push sources spawn on `ctx.spawn` and call `ctx.emit`).
    fn start(&mut self, _ctx: &Context) -> Result<(), PluginError> {
        Ok(())
    }
    /// Polling sources: one collection.
    fn collect(&mut self, _ctx: &Context) -> Result<Batch, PluginError> {
        Err(PluginError::of(
            ErrorKind::Unsupported,
            "this plugin does not collect",
        ))
    }
    /// Sinks: deliver the batch; return only once the backend accepted it.
    fn export(&mut self, _ctx: &Context, _batch: &Batch) -> Result<ExportOk, PluginError> {
        Err(PluginError::of(
            ErrorKind::Unsupported,
            "this plugin does not export",
        ))
    }
    /// Current health.
    fn health(&self, _ctx: &Context) -> HealthReport {
        HealthReport::healthy()
    }
    /// Deliver anything buffered.
    fn flush(&mut self, _ctx: &Context) -> Result<(), PluginError> {
        Ok(())
    }
    /// Sinks: what `export` would send for `batch` (the request body as text), for
    /// `tfo-agent run --once`. Must not send anything.
    fn preview(&mut self, _ctx: &Context, _batch: &Batch) -> Result<String, PluginError> {
        Err(PluginError::of(
            ErrorKind::Unsupported,
            "this plugin cannot preview",
        ))
    }
    /// Stop background work. The SDK shuts the instance runtime down afterwards.
    fn shutdown(&mut self, _ctx: &Context, _deadline: Duration) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Adapts a [`Plugin`] to the FFI trait object, catching panics in every call and
/// running it under the host log bridge.
struct Guarded<P: Plugin> {
    plugin: P,
    ctx: Context,
}

thread_local! {
    /// The last panic message seen by the panic hook on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// True while a guarded entry point runs on this thread.
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // This is the plugin's own copy of std: the hook only sees panics raised in
        // this library. Inside a guarded call it records the message for the guard,
        // which reports it to the host; anywhere else (a spawned task, a test of the
        // plugin linked as an rlib) the previous hook runs as before.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.try_with(|g| g.get()).unwrap_or(false) {
                let loc = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = payload_text(info.payload());
                let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some(format!("{msg}{loc}")));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs `f` with the host log bridge, converting a panic into a [`PluginError`] of
/// kind `Panic` (also reported to the host).
fn catch<T>(ctx: &Context, what: &str, f: impl FnOnce() -> T) -> Result<T, PluginError> {
    let was = IN_GUARD.with(|g| g.replace(true));
    let res =
        tracing::dispatcher::with_default(&ctx.dispatch, || catch_unwind(AssertUnwindSafe(f)));
    IN_GUARD.with(|g| g.set(was));
    res.map_err(|payload| {
        let msg = LAST_PANIC
            .try_with(|p| p.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_else(|| payload_text(&*payload));
        let text = format!(
            "plugin {} instance {} panicked in {what}: {msg}",
            ctx.plugin, ctx.instance
        );
        ctx.host.report_panic(RStr::from_str(&text));
        PluginError::of(ErrorKind::Panic, text)
    })
}

/// [`catch`] for calls that already return a `Result<T, PluginError>`.
fn guard<T>(
    ctx: &Context,
    what: &str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    catch(ctx, what, f).and_then(|r| r)
}

impl<P: Plugin> PluginInstance for Guarded<P> {
    fn start(&mut self) -> RResult<(), PluginError> {
        let Guarded { plugin, ctx } = self;
        guard(ctx, "start", || plugin.start(ctx)).into()
    }
    fn collect(&mut self) -> RResult<Batch, PluginError> {
        let Guarded { plugin, ctx } = self;
        guard(ctx, "collect", || plugin.collect(ctx)).into()
    }
    fn export(&mut self, batch: &Batch) -> RResult<ExportOk, PluginError> {
        let Guarded { plugin, ctx } = self;
        guard(ctx, "export", || plugin.export(ctx, batch)).into()
    }
    fn health(&self) -> HealthReport {
        let Guarded { plugin, ctx } = self;
        match guard(ctx, "health", || Ok(plugin.health(ctx))) {
            Ok(h) => h,
            Err(e) => HealthReport::unhealthy(e.message),
        }
    }
    fn flush(&mut self) -> RResult<(), PluginError> {
        let Guarded { plugin, ctx } = self;
        guard(ctx, "flush", || plugin.flush(ctx)).into()
    }
    fn shutdown(&mut self, deadline_ms: u64) -> RResult<(), PluginError> {
        let started = Instant::now();
        let deadline = Duration::from_millis(deadline_ms);
        let Guarded { plugin, ctx } = self;
        let res = guard(ctx, "shutdown", || plugin.shutdown(ctx, deadline));
        // Join the runtime's threads so nothing of this library runs after we return.
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(10));
        ctx.shutdown_runtime(left);
        res.into()
    }
    fn preview(&mut self, batch: &Batch) -> RResult<RString, PluginError> {
        self.preview_impl(batch)
    }
}

impl<P: Plugin> Guarded<P> {
    fn preview_impl(&mut self, batch: &Batch) -> RResult<RString, PluginError> {
        let Guarded { plugin, ctx } = self;
        guard(ctx, "preview", || {
            plugin.preview(ctx, batch).map(RString::from)
        })
        .into()
    }
}

impl<P: Plugin> Drop for Guarded<P> {
    fn drop(&mut self) {
        // A host that skipped shutdown (it should not) still gets the threads joined.
        self.ctx.shutdown_runtime(Duration::from_secs(1));
    }
}

/// Called by [`export_plugin!`]'s `create`: parses the JSON config into `C` (errors
/// carry the field path), runs the author's constructor, and wraps the result.
#[doc(hidden)]
pub fn create_instance<C, P>(
    plugin: &'static str,
    host: HostHandle,
    instance: RStr<'_>,
    config_json: RStr<'_>,
    ctor: fn(&Context, C) -> Result<P, CreateError>,
) -> RResult<PluginInstanceBox, CreateError>
where
    C: serde::de::DeserializeOwned,
    P: Plugin,
{
    install_panic_hook();
    let ctx = Context::new(plugin, instance.as_str().to_string(), host);
    let built = catch(&ctx, "create", || {
        let de = &mut serde_json::Deserializer::from_str(config_json.as_str());
        let config: C = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            // serde_json appends a position in the JSON the host generated, which
            // means nothing to the user editing YAML: drop it.
            let msg = e.into_inner().to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
                _ => msg,
            };
            CreateError::config(path, msg)
        })?;
        ctor(&ctx, config)
    });
    match built {
        Ok(Ok(plugin)) => RResult::ROk(PluginInstanceBox::from_value(
            Guarded { plugin, ctx },
            abi_stable::sabi_trait::TD_Opaque,
        )),
        Ok(Err(e)) => RResult::RErr(e),
        Err(panic) => RResult::RErr(CreateError::init(panic.message)),
    }
}

/// Forwards `tracing` events to the host's log.
struct HostLogLayer {
    host: HostHandle,
}

struct MessageVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for HostLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        let mut msg = String::new();
        event.record(&mut MessageVisitor(&mut msg));
        let level = match *event.metadata().level() {
            Level::TRACE => LogLevel::Trace,
            Level::DEBUG => LogLevel::Debug,
            Level::INFO => LogLevel::Info,
            Level::WARN => LogLevel::Warn,
            Level::ERROR => LogLevel::Error,
        };
        self.host.log(
            level,
            RStr::from_str(event.metadata().target()),
            RStr::from_str(&msg),
        );
    }
}

/// The `tracing` crate the log bridge listens to; plugins may log through it.
pub use tracing;

/// Builds a descriptor; used by [`export_plugin!`].
#[doc(hidden)]
pub fn descriptor(
    name: &str,
    version: &str,
    kind: PluginKind,
    data_types: DataTypes,
    description: &str,
) -> PluginDescriptor {
    PluginDescriptor {
        name: RString::from(name),
        version: RString::from(version),
        kind,
        data_types,
        description: RString::from(description),
        plugin_api_version: RString::from(crate::PLUGIN_API_VERSION),
    }
}

/// Exports a plugin: generates the root module (descriptor + create), the
/// `tfo_plugin_abi_info` symbol, and the glue that parses the config (JSON, with field
/// paths in errors) and wraps the instance in panic guards.
///
/// `create` is a `fn(&Context, Config) -> Result<P, CreateError>` where `Config:
/// serde::de::DeserializeOwned` (use `#[serde(deny_unknown_fields)]` so typos are
/// errors) and `P: Plugin`. See the crate docs for a complete example.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        kind: $kind:expr,
        data_types: $types:expr,
        description: $desc:expr,
        create: $create:path $(,)?
    ) => {
        const _: () = {
            use $crate::__private::abi_stable as __abi;
            use $crate::prelude::*;

            extern "C" fn __tfo_descriptor() -> $crate::PluginDescriptor {
                $crate::sdk::descriptor($name, $version, $kind, $types, $desc)
            }

            extern "C" fn __tfo_create(
                host: $crate::HostHandle,
                instance: __abi::std_types::RStr<'_>,
                config_json: __abi::std_types::RStr<'_>,
            ) -> __abi::std_types::RResult<$crate::PluginInstanceBox, $crate::CreateError> {
                $crate::sdk::create_instance($name, host, instance, config_json, $create)
            }

            fn __tfo_root_module() -> $crate::PluginModRef {
                use __abi::prefix_type::PrefixTypeTrait;
                $crate::PluginMod {
                    descriptor: __tfo_descriptor,
                    create: __tfo_create,
                }
                .leak_into_prefix()
            }

            // What `#[abi_stable::export_root_module]` expands to, spelled out so
            // plugin crates need no direct abi_stable dependency. The symbol name is
            // checked against abi_stable's own constant by plugin-api's tests.
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static __TFO_LIB_HEADER: __abi::library::LibHeader = {
                extern "C" fn __erased() -> __abi::library::RootModuleResult {
                    __abi::library::__call_root_module_loader(__tfo_root_module)
                }
                unsafe {
                    __abi::library::LibHeader::from_constructor::<$crate::PluginModRef>(
                        __erased,
                        __abi::library::CheckTypeLayout::Yes,
                    )
                }
            };

            /// ABI identity, read by the host before any abi_stable type is used.
            #[no_mangle]
            pub extern "C" fn tfo_plugin_abi_info() -> *const ::std::os::raw::c_char {
                $crate::ABI_INFO.as_ptr() as *const ::std::os::raw::c_char
            }

            /// ABI version (docs/abi.md), read by the host right after the identity.
            #[no_mangle]
            pub extern "C" fn tfo_plugin_abi_version() -> $crate::AbiVersion {
                $crate::ABI_VERSION
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn abi_version_symbol_name_matches_the_export() {
        assert_eq!(crate::ABI_VERSION_SYMBOL, b"tfo_plugin_abi_version\0");
    }

    #[test]
    fn root_module_symbol_name_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::*;
    use abi_stable::{sabi_trait::TD_Opaque, std_types::RArc};

    #[derive(Clone)]
    struct NoHost;

    impl HostServices for NoHost {
        fn log(&self, _: LogLevel, _: RStr<'_>, _: RStr<'_>) {}
        fn emit(&self, _: Batch) -> EmitStatus {
            EmitStatus::Accepted
        }
        fn report_panic(&self, _: RStr<'_>) {}
    }

    #[test]
    fn a_current_thread_runtime_runs_tasks_sockets_and_timers_inside_block_on() {
        let host = HostHandle::from_ptr(RArc::new(NoHost), TD_Opaque);
        let ctx = Context::new("t", "i".into(), host);
        ctx.use_current_thread_runtime();
        // A spawned task, a UDP round trip and a timer: each needs the runtime's
        // drivers, which only the runtime's own block_on runs on this flavour.
        let got = ctx.block_on(async {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let to = sock.local_addr().unwrap();
            let task = tokio::spawn(async move {
                sock.send_to(b"x", to).await.unwrap();
                let mut b = [0u8; 1];
                sock.recv_from(&mut b).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                b[0]
            });
            task.await.unwrap()
        });
        assert_eq!(got, b'x');
        // No worker threads: the calling thread is the only one.
        assert_eq!(ctx.runtime().metrics().num_workers(), 1);
        ctx.shutdown_runtime(Duration::from_secs(1));
    }

    #[test]
    fn a_runtime_has_the_worker_threads_asked_for() {
        for (asked, workers) in [(None, 2), (Some(1), 1), (Some(3), 3), (Some(0), 1)] {
            let host = HostHandle::from_ptr(RArc::new(NoHost), TD_Opaque);
            let ctx = Context::new("t", "i".into(), host);
            if let Some(n) = asked {
                ctx.use_worker_threads(n);
            }
            let rt = ctx.runtime();
            assert_eq!(rt.metrics().num_workers(), workers, "{asked:?}");
            // A multi-thread runtime: a spawned task runs without a block_on.
            let (tx, rx) = std::sync::mpsc::channel();
            ctx.spawn(async move { tx.send(7).unwrap() });
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(7));
            ctx.shutdown_runtime(Duration::from_secs(1));
        }
    }
}
