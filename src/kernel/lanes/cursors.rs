//! Where each lane reads and writes: the only place that makes the raw
//! pointers the multi-buffer loops use, and the proof that they are valid.
//!
//! [`Cursors`] owns the batch's jobs for as long as lanes work on them. It
//! gives a lane a job only in increasing job order (so no job is in two
//! lanes, and no lane's bytes are touched by anything else), records when
//! the lane's buffer ends, and points idle lanes at a scratch space. A
//! [`Run`] of `steps` steps is made only after checking that every lane's
//! buffer holds those steps; its [`Step`]s can only be made below `steps`.
//! So `src`/`dst` of a `Run` are valid by construction, whatever the lane
//! bookkeeping in `super` decides.

use super::super::Job;

/// Most steps of one run while a lane is idle; bounds the scratch space of
/// idle lanes. (A run with every lane busy is bounded by the jobs only.)
pub(crate) const MAX_RUN: usize = 64;

/// Where idle lanes read and write, so a run needs no per-lane branches.
pub(crate) struct Scratch([u8; 2 * MAX_RUN * 16]);

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch([0; 2 * MAX_RUN * 16])
    }
}

/// The pointers of `N` lanes into the jobs (or the scratch space).
pub(crate) struct Cursors<'s, 'j, 'b, const N: usize> {
    jobs: &'j mut [Job<'b>],
    /// Steps run so far; `src + 16 * now` is a lane's current block.
    now: usize,
    /// The step at which each lane's buffer ends.
    end: [usize; N],
    src: [*const u8; N],
    dst: [*mut u8; N],
    /// Jobs below this index have been given to a lane (or skipped).
    next_job: usize,
    /// Lanes whose job reads a separate source (a bit per lane); the
    /// others, idle lanes included, read and write one buffer.
    copying: u64,
    /// Idle lanes read and write `scratch + 16 * (now - scratch_epoch)`,
    /// valid until step `scratch_epoch + 2 * MAX_RUN`.
    scratch: *mut u8,
    scratch_epoch: usize,
    _scratch: core::marker::PhantomData<&'s mut Scratch>,
}

impl<'s, 'j, 'b, const N: usize> Cursors<'s, 'j, 'b, N> {
    pub(crate) fn new(jobs: &'j mut [Job<'b>], scratch: &'s mut Scratch) -> Self {
        let scratch = scratch.0.as_mut_ptr();
        Cursors {
            jobs,
            now: 0,
            end: [2 * MAX_RUN; N],
            src: [scratch.cast_const(); N],
            dst: [scratch; N],
            next_job: 0,
            copying: 0,
            scratch,
            scratch_epoch: 0,
            _scratch: core::marker::PhantomData,
        }
    }

    /// The jobs. Reading and writing a job's IV, CRC request and length
    /// does not touch the bytes lanes work on.
    pub(crate) fn jobs(&self) -> &[Job<'b>] {
        self.jobs
    }

    pub(crate) fn jobs_mut(&mut self) -> &mut [Job<'b>] {
        self.jobs
    }

    pub(crate) fn now(&self) -> usize {
        self.now
    }

    /// The step at which `lane`'s job (or scratch stretch) ends.
    pub(crate) fn end(&self, lane: usize) -> usize {
        self.end[lane]
    }

    /// Gives job `job` to `lane` from this step on. Jobs must be given in
    /// increasing order (skipped ones are never given); returns `false`,
    /// changing nothing, otherwise or for a lane or job out of range.
    pub(crate) fn take(&mut self, lane: usize, job: usize) -> bool {
        if lane >= N || job < self.next_job || job >= self.jobs.len() {
            return false;
        }
        self.next_job = job + 1;
        let io = &mut self.jobs[job].io;
        let blocks = io.blocks();
        let copying = !io.is_in_place();
        let (src, dst) = io.ptrs();
        self.end[lane] = self.now + blocks;
        self.src[lane] = src.wrapping_sub(16 * self.now);
        self.dst[lane] = dst.wrapping_sub(16 * self.now);
        if copying {
            self.copying |= 1 << lane;
        } else {
            self.copying &= !(1 << lane);
        }
        true
    }

    /// Points `lane` at the scratch space (it is done with its job).
    pub(crate) fn idle(&mut self, lane: usize) {
        if lane < N {
            self.copying &= !(1 << lane);
            self.end[lane] = self.scratch_epoch + 2 * MAX_RUN;
            self.src[lane] = self
                .scratch
                .cast_const()
                .wrapping_sub(16 * self.scratch_epoch);
            self.dst[lane] = self.scratch.wrapping_sub(16 * self.scratch_epoch);
        }
    }

    /// Moves `now` on without a run (nothing is active); a run moves it on
    /// by its length when it is made.
    pub(crate) fn skip(&mut self, steps: usize) {
        self.now += steps;
    }

    /// A run of `steps` steps (at least one), after `rebase`-ing idle lanes
    /// back to the start of the scratch space when they have used half of
    /// it. `None` if some lane's buffer (its job's, or the scratch space's,
    /// which holds at least `MAX_RUN` more steps after the rebase) does not
    /// hold `steps` more steps.
    pub(crate) fn run(&mut self, steps: usize, idle: u64) -> Option<Run<'_, N>> {
        if steps == 0 {
            return None;
        }
        if self.now - self.scratch_epoch >= MAX_RUN {
            self.scratch_epoch = self.now;
            for lane in 0..N {
                if idle & (1 << lane) != 0 {
                    self.idle(lane);
                }
            }
        }
        let last = self.now + steps;
        // A minimum rather than `any`: no early exit, so it vectorises.
        if self.end.iter().fold(usize::MAX, |min, &end| min.min(end)) < last {
            return None;
        }
        // The lanes move on by the run now; the run keeps where it starts
        // and borrows the pointers, so nothing changes them while it lasts.
        let now = self.now;
        self.now = last;
        Some(Run {
            src: &self.src,
            dst: &self.dst,
            in_place: self.copying == 0,
            now,
            steps,
        })
    }
}

