//! CPU-heavy background work (writing blocks, compaction) on a thread of its own at a lower
//! scheduling priority (nice 10), so on a small machine ingest and queries keep the CPU and
//! background work takes what is left.

/// The niceness of background threads.
const NICE: i32 = 10;

/// Runs `f` on a new thread named `name` at a lower priority and returns its result, or `None`
/// if the thread could not start or panicked.
pub async fn run<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn({
            let name = name.to_string();
            move || {
                lower_priority();
                let out = f();
                release_memory();
                account(&name);
                let _ = tx.send(out);
            }
        })
        .ok()?;
    rx.await.ok()
}

/// Returns what this thread's allocator heap keeps to the system before the thread ends. The
/// server's allocator (mimalloc) purges freed memory lazily, on a thread's later allocations;
/// a background thread ends right after its work, so without this the hundreds of MB a block or
/// a compaction used stayed resident until another thread happened to reclaim them (seconds to
/// minutes: RSS plateaus after every compaction). Where mimalloc is not the global allocator
/// (tests) its own heap is empty and this does nothing.
fn release_memory() {
    // SAFETY: `mi_collect` only walks and releases the calling thread's mimalloc heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// CPU seconds spent by finished background tasks, by thread name (`vivace-flush`,
/// `vivace-compact`): block work apart from ingest and queries, for `/metrics`.
static CPU: std::sync::Mutex<std::collections::BTreeMap<String, f64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// CPU seconds of finished background tasks, by name.
pub fn cpu_seconds() -> Vec<(String, f64)> {
    CPU.lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}

/// Adds this thread's CPU time to its task's total.
fn account(name: &str) {
    let secs = thread_cpu_seconds();
    if let Ok(mut m) = CPU.lock() {
        *m.entry(name.to_string()).or_default() += secs;
    }
}

#[cfg(target_os = "linux")]
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_seconds() -> f64 {
    0.0
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread; on Linux `PRIO_PROCESS` with a thread ID
    // sets that thread's niceness. Failure only leaves the default priority.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Adds a long-running thread's CPU time to its task's total as it goes (for `/metrics`), where
/// [`run`] adds it only when the task ends.
#[derive(Debug)]
pub struct CpuMeter {
    name: String,
    last: f64,
}

impl CpuMeter {
    /// Starts measuring the calling thread; lowers its priority like [`run`] does.
    pub fn start(name: &str) -> CpuMeter {
        lower_priority();
        CpuMeter {
            name: name.to_string(),
            last: thread_cpu_seconds(),
        }
    }

    /// Adds the CPU time used since the last call.
    pub fn account(&mut self) {
        let now = thread_cpu_seconds();
        if let Ok(mut m) = CPU.lock() {
            *m.entry(self.name.clone()).or_default() += now - self.last;
        }
        self.last = now;
    }
}
