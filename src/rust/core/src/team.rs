//! A small team of threads for the fused step and inference, and the thresholds below
//! which work is not worth sharing.
//!
//! A parallel region is a number of chunks. Each thread has a home range of them (the
//! same in every region of that size, so a chunk's data tends to stay in one core's
//! cache from step to step); threads claim chunks from counters, their own range
//! first and then what is left in the others', so a worker that wakes late, or that
//! the OS does not schedule because the machine is busy, simply leaves its share to
//! the others (nobody waits for a thread that has not started). Between regions a
//! worker spins for at most `SPIN` (the gaps inside a training step are shorter, and
//! waking a sleeping thread costs tens of microseconds on virtual machines), then
//! sleeps on a condition variable until the next region: an idle team uses no CPU.
//! Which thread computes a chunk never changes what the chunk computes, so results do
//! not depend on the number of threads.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Products with fewer multiply-adds than this run on one thread: below it, handing work
/// to a second thread costs more than it saves.
pub(crate) const SPLIT_MIN_MADDS: usize = 1 << 19;
/// Element-wise loops over fewer values than this run on one thread.
pub(crate) const SPLIT_MIN_VALUES: usize = 1 << 14;
/// Column sums, and copies of `A^T` for the transposed product, of fewer values than this
/// stay on one thread.
pub(crate) const SPLIT_MIN_SUMS: usize = 1 << 18;

