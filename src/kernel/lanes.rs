//! Multi-buffer scheduling for CBC encryption.
//!
//! CBC encryption of one buffer is a serial chain: each block waits for the
//! previous ciphertext, so one buffer runs at AES *latency*. With `L`
//! independent buffers in `L` SIMD lanes the same instructions carry `L`
//! chains and the loop runs at AES *throughput*. The [`Lanes`] decides
//! which job each lane works on (a lane that finishes takes the next job,
//! as in a job manager); a backend keeps the chains in registers and runs
//! stretches ("runs") in which every lane advances one block per step,
//! calling the scheduler between runs.
//!
//! Lanes start `stagger` steps apart. Pages laid out at a power-of-two
//! stride (a buffer pool) would otherwise put every lane's current block at
//! the same address modulo 4 KiB, where loads wait on unrelated stores; a
//! small offset between lanes spreads them. Since equal pages then finish
//! one step apart, a lane changes jobs in almost every step of a
//! changeover, so the scheduler does as little as it can between runs: a
//! backend does not leave its loop, and only the lanes that changed are
//! touched.
//!
//! A backend that fuses the CRC of the plaintext into its lanes also keeps
//! a CRC accumulator per lane; the scheduler resets it when a lane takes a
//! job and hands the folded value to the job when the lane finishes it
//! (see `kernel::crc`).

use super::Job;
use super::crc::CrcRequest;

/// Most lanes any backend uses (RustCrypto's VAES-512 batch is 64 blocks).
pub(crate) const MAX_LANES: usize = 64;
/// Most steps of one run; bounds the scratch space of idle lanes.
pub(crate) const MAX_RUN: usize = 64;
const IDLE: usize = usize::MAX;

/// Where idle lanes read and write, so a run needs no per-lane branches.
pub(crate) struct Scratch([u8; 2 * MAX_RUN * 16]);

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch([0; 2 * MAX_RUN * 16])
    }
}

/// Which jobs the lanes work on, and where their blocks are.
///
/// A backend's loop:
///
/// ```text
/// let mut sched = Lanes::new(jobs, LANES, STAGGER, &mut scratch);
/// chains <- sched.chain (every lane)
/// loop {
///     let steps = sched.begin_run();
///     if steps == 0 { break }
///     for step in 0..steps: each lane l encrypts its block at
///         sched.src_at(l, step) to sched.dst_at(l, step), chained
///     let started = sched.end_run();
///     chains of the lanes in `started` <- sched.chain
/// }
/// ```
///
/// Guarantee (kept here, relied on by the backends): between `begin_run`
/// returning `steps > 0` and the next `end_run`, for every lane `l` below
/// the lane count and every `step < steps`, `src_at(l, step)` is valid for
/// reading and `dst_at(l, step)` for writing 16 bytes; the destinations of
/// distinct active lanes do not overlap, and a lane's source either equals
/// its destination (in place) or overlaps no destination. Idle lanes read
/// and write the scratch space.
///
/// A lane's pointers come from its job once, when the lane takes the job
/// (one mutable borrow of the job's buffers, see `InOut::ptrs`); nothing
/// else touches that job's bytes until the lane is done with it.
pub(crate) struct Lanes<'s, 'j, 'b, const CRC: bool> {
    jobs: &'j mut [Job<'b>],
    count: usize,
    /// Steps run so far; lanes' block positions are relative to it.
    now: usize,
    /// The length of the run in progress.
    run: usize,
    /// The next job to hand out, if any is left.
    next: Option<usize>,
    /// Lanes working on a job (bit per lane).
    active: u64,
    /// Lanes that have not taken their first job yet (the stagger).
    waiting: u64,
    /// Lanes that took a job at the latest `end_run`.
    started: u64,
    job: [usize; MAX_LANES],
    /// The step at which a lane took its job.
    begin: [usize; MAX_LANES],
    /// When the active lanes' jobs end, earliest first.
    ends: EndQueue,
    /// A lane waiting for its stagger starts at this step.
    start_at: [usize; MAX_LANES],
    /// `src + 16 * now` is the lane's current block.
    src: [*const u8; MAX_LANES],
    dst: [*mut u8; MAX_LANES],
    /// Idle lanes read and write `scratch + 16 * (now - scratch_epoch)`;
    /// `now - scratch_epoch < MAX_RUN` when a run starts, so a run stays
    /// inside the scratch space's `2 * MAX_RUN` blocks.
    scratch: *mut u8,
    scratch_epoch: usize,
    _scratch: core::marker::PhantomData<&'s mut Scratch>,
    /// The chaining value of each lane: the job's IV when the lane takes
    /// it. Backends keep the live chains in registers and read this for
    /// the lanes that (re)started.
    pub(crate) chain: [[u8; 16]; MAX_LANES],
    /// Fused CRC only: each lane's CRC accumulator, the job's plaintext so
    /// far folded to 128 bits. The job's seed (`CrcRequest::seed`) when a
    /// lane takes a job; a backend stores its accumulators here before
    /// `end_run`, which hands a finished lane's value to its job.
    pub(crate) crc: [[u8; 16]; MAX_LANES],
}