/// A stretch of `steps` steps in which every lane reads and writes one
/// block per step. Made only by [`Cursors::run`], after its check: for
/// every lane `l < N` and step `s < steps`, `src(l, s)` is valid for
/// reading and `dst(l, s)` for writing 16 bytes; the destinations of lanes
/// with jobs are disjoint (distinct jobs' `&mut` buffers), and a lane's
/// source either is its destination (in place) or is a shared slice that
/// no destination overlaps. Idle lanes share the scratch space. With
/// `in_place`, every lane's source is its destination, so `dst(l, s)` is
/// valid for reading too ([`InPlace`]).
pub(crate) struct Run<'r, const N: usize> {
    src: &'r [*const u8; N],
    dst: &'r [*mut u8; N],
    /// Every lane reads and writes one buffer (`src` equals `dst`).
    in_place: bool,
    /// The step at which the run starts.
    now: usize,
    steps: usize,
}

/// A step index below the length of the run it was made by, usable only
/// while that run is borrowed (so never with a later, shorter run).
#[derive(Clone, Copy)]
pub(crate) struct Step<'r>(usize, core::marker::PhantomData<&'r ()>);

/// Where the lanes read and write their blocks: a [`Run`], or the same
/// run's [`InPlace`] view, which reads one pointer array where the run has
/// two (the lanes' loop reloads every lane's pointers in every step).
pub(crate) trait LaneBlocks<const N: usize> {
    /// Where `lane` (`< N`, checked) reads its block in `step`: valid for
    /// reading 16 bytes until the run ends.
    fn src<'x>(&'x self, lane: usize, step: Step<'x>) -> *const u8;
    /// Where `lane` writes its block in `step`: valid for writing 16 bytes
    /// until the run ends; read the lane's block of that step first.
    fn dst<'x>(&'x self, lane: usize, step: Step<'x>) -> *mut u8;
}

/// A run whose every lane works in place, made by [`Run::in_place`]: its
/// blocks are read and written through the destination pointers alone.
pub(crate) struct InPlace<'a, 'r, const N: usize>(&'a Run<'r, N>);

impl<const N: usize> LaneBlocks<N> for InPlace<'_, '_, N> {
    #[inline(always)]
    fn src<'x>(&'x self, lane: usize, step: Step<'x>) -> *const u8 {
        // In place, the source is the destination (same provenance:
        // `InOut::ptrs` makes both from one mutable borrow).
        self.0.dst(lane, step).cast_const()
    }

    #[inline(always)]
    fn dst<'x>(&'x self, lane: usize, step: Step<'x>) -> *mut u8 {
        self.0.dst(lane, step)
    }
}

impl<const N: usize> LaneBlocks<N> for Run<'_, N> {
    #[inline(always)]
    fn src<'x>(&'x self, lane: usize, step: Step<'x>) -> *const u8 {
        self.src[lane].wrapping_add(16 * (self.now + step.0))
    }

    #[inline(always)]
    fn dst<'x>(&'x self, lane: usize, step: Step<'x>) -> *mut u8 {
        self.dst[lane].wrapping_add(16 * (self.now + step.0))
    }
}