/// A raw pointer that may be sent to the team's threads.
pub(crate) struct SendPtr<T = f32>(pub *mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    #[inline(always)]
    pub fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: used only to hand disjoint parts of one buffer to the team's threads, which
// all finish before `Team::run` returns and the buffer is used again.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as for `Send`: threads sharing one reach only their own parts of the buffer.
unsafe impl<T> Sync for SendPtr<T> {}

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// Generation of the current region; bumped by the caller to start one.
    generation: AtomicUsize,
    /// Last generation whose chunks are all done (workers seeing it skip the region).
    finished: AtomicUsize,
    /// The region's work, valid while `generation != finished` (lifetime erased).
    job: UnsafeCell<*const Job>,
    n_chunks: AtomicUsize,
    /// Next chunk to claim in each thread's home range (index 0: the caller).
    next: Vec<Slot>,
    done: AtomicUsize,
    /// Workers inside the current region.
    active: AtomicUsize,
    /// Workers asleep (or about to be) on `wake`.
    sleeping: AtomicUsize,
    panicked: AtomicBool,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written by the caller only while no worker can read it (before the
// generation is published and after every worker has left the region), and read by
// workers only between those points.
unsafe impl Sync for Shared {}
// SAFETY: the rest is atomics and a mutex; `job` is used only as `Sync` explains.
unsafe impl Send for Shared {}

/// A counter on a cache line of its own.
#[repr(align(128))]
struct Slot(AtomicUsize);

/// First chunk of thread `t`'s home range when `n` chunks are shared by `threads`.
fn home_start(t: usize, n: usize, threads: usize) -> usize {
    t * n / threads
}

impl Shared {
    /// Claims and runs chunks of the current region until none is left: first those of
    /// thread `me`'s home range, then what is left in the others'. A chunk thus tends
    /// to run on the same thread in every step, and finds its data in that core's cache.
    fn run_chunks(&self, me: usize, job: &(dyn Fn(usize) + Sync + '_)) {
        let n = self.n_chunks.load(SeqCst);
        let threads = self.next.len();
        for i in 0..threads {
            let t = (me + i) % threads;
            let end = home_start(t + 1, n, threads);
            loop {
                let c = self.next[t].0.fetch_add(1, SeqCst);
                if c >= end {
                    break;
                }
                if catch_unwind(AssertUnwindSafe(|| job(c))).is_err() {
                    self.panicked.store(true, SeqCst);
                }
                self.done.fetch_add(1, SeqCst);
            }
        }
    }

    fn worker(&self, me: usize, on_start: fn()) {
        on_start();
        let mut seen = self.generation.load(SeqCst);
        loop {
            let start = Instant::now();
            let mut spins = 0u32;
            let generation = loop {
                let g = self.generation.load(SeqCst);
                if g != seen || self.stop.load(SeqCst) {
                    break g;
                }
                spins = spins.wrapping_add(1);
                if spins % 64 == 0 && start.elapsed() > SPIN {
                    let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                    self.sleeping.fetch_add(1, SeqCst);
                    while self.generation.load(SeqCst) == seen && !self.stop.load(SeqCst) {
                        guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                    }
                    self.sleeping.fetch_sub(1, SeqCst);
                    drop(guard);
                    spins = 0;
                } else {
                    std::hint::spin_loop();
                }
            };
            if self.stop.load(SeqCst) {
                return;
            }
            seen = generation;
            self.active.fetch_add(1, SeqCst);
            // Enter only if the region we saw is still the current one and not finished,
            // checked after counting ourselves in `active`. A worker descheduled between
            // seeing a generation and counting itself may find later regions finished,
            // or the caller setting up the next one; checking `finished` alone let it
            // run chunks of a region being set up, whose reset of `done` then lost its
            // count and the caller waited forever.
            if self.generation.load(SeqCst) == generation && self.finished.load(SeqCst) != generation {
                // SAFETY: the region is current and not finished, and we are counted in
                // `active` (before the caller's wait for it), so the caller keeps the job
                // alive and does not start another region until we leave.
                let job = unsafe { &**self.job.get() };
                self.run_chunks(me, job);
            }
            self.active.fetch_sub(1, SeqCst);
        }
    }
}

/// The calling thread plus `threads - 1` workers.
///
/// A forked child (R's `parallel::mclapply`, BiocParallel's `MulticoreParam`) inherits
/// the team but not its worker threads: there, `run` works on the calling thread alone
/// and dropping the team leaves the handles it cannot join (the process that made the
/// team is told apart by its id).
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    pid: u32,
}

impl Team {
    /// A team of `threads` (the caller counts as one); `on_start` runs first on each
    /// worker (e.g. to set its floating-point modes).
    pub fn new(threads: usize, on_start: fn()) -> std::io::Result<Team> {
        let noop: *const Job = &|_: usize| {};
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            job: UnsafeCell::new(noop),
            n_chunks: AtomicUsize::new(0),
            next: (0..threads.max(1)).map(|_| Slot(AtomicUsize::new(0))).collect(),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::new();
        for i in 1..threads.max(1) {
            let s = Arc::clone(&shared);
            let handle = std::thread::Builder::new().name(format!("exprsgen-{i}")).spawn(move || s.worker(i, on_start));
            match handle {
                Ok(h) => workers.push(h),
                Err(e) => {
                    let team = Team { shared, workers, pid: std::process::id() };
                    drop(team);
                    return Err(e);
                }
            }
        }
        Ok(Team { shared, workers, pid: std::process::id() })
    }

    /// Number of threads, the caller included (1 in a forked child, whose workers
    /// stayed in the parent).
    pub fn threads(&self) -> usize {
        if self.forked() {
            1
        } else {
            self.workers.len() + 1
        }
    }

    /// Whether this process is a fork of the one that made the team.
    fn forked(&self) -> bool {
        !self.workers.is_empty() && std::process::id() != self.pid
    }

    /// Runs `f(0), ..., f(n_chunks - 1)`, spread over the team; returns when all are
    /// done. A panic in any chunk is raised here after every thread has left `f`.
    pub fn run(&self, n_chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || n_chunks <= 1 || self.forked() {
            (0..n_chunks).for_each(f);
            return;
        }
        let s = &*self.shared;
        // SAFETY: no worker reads `job` now (the previous region is finished and every
        // worker has left it); the lifetime is erased, and `run` does not return before
        // every worker has left this region.
        unsafe {
            *s.job.get() = std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(f as *const _);
        }
        s.n_chunks.store(n_chunks, SeqCst);
        let threads = s.next.len();
        for (t, next) in s.next.iter().enumerate() {
            next.0.store(home_start(t, n_chunks, threads), SeqCst);
        }
        s.done.store(0, SeqCst);
        let generation = s.generation.load(SeqCst).wrapping_add(1);
        s.generation.store(generation, SeqCst);
        if s.sleeping.load(SeqCst) > 0 {
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        s.run_chunks(0, f);
        wait_until(|| s.done.load(SeqCst) >= n_chunks);
        s.finished.store(generation, SeqCst);
        wait_until(|| s.active.load(SeqCst) == 0);
        if s.panicked.swap(false, SeqCst) {
            panic!("a thread of the team panicked");
        }
    }
}

/// Spins briefly, then yields, until `cond` holds (used only to wait for chunks other
/// threads are running right now).
fn wait_until(cond: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !cond() {
        spins += 1;
        if spins < 1 << 12 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        if self.forked() {
            // the workers are the parent's: nothing here to wake or join
            std::mem::forget(std::mem::take(&mut self.workers));
            return;
        }
        let s = &*self.shared;
        s.stop.store(true, SeqCst);
        s.generation.fetch_add(1, SeqCst);
        {
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Many tiny regions back to back, more threads than cores among them: a worker
    /// is often descheduled between seeing a region and joining it. Every chunk must
    /// run exactly once and no region may hang (this hung before workers re-checked
    /// the generation after counting themselves in).
    #[test]
    fn tiny_regions_back_to_back_never_hang() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for threads in [2, 3, 5] {
                let team = Team::new(threads, || {}).unwrap();
                let hits: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
                let rounds = 200_000u64;
                for round in 0..rounds {
                    let n = 2 + (round % 2) as usize;
                    team.run(n, &|c| {
                        hits[c].fetch_add(1, SeqCst);
                    });
                }
                let total: u64 = hits.iter().map(|h| h.load(SeqCst)).sum();
                assert_eq!(total, rounds * 2 + rounds / 2, "threads {threads}");
                assert_eq!(hits[0].load(SeqCst), rounds, "threads {threads}");
            }
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(120)).expect("a region hung (or a chunk panicked)");
    }

    #[test]
    fn every_chunk_runs_once_and_panics_surface() {
        for threads in [1, 2, 3, 4] {
            let team = Team::new(threads, || {}).unwrap();
            assert_eq!(team.threads(), threads);
            for round in 0..200 {
                let n = 1 + round % 17;
                let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                team.run(n, &|c| {
                    hits[c].fetch_add(1, SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "threads {threads} round {round}");
                if round % 50 == 0 {
                    // let the workers fall asleep, then wake them again
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let r = catch_unwind(AssertUnwindSafe(|| {
                team.run(4, &|c| {
                    if c == 3 {
                        panic!("boom")
                    }
                })
            }));
            assert!(r.is_err());
            // still usable afterwards
            let count = AtomicU64::new(0);
            team.run(5, &|_| {
                count.fetch_add(1, SeqCst);
            });
            assert_eq!(count.load(SeqCst), 5);
        }
    }
}
