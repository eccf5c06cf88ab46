//! Test support for plugin authors (feature `testing`, for dev-dependencies): drive
//! your plugin through its exported root module the way the agent does, with a
//! [`TestHost`] that records log lines, emitted batches and panic reports.
//!
//! ```ignore
//! // tests/plugin.rs of a crate built as ["cdylib", "rlib"]
//! use tfo_plugin_api::testing::{create, TestHost};
//! let module = tfo_plugin_api::plugin_module!(my_plugin_crate);
//! let host = TestHost::default();
//! let mut instance = create(module, &host, "test", r#"{"path": "/tmp/x"}"#).unwrap();
//! ```

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RResult, RStr},
};

use crate::{
    Batch, CreateError, EmitStatus, HostHandle, HostServices, LogLevel, PluginInstanceBox,
    PluginModRef,
};

/// The root module of the plugin crate `$krate`, linked into the test as an rlib.
#[macro_export]
macro_rules! plugin_module {
    ($krate:ident) => {{
        extern crate $krate as _;
        extern "C" {
            // The `LibHeader` static `export_plugin!` defines in the plugin crate.
            #[link_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            #[allow(improper_ctypes)]
            static ROOT_MODULE_HEADER: $crate::__private::abi_stable::library::LibHeader;
        }
        // SAFETY: the symbol is that static, of that type.
        unsafe { &ROOT_MODULE_HEADER }
            .init_root_module::<$crate::PluginModRef>()
            .expect("the plugin's root module")
    }};
}

#[derive(Default)]
struct HostState {
    logs: Vec<(LogLevel, String)>,
    batches: Vec<Batch>,
    answers: VecDeque<EmitStatus>,
    panics: Vec<String>,
    /// Batches [`TestHost::give_back`] queued for `reclaimed`.
    returned: VecDeque<Batch>,
    /// Calls of `reclaimed`.
    reclaim_asks: u64,
}

/// A host for tests: records log lines, emitted batches and panic reports; `emit`
/// answers from a script ([`TestHost::answer`]), `Accepted` once it is empty (an
/// empty batch, a probe, takes an answer from the script too but is not recorded).
#[derive(Clone, Default)]
pub struct TestHost {
    state: Arc<(Mutex<HostState>, Condvar)>,
}

impl HostServices for TestHost {
    fn log(&self, level: LogLevel, _target: RStr<'_>, message: RStr<'_>) {
        let (m, c) = &*self.state;
        m.lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .push((level, message.as_str().to_string()));
        c.notify_all();
    }
    fn emit(&self, batch: Batch) -> EmitStatus {
        let (m, c) = &*self.state;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        let answer = s.answers.pop_front().unwrap_or(EmitStatus::Accepted);
        // An empty batch is a probe (`emit` asks without sending): answered, not recorded.
        if answer == EmitStatus::Accepted && !batch.is_empty() {
            s.batches.push(batch.clone());
        }
        c.notify_all();
        answer
    }
    fn report_panic(&self, message: RStr<'_>) {
        let (m, c) = &*self.state;
        m.lock()
            .unwrap_or_else(|e| e.into_inner())
            .panics
            .push(message.as_str().to_string());
        c.notify_all();
    }
    fn reclaimed(&self) -> ROption<Batch> {
        let mut s = self.state();
        s.reclaim_asks += 1;
        s.returned.pop_front().into()
    }
}

impl TestHost {
    /// The handle to give `create`.
    pub fn handle(&self) -> HostHandle {
        HostHandle::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues answers for the next `emit` calls (to test backpressure).
    pub fn answer(&self, answers: &[EmitStatus]) {
        self.state().answers.extend(answers);
    }

    /// Batches emitted so far (and forgets them).
    pub fn take_batches(&self) -> Vec<Batch> {
        std::mem::take(&mut self.state().batches)
    }

    /// Queues `batch` for the plugin's next `reclaimed` call, as the host hands an
    /// exported batch back to the instance that emitted it.
    pub fn give_back(&self, batch: Batch) {
        self.state().returned.push_back(batch);
    }

    /// How often the plugin asked for a reclaimed batch.
    pub fn reclaim_asks(&self) -> u64 {
        self.state().reclaim_asks
    }

    /// Log lines so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.state().logs.clone()
    }

    /// Panics the plugin reported.
    pub fn panics(&self) -> Vec<String> {
        self.state().panics.clone()
    }

    /// Every batch emitted so far, in order (kept).
    pub fn batches(&self) -> Vec<Batch> {
        self.state().batches.clone()
    }

