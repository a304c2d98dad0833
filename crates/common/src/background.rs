//! CPU-heavy background work (writing blocks, compaction) on a thread of its own at a lower
//! scheduling priority (nice 10), so on a small machine ingest and queries keep the CPU and
//! background work takes what is left.

/// The niceness of background threads.
const NICE: i32 = 10;

/// How long a background thread waits for its next task before it returns its memory to the
/// system and ends.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `f` on a thread named `name` at a lower priority and returns its result, or `None` if
/// the thread could not start or panicked.
///
/// A thread that finished a task waits [`KEEP_ALIVE`] for the next one of the same name, so
/// work that comes back to back (blocks cut one after another under load, compaction jobs)
/// reuses the memory the previous task's allocator heap holds: on a fresh thread every block
/// first faulted in its few hundred MB from the system again, a sixth of cutting's CPU.
pub async fn run<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task_name = name.to_string();
    let task: Task = Box::new(move |idle: &mut dyn FnMut()| {
        let running = Running::start(&task_name);
        let out = f();
        drop(running);
        // Waiting for the next task before the caller hears back, so a task it starts next
        // finds this thread.
        idle();
        let _ = tx.send(out);
    });
    let idle = IDLE.lock().ok().and_then(|mut idle| {
        let threads = idle.get_mut(name)?;
        threads.pop()
    });
    let task = match idle {
        Some((_, thread)) => match thread.send(task) {
            Ok(()) => None,
            Err(std::sync::mpsc::SendError(task)) => Some(task),
        },
        None => Some(task),
    };
    if let Some(task) = task {
        let name = name.to_string();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || serve(name, task))
            .ok()?;
    }
    rx.await.ok()
}

/// A task; it calls its argument once it is done, before it answers, to make its thread idle.
type Task = Box<dyn FnOnce(&mut dyn FnMut()) + Send>;

/// Background threads waiting for a task, by name: a token and the thread's task inbox.
#[allow(clippy::type_complexity)]
static IDLE: std::sync::Mutex<
    std::collections::BTreeMap<String, Vec<(u64, std::sync::mpsc::Sender<Task>)>>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A background thread's life: runs `first`, then whatever [`run`] hands it while it waits in
/// [`IDLE`]; after [`KEEP_ALIVE`] without a task it returns its memory and ends.
fn serve(name: String, first: Task) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    lower_priority();
    let (inbox, tasks) = std::sync::mpsc::channel::<Task>();
    let mut task = Some(first);
    while let Some(t) = task.take() {
        let token = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut listed = false;
        t(&mut || {
            if let Ok(mut idle) = IDLE.lock() {
                idle.entry(name.clone())
                    .or_default()
                    .push((token, inbox.clone()));
                listed = true;
            }
        });
        if !listed {
            break;
        }
        task = match tasks.recv_timeout(KEEP_ALIVE) {
            Ok(t) => Some(t),
            Err(_) => {
                // No task came: leave the idle list, unless a task is being handed over.
                let left = IDLE.lock().map_or(true, |mut idle| {
                    let threads = idle.entry(name.clone()).or_default();
                    let before = threads.len();
                    threads.retain(|(t, _)| *t != token);
                    threads.len() < before
                });
                if left { None } else { tasks.recv().ok() }
            }
        };
    }
    release_memory();
}

