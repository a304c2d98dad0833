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
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .ok()?;
    rx.await.ok()
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
