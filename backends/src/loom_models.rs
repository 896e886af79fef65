//! loom models of the backends' threaded parts, run over every interleaving of their threads
//! (bounded preemptions): `RUSTFLAGS="--cfg sanlock_loom" cargo test -p sanlock-backends --lib
//! loom_models`. Each names the interleaving it is about.

use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{mpsc, Arc, Mutex};

use sanlock_core::io::{IoError, IoId, IoOp};
use sanlock_core::Time;

use crate::buffers::BufferPool;
use crate::storage::{Deadlines, DiskId, Io};
use crate::workers::Workers;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// The worker pool, file backend's threads: a job whose I/O hangs must not hold up the job
/// sent after it while the pool may still grow. Job 1 blocks until job 2 has run (a hung read,
/// and the write that would unstick nothing); if the second submit saw job 1's thread as idle
/// — the window where that thread has taken job 1 off the queue but not yet counted itself
/// busy — it started no thread, job 2 waits behind job 1 for ever, and loom reports the
/// deadlock.
#[test]
fn loom_models_a_hung_job_never_holds_up_the_next_one() {
    model(|| {
        let (unstick, stuck) = mpsc::channel::<()>();
        let stuck = Arc::new(Mutex::new(stuck));
        let ran = Arc::new(AtomicUsize::new(0));
        let (stuck2, ran2) = (Arc::clone(&stuck), Arc::clone(&ran));
        let mut pool = Workers::new("model", 2, move |job: u32| {
            if job == 1 {
                stuck2.lock().unwrap().recv().unwrap();
            } else {
                unstick.send(()).unwrap();
            }
            ran2.fetch_add(1, Ordering::AcqRel);
        });
        pool.submit(1, false).ok().unwrap();
        pool.submit(2, false).ok().unwrap();
        pool.join();
        assert_eq!(ran.load(Ordering::Acquire), 2);
    });
}

/// The worker pool: every job runs exactly once, whichever thread takes it, and the count of
/// jobs still running is back to zero when all are done, as the backend's stats read it.
#[test]
fn loom_models_each_job_runs_once_and_the_running_count_returns_to_zero() {
    model(|| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let mut pool = Workers::new("model", 2, move |job: u32| {
            seen2.lock().unwrap().push(job);
        });
        for job in 1..=3 {
            pool.submit(job, false).ok().unwrap();
        }
        assert!(pool.started() <= 2, "never more threads than allowed");
        pool.join();
        assert_eq!(pool.running(), 0, "all done");
        let mut done = seen.lock().unwrap().clone();
        done.sort_unstable();
        assert_eq!(done, vec![1, 2, 3]);
    });
}

/// The worker pool when no thread can be started: the first job comes back to the caller
/// (which fails it at once), and nothing is counted for it.
#[test]
fn loom_models_a_job_with_no_thread_to_run_it_comes_back() {
    model(|| {
        let mut pool = Workers::new("model", 2, |_: u32| {});
        assert_eq!(pool.submit(7, true), Err(7));
        assert_eq!(pool.running(), 0);
        assert_eq!(pool.submit(8, false), Ok(()));
        pool.join();
    });
}

/// The buffer pool: a reader's bytes dropped on another thread while this one takes and
/// gives buffers, and another thread gives one back at the same time. Whatever the order, two
/// takers never get one buffer, a buffer given back is kept while there is room, and the pool
/// never keeps more than its 4 MiB: of the three 2 MiB buffers, exactly two are kept.
#[test]
fn loom_models_buffers_come_back_once_and_the_pool_stays_bounded() {
    model(|| {
        const LEN: usize = 2 << 20;
        let pool = BufferPool::default();
        let lent = pool.into_bytes(pool.take(LEN));
        let mut handed = vec![lent.as_ptr() as usize];
        let t = loom::thread::spawn(move || drop(lent));
        let other = pool.clone();
        let a = pool.take(LEN);
        let b = other.take(LEN);
        assert_ne!(
            a.as_ref().as_ptr(),
            b.as_ref().as_ptr(),
            "one buffer taken twice"
        );
        handed.extend([a.as_ref().as_ptr() as usize, b.as_ref().as_ptr() as usize]);
        let t2 = loom::thread::spawn(move || other.give(b));
        pool.give(a);
        t.join().unwrap();
        t2.join().unwrap();
        assert_eq!(
            pool.kept(),
            2 * LEN,
            "two of the three kept: 4 MiB, no more, no fewer"
        );
        let x = pool.take(LEN);
        let y = pool.take(LEN);
        assert_ne!(
            x.as_ref().as_ptr(),
            y.as_ref().as_ptr(),
            "one buffer handed out twice"
        );
        for p in [x.as_ref().as_ptr(), y.as_ref().as_ptr()] {
            assert!(
                handed.contains(&(p as usize)),
                "a kept buffer is one given back"
            );
        }
        assert_eq!(pool.kept(), 0);
    });
}

/// The deadline book and a completion from a worker thread: the completion arrives before the
/// deadline passes, or after (the I/O is then reported timed out and the late result dropped),
/// or while the owner is between the two. Whatever the order, the I/O is reported exactly
/// once, and as its result only if that came before its deadline.
#[test]
fn loom_models_an_io_is_reported_once_whether_it_beats_its_deadline_or_not() {
    model(|| {
        let (tx, rx) = mpsc::channel();
        let deadline = Time::new(Duration::from_secs(10));
        let io = Io {
            id: IoId(1),
            disk: DiskId(0),
            offset: 0,
            op: IoOp::Read { len: 512 },
            deadline,
        };
        let mut book = Deadlines::default();
        assert!(book.start(&io, Ok(())));
        let worker = loom::thread::spawn(move || {
            tx.send((IoId(1), Ok(bytes::Bytes::from_static(b"sector"))))
                .unwrap();
        });
        // The owner's loop: take what has come, then let time pass the deadline, then take
        // what comes after.
        let mut reported = Vec::new();
        let mut received_before = false;
        if let Ok((id, result)) = rx.try_recv() {
            received_before = true;
            book.finish(Time::new(Duration::from_secs(5)), id, result);
        }
        reported.extend(book.take_ready());
        book.expire(deadline);
        reported.extend(book.take_ready());
        worker.join().unwrap();
        if let Ok((id, result)) = rx.try_recv() {
            book.finish(deadline + Duration::from_secs(1), id, result);
        }
        reported.extend(book.take_ready());
        assert_eq!(reported.len(), 1, "reported once: {reported:?}");
        let expected = if received_before {
            Ok(bytes::Bytes::from_static(b"sector"))
        } else {
            Err(IoError::TimedOut)
        };
        assert_eq!(reported[0].result, expected);
        assert!(book.is_idle());
    });
}