    /// Number of log lines so far (a mark for [`TestHost::wait_for_log_after`]).
    pub fn log_count(&self) -> usize {
        self.state().logs.len()
    }

    /// Waits on the condition variable (no sleeping) until `pred(batches, logs)`
    /// holds or `timeout` passes; returns whether it held.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Batch], &[(LogLevel, String)]) -> bool,
    ) -> bool {
        self.wait(timeout, |s| pred(&s.batches, &s.logs))
    }

    /// Waits for a log line containing `needle` among the lines after the first
    /// `skip`; panics on timeout.
    pub fn wait_for_log_after(&self, skip: usize, needle: &str, timeout: Duration) -> String {
        let mut found = None;
        let ok = self.wait(timeout, |s| {
            found = s
                .logs
                .iter()
                .skip(skip)
                .find(|(_, l)| l.contains(needle))
                .map(|(_, l)| l.clone());
            found.is_some()
        });
        assert!(
            ok,
            "no log line containing {needle:?} within {timeout:?}: {:?}",
            self.logs()
        );
        found.expect("found")
    }

    fn wait(&self, timeout: Duration, mut pred: impl FnMut(&HostState) -> bool) -> bool {
        let (m, c) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pred(&s) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = c.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Waits for a log line containing `needle` and returns it; panics on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_after(0, needle, timeout)
    }

    /// Waits until at least `n` batches were emitted (and not yet taken).
    pub fn wait_for_batches(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.batches.len() >= n)
    }
}

/// Calls the plugin's `create` with `config_json`, as the agent does.
pub fn create(
    module: PluginModRef,
    host: &TestHost,
    instance: &str,
    config_json: &str,
) -> Result<PluginInstanceBox, CreateError> {
    match (module.create())(
        host.handle(),
        RStr::from_str(instance),
        RStr::from_str(config_json),
    ) {
        RResult::ROk(i) => Ok(i),
        RResult::RErr(e) => Err(e),
    }
}

/// A global allocator for allocation-count tests: forwards to the system allocator
/// and counts allocations and reallocations per thread, so a test can bound what a
/// hot path allocates per item (issue 9) and fail when a per-item allocation comes
/// back. Declare it in a test binary of its own (it replaces the allocator of the
/// whole binary):
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: tfo_plugin_api::testing::CountingAllocator =
///     tfo_plugin_api::testing::CountingAllocator;
/// let (allocations, result) = tfo_plugin_api::testing::count_allocations(|| work());
/// ```
pub struct CountingAllocator;

std::thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        std::alloc::System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        std::alloc::System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        std::alloc::System.realloc(p, l, n)
    }
}

/// Allocations counted on this thread so far (0 unless [`CountingAllocator`] is the
/// binary's global allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.with(std::cell::Cell::get)
}

/// Allocations (and reallocations) `f` makes on this thread, and its result.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocations();
    let r = f();
    (allocations() - before, r)
}

/// Exports `batch` through the instance's FFI entry point and returns a std
/// `Result`, so tests can `?`, `unwrap` and match on it. Why here: the same
/// five-line `RResult` -> `Result` wrapper was copied into most plugins' contract
/// tests.
pub fn export(
    instance: &mut PluginInstanceBox,
    batch: &Batch,
) -> Result<crate::ExportOk, crate::PluginError> {
    instance.export(batch).into_result()
}

/// Creates an instance (as [`create`]) and starts it, panicking with the error when
/// either step fails. Why here: plugin tests that only need a running instance
/// repeated this create-then-start-or-panic wrapper once per plugin.
pub fn create_started(
    module: PluginModRef,
    host: &TestHost,
    instance: &str,
    config_json: &str,
) -> PluginInstanceBox {
    let mut inst = create(module, host, instance, config_json)
        .unwrap_or_else(|e| panic!("create {instance:?}: {e:?}"));
    if let RResult::RErr(e) = inst.start() {
        panic!("start {instance:?}: {e}");
    }
    inst
}

/// The batch the allocation-count tests of several plugins measure: `n` gauges
/// `system.cpu.utilization` with three attributes (`cpu` = i % 8, `state`, `i`), so
/// their per-item figures compare with one another.
pub fn cpu_utilization_batch(n: usize) -> crate::Batch {
    let mut b = crate::Batch::default();
    for i in 0..n {
        b.metrics.push(crate::Metric::gauge(
            "system.cpu.utilization",
            "1",
            1_700_000_000_000_000_000,
            i as f64 * 0.5,
            vec![
                crate::KeyValue::new("cpu", i as i64 % 8),
                crate::KeyValue::new("state", "user"),
                crate::KeyValue::new("i", i as i64),
            ],
        ));
    }
    b
}