impl<const N: usize> Run<'_, N> {
    /// The run as one buffer per lane, if every lane works in place.
    #[inline(always)]
    pub(crate) fn in_place(&self) -> Option<InPlace<'_, '_, N>> {
        self.in_place.then_some(InPlace(self))
    }

    /// The run's steps in order.
    #[inline(always)]
    pub(crate) fn steps(&self) -> impl Iterator<Item = Step<'_>> {
        (0..self.steps).map(|step| Step(step, core::marker::PhantomData))
    }

    /// The block `lane` reads in `step`, for code without raw pointers.
    #[inline(always)]
    pub(crate) fn read<'x>(&'x self, lane: usize, step: Step<'x>) -> [u8; 16] {
        // SAFETY: a `Run` and a `Step` of it prove 16 readable bytes.
        unsafe { self.src(lane, step).cast::<[u8; 16]>().read_unaligned() }
    }

    /// Writes the block `lane` writes in `step`, for code without raw
    /// pointers; after `read` of the same lane and step.
    #[inline(always)]
    pub(crate) fn write<'x>(&'x self, lane: usize, step: Step<'x>, block: [u8; 16]) {
        // SAFETY: a `Run` and a `Step` of it prove 16 writable bytes.
        unsafe {
            self.dst(lane, step)
                .cast::<[u8; 16]>()
                .write_unaligned(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checks that make a `Run` a proof: no run past a lane's buffer
    /// (job or scratch), no job given twice or out of order, no lane out of
    /// range, and a run moves every lane on by its length.
    #[test]
    fn runs_stay_inside_every_lane_buffer() {
        let mut a = [1u8; 3 * 16];
        let mut b = [2u8; 5 * 16];
        let mut jobs = [
            Job::in_place([0; 16], &mut a),
            Job::in_place([0; 16], &mut b),
        ];
        let mut scratch = Scratch::new();
        let mut cursors = Cursors::<2>::new(&mut jobs, &mut scratch);
        assert!(cursors.take(0, 1));
        assert!(!cursors.take(1, 0), "a job before one already given");
        assert!(!cursors.take(1, 1), "a job given twice");
        assert!(!cursors.take(2, 2), "a lane out of range");
        assert!(cursors.run(6, 0b10).is_none(), "past job 1's 5 blocks");
        assert!(cursors.run(0, 0b10).is_none(), "an empty run");
        let run = cursors.run(2, 0b10).expect("inside every buffer");
        let steps: Vec<_> = run.steps().collect();
        assert_eq!(steps.len(), 2);
        assert_eq!(run.read(0, steps[1]), [2; 16]);
        run.write(0, steps[1], [7; 16]);
        assert_eq!(cursors.now(), 2);
        assert!(cursors.run(4, 0b10).is_none(), "3 blocks of job 1 are left");
        cursors.idle(0);
        assert!(
            cursors.run(MAX_RUN, 0b11).is_some(),
            "scratch holds a whole run"
        );
        let _ = cursors;
        assert_eq!(b[16..32], [7; 16]);
        assert_eq!(a, [1; 48]);
    }

    /// A run is in place while no lane copies from a separate source; an
    /// idle lane (on the scratch space) is in place; the in-place view
    /// reads and writes the destination.
    #[test]
    fn a_run_is_in_place_only_without_a_copying_lane() {
        let mut a = [1u8; 4 * 16];
        let mut b = [0u8; 2 * 16];
        let c = [3u8; 2 * 16];
        let mut jobs = [
            Job::in_place([0; 16], &mut a),
            Job::buf_to_buf([0; 16], &c, &mut b).unwrap(),
        ];
        let mut scratch = Scratch::new();
        let mut cursors = Cursors::<2>::new(&mut jobs, &mut scratch);
        assert!(cursors.take(0, 0));
        let run = cursors.run(1, 0b10).expect("job 0 and the scratch space");
        let in_place = run.in_place().expect("the idle lane works in place");
        let step = run.steps().next().expect("one step");
        assert_eq!(in_place.src(0, step), in_place.dst(0, step).cast_const());
        assert_eq!(run.read(0, step), [1; 16]);
        assert!(cursors.take(1, 1));
        let run = cursors.run(2, 0).expect("both jobs hold two steps");
        assert!(run.in_place().is_none(), "lane 1 copies from `c`");
        cursors.idle(1);
        let run = cursors.run(1, 0b10).expect("job 0 holds a third step");
        assert!(run.in_place().is_some(), "lane 1 is idle again");
    }

    /// Busy lanes run as long as their jobs hold; a lane that becomes idle
    /// after a run longer than the scratch space is rebased, and the
    /// scratch space bounds the runs from then on.
    #[test]
    fn scratch_bounds_runs_only_while_a_lane_is_idle() {
        let mut a = vec![1u8; 3 * MAX_RUN * 16];
        let mut b = vec![2u8; 6 * MAX_RUN * 16];
        let mut jobs = [
            Job::in_place([0; 16], &mut a),
            Job::in_place([0; 16], &mut b),
        ];
        let mut scratch = Scratch::new();
        let mut cursors = Cursors::<2>::new(&mut jobs, &mut scratch);
        assert!(cursors.take(0, 0) && cursors.take(1, 1));
        assert!(cursors.run(3 * MAX_RUN, 0).is_some(), "both jobs hold it");
        cursors.idle(0);
        assert!(
            cursors.run(2 * MAX_RUN + 1, 0b01).is_none(),
            "past the scratch space"
        );
        let run = cursors.run(MAX_RUN, 0b01).expect("rebased scratch");
        let steps: Vec<_> = run.steps().collect();
        run.write(0, steps[MAX_RUN - 1], [7; 16]);
        assert_eq!(run.read(0, steps[MAX_RUN - 1]), [7; 16]);
        let _ = cursors;
        assert_eq!(b[..], [2; 6 * MAX_RUN * 16][..]);
    }
}