impl<'s, 'j, 'b, const CRC: bool> Lanes<'s, 'j, 'b, CRC> {
    /// A scheduler for `lane_count` lanes (at most `MAX_LANES`), lane `i`
    /// starting `i * stagger` steps late.
    pub(crate) fn new(
        jobs: &'j mut [Job<'b>],
        lane_count: usize,
        stagger: usize,
        scratch: &'s mut Scratch,
    ) -> Self {
        let count = lane_count.clamp(1, MAX_LANES);
        let scratch = scratch.0.as_mut_ptr();
        let mut sched = Lanes {
            jobs,
            count,
            now: 0,
            run: 0,
            next: None,
            active: 0,
            waiting: 0,
            started: 0,
            job: [IDLE; MAX_LANES],
            begin: [0; MAX_LANES],
            ends: EndQueue::new(),
            start_at: [0; MAX_LANES],
            src: [scratch.cast_const(); MAX_LANES],
            dst: [scratch; MAX_LANES],
            scratch,
            scratch_epoch: 0,
            _scratch: core::marker::PhantomData,
            chain: [[0; 16]; MAX_LANES],
            crc: [[0; 16]; MAX_LANES],
        };
        sched.next = sched.next_nonempty(0);
        for lane in 0..count {
            sched.start_at[lane] = lane * stagger;
            sched.waiting |= 1 << lane;
        }
        sched.take_ready_lanes();
        sched
    }

    /// The number of steps of the next run, or 0 when every job is done.
    /// Ends a run where a lane finishes its job or a waiting lane may
    /// start, and after at most `MAX_RUN` steps.
    pub(crate) fn begin_run(&mut self) -> usize {
        loop {
            let mut steps = self
                .ends
                .first()
                .map_or(MAX_RUN, |(end, _)| MAX_RUN.min(end - self.now));
            let waiting = if self.next.is_some() { self.waiting } else { 0 };
            for lane in lanes(waiting) {
                steps = steps.min(self.start_at[lane] - self.now);
            }
            if self.active == 0 {
                // Lanes waiting for their stagger have no reason to wait
                // when nothing runs.
                if waiting == 0 {
                    return 0;
                }
                self.now += steps;
                self.take_ready_lanes();
                continue;
            }
            if self.now - self.scratch_epoch >= MAX_RUN {
                // Idle lanes are MAX_RUN steps into the scratch space: move
                // them back to its start.
                self.scratch_epoch = self.now;
                for lane in lanes(self.all() & !self.active) {
                    self.idle(lane);
                }
            }
            self.run = steps;
            return steps;
        }
    }

    /// Where lane `lane` reads its block in step `step` of this run.
    #[inline(always)]
    pub(crate) fn src_at(&self, lane: usize, step: usize) -> *const u8 {
        self.src[lane].wrapping_add(16 * (self.now + step))
    }

    /// Where lane `lane` writes its block in step `step` of this run.
    #[inline(always)]
    pub(crate) fn dst_at(&self, lane: usize, step: usize) -> *mut u8 {
        self.dst[lane].wrapping_add(16 * (self.now + step))
    }

    /// Records that the run `begin_run` started is done: hands finished
    /// lanes' CRC accumulators to their jobs and gives free lanes the next
    /// jobs. Returns the lanes that took a job.
    pub(crate) fn end_run(&mut self) -> u64 {
        self.now += core::mem::take(&mut self.run);
        while let Some((end, lane)) = self.ends.first()
            && end == self.now
        {
            self.ends.pop();
            self.active &= !(1 << lane);
            self.idle(lane);
            let job = core::mem::replace(&mut self.job[lane], IDLE);
            if CRC && let Some(crc) = &mut self.jobs[job].crc {
                crc.fold = self.crc[lane];
            }
        }
        self.take_ready_lanes();
        self.started
    }

    /// Gives the next jobs to the lanes that are free: idle, and past
    /// their stagger. Sets `started`.
    fn take_ready_lanes(&mut self) {
        self.started = 0;
        let mut free = self.all() & !self.active;
        for lane in lanes(self.waiting) {
            if self.start_at[lane] > self.now {
                free &= !(1 << lane);
            }
        }
        for lane in lanes(free) {
            let Some(job) = self.next else { break };
            let bit = 1 << lane;
            self.waiting &= !bit;
            self.active |= bit;
            self.started |= bit;
            self.job[lane] = job;
            self.begin[lane] = self.now;
            self.ends.push(self.now + self.jobs[job].io.blocks(), lane);
            self.chain[lane] = self.jobs[job].iv;
            if CRC {
                self.crc[lane] = self.jobs[job]
                    .crc
                    .as_ref()
                    .map_or([0; 16], CrcRequest::seed);
            }
            let (src, dst) = self.jobs[job].io.ptrs();
            self.src[lane] = src.wrapping_sub(16 * self.now);
            self.dst[lane] = dst.wrapping_sub(16 * self.now);
            self.next = self.next_nonempty(job + 1);
        }
    }

    /// The job and block index an active lane works on in step `step` of
    /// this run; `None` when the lane is idle.
    pub(crate) fn position(&self, lane: usize, step: usize) -> Option<(usize, usize)> {
        (lane < self.count && self.job[lane] != IDLE)
            .then(|| (self.job[lane], self.now + step - self.begin[lane]))
    }

    /// The jobs, for a backend that reads and writes blocks through
    /// `position` rather than pointers.
    pub(crate) fn jobs(&mut self) -> &mut [Job<'b>] {
        self.jobs
    }

    /// Points an idle lane at the scratch space.
    fn idle(&mut self, lane: usize) {
        self.src[lane] = self
            .scratch
            .cast_const()
            .wrapping_sub(16 * self.scratch_epoch);
        self.dst[lane] = self.scratch.wrapping_sub(16 * self.scratch_epoch);
    }

    fn all(&self) -> u64 {
        u64::MAX >> (64 - self.count)
    }

    fn next_nonempty(&self, from: usize) -> Option<usize> {
        (from..self.jobs.len()).find(|&j| self.jobs[j].io.blocks() > 0)
    }
}