/// Returns what this thread's allocator heap keeps to the system before the thread ends. The
/// server's allocator (mimalloc) purges freed memory lazily, on a thread's later allocations;
/// a background thread ends after its work, so without this the hundreds of MB a block or a
/// compaction used stayed resident until another thread happened to reclaim them (seconds to
/// minutes: RSS plateaus after every compaction). Where mimalloc is not the global allocator
/// (tests) its own heap is empty and this does nothing.
fn release_memory() {
    // SAFETY: `mi_collect` only walks and releases the calling thread's mimalloc heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// CPU seconds spent by background tasks, by thread name (`vivace-flush`, `vivace-compact`):
/// block work apart from ingest and queries, for `/metrics`. Finished tasks' totals, and the
/// tasks still running, read through their threads' CPU clocks: a compaction runs for seconds,
/// and counting it only once finished credited what it had spent so far to ingest.
static CPU: std::sync::Mutex<Tasks> = std::sync::Mutex::new(Tasks {
    finished: std::collections::BTreeMap::new(),
    running: Vec::new(),
});

struct Tasks {
    finished: std::collections::BTreeMap<String, f64>,
    /// Running tasks: name, a token, the thread's CPU clock. A thread removes itself before it
    /// ends, under the lock, so a clock read here belongs to a live thread.
    running: Vec<(String, u64, Option<libc::clockid_t>, f64)>,
}

/// CPU seconds of background tasks, finished and running, by name.
pub fn cpu_seconds() -> Vec<(String, f64)> {
    let Ok(tasks) = CPU.lock() else {
        return Vec::new();
    };
    let mut totals = tasks.finished.clone();
    for (name, _, clock, start) in &tasks.running {
        *totals.entry(name.clone()).or_default() += clock.map_or(0.0, |c| clock_seconds(c) - start);
    }
    totals.into_iter().collect()
}

/// A background task registered as running on the current thread.
struct Running {
    name: String,
    token: u64,
    /// The thread's CPU seconds when the task started.
    start: f64,
}

impl Running {
    fn start(name: &str) -> Running {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = thread_cpu_seconds();
        if let Ok(mut tasks) = CPU.lock() {
            tasks
                .running
                .push((name.to_string(), token, current_clock(), start));
        }
        Running {
            name: name.to_string(),
            token,
            start,
        }
    }
}

impl Drop for Running {
    /// Moves this thread's CPU time from the running tasks to its task's total (also when the
    /// task panics: the thread's clock must not be read after it ends).
    fn drop(&mut self) {
        let secs = thread_cpu_seconds() - self.start;
        if let Ok(mut tasks) = CPU.lock() {
            tasks.running.retain(|(_, t, _, _)| *t != self.token);
            *tasks
                .finished
                .entry(std::mem::take(&mut self.name))
                .or_default() += secs;
        }
    }
}

/// The calling thread's CPU clock, readable from other threads while it lives.
#[cfg(target_os = "linux")]
fn current_clock() -> Option<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: pthread_getcpuclockid writes one clockid we own, for the calling thread.
    let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    (rc == 0).then_some(clock)
}

#[cfg(not(target_os = "linux"))]
fn current_clock() -> Option<libc::clockid_t> {
    None
}

/// Seconds on `clock`.
fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; the clock is a live thread's.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[cfg(target_os = "linux")]
fn thread_cpu_seconds() -> f64 {
    clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
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
        if let Ok(mut tasks) = CPU.lock() {
            *tasks.finished.entry(self.name.clone()).or_default() += now - self.last;
        }
        self.last = now;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// A running task's CPU counts before it ends, and once when it has.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn running_tasks_are_counted() {
        let total = || {
            super::cpu_seconds()
                .into_iter()
                .find(|(n, _)| n == "test-spin")
                .map_or(0.0, |(_, s)| s)
        };
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let task = tokio::spawn(super::run("test-spin", move || {
            let spin = |d: std::time::Duration| {
                let t = std::time::Instant::now();
                while t.elapsed() < d {
                    std::hint::black_box(0u64);
                }
            };
            spin(std::time::Duration::from_millis(200));
            let _ = started_tx.send(());
            let _ = stop_rx.recv();
        }));
        started_rx.recv().unwrap();
        let running = total();
        assert!(running >= 0.15, "a running task counts: {running}");
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        let done = total();
        assert!(
            done >= running && done < running + 0.1,
            "{running} then {done}"
        );
    }

    /// A task that follows another of its name runs on the same thread, and each task counts
    /// only its own CPU time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn back_to_back_tasks_share_a_thread_and_count_once() {
        let spin = || {
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_millis(100) {
                std::hint::black_box(0u64);
            }
            std::thread::current().id()
        };
        let first = super::run("test-reuse", spin).await.unwrap();
        let second = super::run("test-reuse", spin).await.unwrap();
        assert_eq!(first, second);
        let total = super::cpu_seconds()
            .into_iter()
            .find(|(n, _)| n == "test-reuse")
            .map_or(0.0, |(_, s)| s);
        assert!((0.15..0.28).contains(&total), "two tasks of 0.1 s: {total}");
    }
}
