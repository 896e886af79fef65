//! The file backend's threads: jobs go through one queue to worker threads started on demand,
//! up to a limit, so that a batch of I/Os runs concurrently and a hung file system stalls only
//! the threads it holds. Kept apart from the I/O itself so that the loom models
//! (`loom_models`) run this very code over every interleaving of its threads.
//!
//! The counts decide when to start a thread: a job is `queued` from its send until a thread
//! takes it, and `running` until the thread is done with it (the kernel has returned its
//! buffer); a thread is `idle` from its start until it takes a job, and again once it is done.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{mpsc, thread, Arc, Mutex};

/// Threads started on demand that run each job given with one function.
pub struct Workers<J: Send + 'static> {
    /// Jobs, and one `None` per thread when the pool goes.
    jobs: mpsc::Sender<Option<J>>,
    shared: Arc<Shared<J>>,
    /// Not shared state, only the code: std's `Arc` (loom's cannot hold a `dyn`).
    run: std::sync::Arc<dyn Fn(J) + Send + Sync>,
    /// The threads, for a model to wait on; the daemon never joins them (a thread in a hung
    /// I/O would hold it).
    #[cfg(sanlock_loom)]
    handles: Vec<thread::JoinHandle<()>>,
    /// Threads started so far (they live as long as the pool).
    started: usize,
    max: usize,
    name: &'static str,
}

struct Shared<J> {
    queue: Mutex<mpsc::Receiver<Option<J>>>,
    idle: AtomicUsize,
    queued: AtomicUsize,
    running: AtomicUsize,
}

impl<J: Send + 'static> Workers<J> {
    /// A pool of at most `max` threads named `name-N`, each running its jobs with `run`.
    pub fn new(name: &'static str, max: usize, run: impl Fn(J) + Send + Sync + 'static) -> Self {
        let (jobs, queue) = mpsc::channel();
        Workers {
            jobs,
            shared: Arc::new(Shared {
                queue: Mutex::new(queue),
                idle: AtomicUsize::new(0),
                queued: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
            }),
            run: std::sync::Arc::new(run),
            #[cfg(sanlock_loom)]
            handles: Vec::new(),
            started: 0,
            max,
            name,
        }
    }

    /// Queues `job` for a thread, starting one when every thread is busy. `Err(job)` when no
    /// thread could be started and there is none at all to run it: the caller fails it.
    /// `spawn_fails` makes starting a thread fail, as when the system has none to give (tests).
    pub fn submit(&mut self, job: J, spawn_fails: bool) -> Result<(), J> {
        if !self.ensure_thread(spawn_fails) {
            return Err(job);
        }
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        self.jobs
            .send(Some(job))
            .expect("threads hold the queue while the pool lives");
        Ok(())
    }

    /// Jobs given and not yet done with (their buffers still with a thread or the kernel).
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Threads started so far.
    pub fn started(&self) -> usize {
        self.started
    }

    /// Starts a thread unless an idle one is left over for the next job or the limit is
    /// reached. False when none could be started and none exists.
    fn ensure_thread(&mut self, spawn_fails: bool) -> bool {
        let s = &self.shared;
        // One idle thread per queued job, so that a batch runs concurrently. `queued` is read
        // first and a thread counts itself busy before it takes its job off `queued`: a job
        // seen taken is then seen with its thread busy, never as a spare idle thread (the
        // other orders let a job wait behind a hung one: the loom model found it).
        let queued = s.queued.load(Ordering::SeqCst);
        if s.idle.load(Ordering::SeqCst) > queued || self.started >= self.max {
            return true;
        }
        // Counted idle before it starts, so that the next job does not start another.
        s.idle.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&self.shared);
        let run = std::sync::Arc::clone(&self.run);
        let spawned = if spawn_fails {
            Err(())
        } else {
            spawn(format!("{}-{}", self.name, self.started), move || {
                work(&shared, &*run)
            })
        };
        match spawned {
            #[allow(unused_variables)]
            Ok(handle) => {
                #[cfg(sanlock_loom)]
                self.handles.push(handle);
                self.started += 1;
                true
            }
            Err(()) => {
                s.idle.fetch_sub(1, Ordering::SeqCst);
                self.started > 0
            }
        }
    }
}

/// Waits for every thread to finish its jobs and end (models only).
#[cfg(sanlock_loom)]
impl<J: Send + 'static> Workers<J> {
    pub fn join(&mut self) {
        for _ in 0..std::mem::take(&mut self.started) {
            let _ = self.jobs.send(None);
        }
        for handle in std::mem::take(&mut self.handles) {
            handle.join().expect("a thread ends cleanly");
        }
    }
}

impl<J: Send + 'static> Drop for Workers<J> {
    fn drop(&mut self) {
        // Each thread ends at the `None` it takes, once done with what it holds.
        for _ in 0..self.started {
            let _ = self.jobs.send(None);
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<thread::JoinHandle<()>, ()> {
    thread::Builder::new().name(name).spawn(f).map_err(drop)
}

/// A thread's life: take a job, run it, until the pool is gone.
fn work<J>(shared: &Shared<J>, run: &(dyn Fn(J) + Send + Sync)) {
    loop {
        let job = shared
            .queue
            .lock()
            .expect("no thread panics holding it")
            .recv();
        let Ok(Some(job)) = job else {
            return; // the pool is gone
        };
        shared.idle.fetch_sub(1, Ordering::SeqCst);
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        run(job);
        shared.running.fetch_sub(1, Ordering::SeqCst);
        shared.idle.fetch_add(1, Ordering::SeqCst);
    }
}