/// The lanes whose bits are set in `mask`, lowest first.
fn lanes(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (mask != 0).then(|| {
            let lane = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            lane
        })
    })
}

/// A binary min-heap of (end step, lane) for at most `MAX_LANES` lanes: the
/// next lane to finish without scanning every lane at every run.
struct EndQueue {
    len: usize,
    heap: [(usize, usize); MAX_LANES],
}

impl EndQueue {
    fn new() -> Self {
        EndQueue {
            len: 0,
            heap: [(0, 0); MAX_LANES],
        }
    }

    fn first(&self) -> Option<(usize, usize)> {
        (self.len > 0).then(|| self.heap[0])
    }

    /// Adds a lane; each lane is in the queue at most once, so it never
    /// holds more than `MAX_LANES` entries.
    fn push(&mut self, end: usize, lane: usize) {
        let mut at = self.len;
        self.heap[at] = (end, lane);
        self.len += 1;
        while at > 0 && self.heap[(at - 1) / 2] > self.heap[at] {
            self.heap.swap(at, (at - 1) / 2);
            at = (at - 1) / 2;
        }
    }

    fn pop(&mut self) {
        self.len -= 1;
        self.heap[0] = self.heap[self.len];
        let mut at = 0;
        loop {
            let (left, right) = (2 * at + 1, 2 * at + 2);
            let mut min = at;
            if left < self.len && self.heap[left] < self.heap[min] {
                min = left;
            }
            if right < self.len && self.heap[right] < self.heap[min] {
                min = right;
            }
            if min == at {
                return;
            }
            self.heap.swap(at, min);
            at = min;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The queue against a sorted list: pushes of distinct lanes and
        /// pops in any order always give the smallest (end, lane).
        #[test]
        fn end_queue_gives_the_earliest_end(
            ops in prop::collection::vec((any::<bool>(), 0usize..10_000), 0..400),
        ) {
            let mut queue = EndQueue::new();
            let mut model: Vec<(usize, usize)> = Vec::new();
            let mut free: Vec<usize> = (0..MAX_LANES).collect();
            for (push, end) in ops {
                if push && let Some(lane) = free.pop() {
                    queue.push(end, lane);
                    model.push((end, lane));
                } else if let Some(&first) = model.iter().min() {
                    prop_assert_eq!(queue.first(), Some(first));
                    queue.pop();
                    model.retain(|&e| e != first);
                    free.push(first.1);
                }
                prop_assert_eq!(queue.first(), model.iter().min().copied());
            }
        }
    }
}
