//! Multi-buffer scheduling for CBC encryption.
//!
//! CBC encryption of one buffer is a serial chain: each block waits for the
//! previous ciphertext, so one buffer runs at AES *latency*. With `L`
//! independent buffers in `L` SIMD lanes the same instructions carry `L`
//! chains and the loop runs at AES *throughput*. [`Lanes`] decides
//! which job each lane works on (a lane that finishes takes the next job,
//! as in a job manager); a backend keeps the chains in registers and runs
//! stretches ("runs") in which every lane advances one block per step,
//! calling the scheduler between runs.
//!
//! Lanes start in groups, a few steps apart ([`Stagger`]). Pages laid out
//! at a power-of-two stride (a buffer pool) would otherwise put every
//! lane's current block at the same address modulo 4 KiB, where loads wait
//! on unrelated stores and all lanes compete for one set of the L1 cache; a
//! small offset between groups spreads them. A stride can also cancel the
//! offset (pages 16 bytes past a multiple of 4 KiB apart with a stagger of
//! one block: 16 VAES-512 lanes then run at a quarter of the speed), so the
//! stagger is checked against the first lanes' addresses and another one
//! taken where it crowds them ([`spread_stagger`]). Since equal pages then
//! finish a group at a time, a changeover is a run of a few steps per
//! group, so the scheduler does as little as it can between runs: a
//! backend does not leave its loop, and only the lanes that changed are
//! touched.
//!
//! A backend that fuses the CRC of the plaintext into its lanes also keeps
//! a CRC accumulator per lane; [`Lanes`] resets it when a lane takes a job
//! and hands the folded value to the job when the lane finishes it (see
//! `kernel::crc`).
//!
//! This module is safe bookkeeping: which job, when. The pointers lanes
//! read and write are made and checked in [`cursors`], the one part
//! audited as unsafe code; whatever this module decides, a [`Run`] only
//! exists when every lane's buffer holds it.

#[allow(
    unsafe_code,
    reason = "the lanes' raw block pointers, checked when a run is made"
)]
mod cursors;

use cursors::Cursors;
pub(crate) use cursors::{LaneBlocks, MAX_RUN, Run, Scratch, Step};

use super::Job;
use super::crc::CrcRequest;

/// Most lanes any backend uses (RustCrypto's VAES-512 batch is 64 blocks).
pub(crate) const MAX_LANES: usize = 64;
const IDLE: usize = usize::MAX;

/// A backend's live lane state (chains, and CRC accumulators, in
/// registers) and its step loop, for [`Lanes::drive`]. Methods rather than
/// closures, so that they inline into a backend's `#[target_feature]`
/// entry with its features.
pub(crate) trait LaneKernel<const N: usize> {
    /// Takes every lane's state from [`Lanes::chain`] and [`Lanes::crc`].
    fn load(&mut self, chain: &[[u8; 16]; MAX_LANES], crc: &[[u8; 16]; MAX_LANES]);
    /// Takes the state of the lanes in `lanes` (a bit per lane) from
    /// [`Lanes::chain`] and [`Lanes::crc`]; the other lanes keep theirs.
    fn restart(&mut self, lanes: u64, chain: &[[u8; 16]; MAX_LANES], crc: &[[u8; 16]; MAX_LANES]);
    /// Writes the CRC accumulators of (at least) the lanes in `lanes` to
    /// `crc`. Chains are never read back: a finished lane's chain is done
    /// with, and a running lane's stays live.
    fn save_crc(&self, lanes: u64, crc: &mut [[u8; 16]; MAX_LANES]);
    /// Moves every lane through `run`.
    fn run(&mut self, run: &Run<'_, N>);
}

/// Which jobs `N` lanes work on, and when.
///
/// A backend runs them with [`Lanes::drive`]: in each [`Run`], every lane
/// encrypts its block at `run.src(lane, step)` to `run.dst(lane, step)`,
/// chained, for each of the run's steps.
pub(crate) struct Lanes<'s, 'j, 'b, const N: usize, const CRC: bool> {
    cursors: Cursors<'s, 'j, 'b, N>,
    /// The next job to hand out, if any is left.
    next: Option<usize>,
    /// Lanes working on a job (bit per lane).
    active: u64,
    /// Lanes that have not taken their first job yet (the stagger).
    waiting: u64,
    /// Lanes that took a job at the latest `end_run`.
    started: u64,
    job: [usize; N],
    /// The stagger taken: a lane waiting for it starts at step
    /// `stagger.delay(lane)`.
    stagger: Stagger,
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

impl<'s, 'j, 'b, const N: usize, const CRC: bool> Lanes<'s, 'j, 'b, N, CRC> {
    const ALL: u64 = {
        assert!(N >= 1 && N <= MAX_LANES);
        u64::MAX >> (64 - N)
    };

    /// Lanes for `jobs`, lane `i` starting [`Stagger::delay`] steps late,
    /// or with another stagger where that one crowds them
    /// ([`spread_stagger`]).
    pub(crate) fn new(jobs: &'j mut [Job<'b>], stagger: Stagger, scratch: &'s mut Scratch) -> Self {
        let stagger = spread_stagger::<N>(jobs, stagger);
        let mut lanes = Lanes {
            cursors: Cursors::new(jobs, scratch),
            next: None,
            active: 0,
            waiting: Self::ALL,
            started: 0,
            job: [IDLE; N],
            stagger,
            chain: [[0; 16]; MAX_LANES],
            crc: [[0; 16]; MAX_LANES],
        };
        lanes.next = lanes.next_nonempty(0);
        lanes.take_ready_lanes();
        lanes
    }

    /// The next run, or `None` when every job is done. Ends a run where a
    /// lane finishes its job or a waiting lane may start, and, while a lane
    /// is idle, after at most `MAX_RUN` steps (the scratch space). Call
    /// [`Lanes::end_run`] after it.
    fn begin_run(&mut self) -> Option<Run<'_, N>> {
        loop {
            let now = self.cursors.now();
            // With every lane busy, nothing but a job's end needs the
            // scheduler: each return to it costs some 50-100 cycles.
            let most = if self.active == Self::ALL {
                usize::MAX - now
            } else {
                MAX_RUN
            };
            let mut steps = self.first_end().map_or(most, |end| most.min(end - now));
            let waiting = if self.next.is_some() { self.waiting } else { 0 };
            for lane in lanes(waiting) {
                steps = steps.min(self.stagger.delay(lane) - now);
            }
            if self.active == 0 {
                // Lanes waiting for their stagger have no reason to wait
                // when nothing runs.
                if waiting == 0 {
                    return None;
                }
                self.cursors.skip(steps);
                self.take_ready_lanes();
                continue;
            }
            let idle = Self::ALL & !self.active;
            let run = self.cursors.run(steps, idle);
            assert!(run.is_some(), "lane bookkeeping: a run past a buffer");
            return run;
        }
    }

    /// Runs every job through the lanes: the loop of every multi-buffer
    /// backend, with the backend's live lane state in `kernel`. Lanes that
    /// took a job at the end of a run restart from their job's IV and seed.
    #[inline(always)]
    pub(crate) fn drive(&mut self, kernel: &mut impl LaneKernel<N>) {
        kernel.load(&self.chain, &self.crc);
        while let Some(run) = self.begin_run() {
            kernel.run(&run);
            // Only what changes hands moves through memory: a changeover
            // with staggered lanes is a run of a few steps per group.
            let ended = self.finishing();
            if CRC {
                kernel.save_crc(ended, &mut self.crc);
            }
            let started = self.end_run(ended);
            if started != 0 {
                kernel.restart(started, &self.chain, &self.crc);
            }
        }
    }

    /// The lanes whose jobs end with the run just made. (A scan of every
    /// lane: with a group of lanes ending at once, cheaper than a queue of
    /// ends in order, whose every removal mispredicted its branches.)
    fn finishing(&self) -> u64 {
        let now = self.cursors.now();
        (0..N).fold(0, |mask, lane| {
            let ends = self.active & (1 << lane) != 0 && self.cursors.end(lane) == now;
            mask | (u64::from(ends) << lane)
        })
    }

    /// The step at which the first of the active lanes' jobs ends.
    fn first_end(&self) -> Option<usize> {
        let first = (0..N).fold(usize::MAX, |first, lane| {
            if self.active & (1 << lane) != 0 {
                first.min(self.cursors.end(lane))
            } else {
                first
            }
        });
        (self.active != 0).then_some(first)
    }

    /// Records that the run `begin_run` started is done: hands the CRC
    /// accumulators of the lanes in `ended` (their jobs ended with it) to
    /// their jobs and gives free lanes the next jobs. Returns the lanes
    /// that took a job.
    fn end_run(&mut self, ended: u64) -> u64 {
        for lane in lanes(ended) {
            self.active &= !(1 << lane);
            self.cursors.idle(lane);
            let job = core::mem::replace(&mut self.job[lane], IDLE);
            if CRC && let Some(crc) = &mut self.cursors.jobs_mut()[job].crc {
                crc.fold = self.crc[lane];
            }
        }
        self.take_ready_lanes();
        self.started
    }

    /// Gives the next jobs to the lanes that are free: idle, and past
    /// their stagger. Sets `started`.
    fn take_ready_lanes(&mut self) {
        let now = self.cursors.now();
        self.started = 0;
        let mut free = Self::ALL & !self.active;
        for lane in lanes(self.waiting) {
            if self.stagger.delay(lane) > now {
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
            let taken = &self.cursors.jobs()[job];
            self.chain[lane] = taken.iv;
            if CRC {
                self.crc[lane] = taken.crc.as_ref().map_or([0; 16], CrcRequest::seed);
            }
            let took = self.cursors.take(lane, job);
            debug_assert!(took);
            self.next = self.next_nonempty(job + 1);
        }
    }

    fn next_nonempty(&self, from: usize) -> Option<usize> {
        let jobs = self.cursors.jobs();
        (from..jobs.len()).find(|&j| jobs[j].io.blocks() > 0)
    }
}

/// How a backend's lanes start: in groups of `group` lanes, each group
/// `steps` steps after the one before, unless the lanes' current blocks
/// then take more than `crowd` lines of one set of the L1 cache (one
/// 64-byte line modulo 4 KiB) and [`spread_stagger`] takes another stagger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stagger {
    pub(crate) steps: usize,
    pub(crate) group: usize,
    pub(crate) crowd: usize,
}

impl Stagger {
    /// Lanes in SIMD registers, which load and store every lane's block
    /// within a few cycles of each other: groups of `group` lanes `steps`
    /// apart, and at most 6 lines in a set, under the 8 ways of the
    /// smallest L1 the backends meet (AMD Zen 3; Intel's have 12): lines
    /// the lanes have just left or are about to enter share the sets too.
    /// Measured on an Intel core: 8 AES-NI lanes in one set run as fast as
    /// spread ones, 16 VAES-512 lanes at a quarter of the speed; 16 lanes
    /// copying between two pools at the same offsets in 4 KiB (8 lines a
    /// set with a stagger of one step) at 0.6 times the speed of 4 a set,
    /// VAES-256 at 0.75.
    ///
    /// Lanes of one group work at the same offset in their pages, so at a
    /// changeover of equal pages the group changes jobs in one run; and a
    /// lane's loads never meet the 4 KiB alias of a store from the step
    /// before, which a stagger of one step between single lanes makes
    /// every lane's loads do (its neighbour stored that offset a step
    /// earlier). Measured on an Intel core, 64 pages in place: groups of
    /// four lanes four steps apart 1.02× (VAES-512), 1.04× (VAES-256) and
    /// 1.02× (AES-NI's 8 lanes) the speed of single lanes one step apart.
    pub(crate) const fn vector(steps: usize, group: usize) -> Stagger {
        assert!(group >= 1);
        Stagger {
            steps,
            group,
            crowd: 6,
        }
    }

    /// The software backend's lanes: a block array that the `aes` crate
    /// encrypts whole between the loads and the stores, so lanes in one
    /// set cost little until they far exceed its ways. No stagger (no
    /// ramp), and 16 lines in a set. Measured on an Intel core (64 lanes
    /// of the crate's VAES-512 code, pages at the 8192 stride): a stagger
    /// of one step made 16 jobs 3% slower (its ramp), 32 jobs 8-14%
    /// faster and 64 jobs 1.65 times as fast.
    pub(crate) const SOFTWARE: Stagger = Stagger {
        steps: 0,
        group: 1,
        crowd: 16,
    };

    /// The steps `lane` starts after the first lane.
    fn delay(self, lane: usize) -> usize {
        lane / self.group * self.steps
    }
}

/// The staggers tried, one lane to a group, in this order, when the
/// backend's crowds the lanes.
const STAGGERS: [usize; 5] = [1, 2, 3, 5, 7];

/// The stagger for `jobs` in `N` lanes: `backend` unless the first `N`
/// jobs' current blocks then take more than `backend.crowd` lines of one L1
/// set (their input and, out of place, their output), else the backend's
/// steps with the largest smaller group (halving it) that does not, else
/// the first of [`STAGGERS`] that crowds them least. Lane `i` takes the
/// `i`-th job with data and starts [`Stagger::delay`] steps late, so its
/// block at any step lies `16 * delay` bytes before where the first lane's
/// would in the same buffer; jobs laid out alike keep that pattern when
/// lanes take the next ones.
fn spread_stagger<const N: usize>(jobs: &[Job<'_>], backend: Stagger) -> Stagger {
    let crowd = |stagger: Stagger| {
        let mut per_set = [0u8; 64];
        let mut most = 0;
        let busy = jobs.iter().filter(|job| job.io.blocks() > 0).take(N);
        for (lane, job) in busy.enumerate() {
            let shift = 16 * stagger.delay(lane);
            let (input, output) = (job.io.input().as_ptr(), job.io.output().as_ptr());
            let lines = if input == output { 1 } else { 2 };
            for at in [input, output].into_iter().take(lines) {
                let set = (at.addr().wrapping_sub(shift) >> 6) & 63;
                per_set[set] += 1;
                most = most.max(usize::from(per_set[set]));
            }
        }
        most
    };
    // Smaller groups at the backend's steps (copying between pools at the
    // same offsets in 4 KiB puts each lane's input and output in one set),
    // then single lanes at each of `STAGGERS`.
    let mut stagger = backend;
    loop {
        if crowd(stagger) <= backend.crowd {
            return stagger;
        }
        if stagger.group == 1 {
            break;
        }
        stagger.group /= 2;
    }
    STAGGERS
        .into_iter()
        .map(|steps| Stagger {
            steps,
            group: 1,
            ..backend
        })
        .min_by_key(|&stagger| crowd(stagger))
        .unwrap_or(backend)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The most lines that the lanes' blocks take in one L1 set (a 64-byte
    /// line modulo 4 KiB) over the pages of `pools` (one pool in place;
    /// the input and the output pool otherwise), `stride` bytes apart, lane
    /// `i` `stagger.delay(i)` steps behind the first, at the first block's phase
    /// in its line. (The lanes' blocks move 16 bytes a step, so an input
    /// and an output less than a line apart share a set in some steps
    /// only; [`spread_stagger`] reads the same phase.)
    fn lines_per_set<const N: usize>(pools: &[&[u8]], stride: usize, stagger: Stagger) -> usize {
        let mut per_set = [0; 64];
        for pool in pools {
            for lane in 0..N {
                let page = pool[lane * stride..].as_ptr().addr();
                let block = page.wrapping_sub(16 * stagger.delay(lane));
                per_set[(block % 4096) / 64] += 1;
            }
        }
        per_set.into_iter().max().unwrap_or(0)
    }

    fn check_strides<const N: usize>(in_place: bool, backend: Stagger) {
        // Buffer-pool frames, some with a few bytes of metadata that
        // cancel a stagger of one block (4 KiB + 16) or two (+ 32).
        for stride in [4096, 8192, 8208, 8224, 8256, 12304, 16400, 8192 + 2048 + 16] {
            // The pools at fixed offsets in 4 KiB (the allocator's
            // alignment is not the test's): out of place, the input 0, 16
            // or 48 bytes past a line from the output, or half a page away.
            let offsets: &[usize] = if in_place {
                &[0]
            } else {
                &[0, 16, 48, 2048 + 16]
            };
            for &input_at in offsets {
                aligned_pools(N * stride, input_at, |output, input| {
                    check_pools::<N>(output, input, stride, in_place, backend, input_at)
                });
            }
        }
    }

    /// An output pool of `len` bytes at a multiple of 4 KiB and an input
    /// pool `input_at` bytes past one, handed to `f`.
    fn aligned_pools<T>(len: usize, input_at: usize, f: impl FnOnce(&mut [u8], &[u8]) -> T) -> T {
        let mut store = vec![0u8; 2 * len + 3 * 4096];
        let skew = store.as_ptr().addr().wrapping_neg() % 4096;
        let (output, rest) = store[skew..].split_at_mut(len);
        let from = (4096 - len % 4096) % 4096 + input_at;
        f(output, &rest[from..from + len])
    }

    fn check_pools<const N: usize>(
        output: &mut [u8],
        input: &[u8],
        stride: usize,
        in_place: bool,
        backend: Stagger,
        input_at: usize,
    ) -> Stagger {
        let jobs: Vec<Job> = output
            .chunks_exact_mut(stride)
            .zip(input.chunks_exact(stride))
            .enumerate()
            .map(|(n, (output, input))| {
                let iv = [n as u8; 16];
                if in_place {
                    Job::in_place(iv, &mut output[..4096])
                } else {
                    Job::buf_to_buf(iv, &input[..4096], &mut output[..4096]).unwrap()
                }
            })
            .collect();
        let stagger = spread_stagger::<N>(&jobs, backend);
        drop(jobs);
        let pools: &[&[u8]] = if in_place {
            &[output]
        } else {
            &[input, output]
        };
        let crowd = lines_per_set::<N>(pools, stride, stagger);
        let case = format!(
            "{N} lanes, stride {stride}, in place {in_place}, input at {input_at}, {backend:?}"
        );
        assert!(
            crowd <= backend.crowd,
            "{case}, {stagger:?}: {crowd} lines in one L1 set"
        );
        if lines_per_set::<N>(pools, stride, backend) <= backend.crowd {
            assert_eq!(stagger, backend, "{case}: the backend's stagger was fine");
        }
        stagger
    }

    /// A buffer-pool flush into a write buffer: 16 vector lanes copying
    /// between two pools at the same offsets in 4 KiB, where a stagger of
    /// one step puts 8 lines in a set (measured 1.6 times slower on an
    /// Intel core), and so do groups of four lanes, take another stagger
    /// (groups of four: groups of two); in place they keep it.
    #[test]
    fn copying_between_aligned_pools_takes_another_stagger() {
        const STRIDE: usize = 8192;
        // `check_pools` also checks that the stagger taken keeps the sets
        // within the backend's crowd.
        for backend in [Stagger::vector(1, 1), Stagger::vector(4, 4)] {
            let stagger = |in_place| {
                aligned_pools(16 * STRIDE, 0, |output, input| {
                    check_pools::<16>(output, input, STRIDE, in_place, backend, 0)
                })
            };
            assert_ne!(stagger(false), backend, "8 lines a set");
            assert_eq!(stagger(true), backend);
        }
        // Groups of two at the same steps put 4 lines a set: measured 4%
        // faster than single lanes two steps apart (VAES-512 copying).
        let halved = aligned_pools(16 * STRIDE, 0, |output, input| {
            check_pools::<16>(output, input, STRIDE, false, Stagger::vector(4, 4), 0)
        });
        assert_eq!(halved, Stagger::vector(4, 2));
    }

    /// A group of lanes starts together; groups start `steps` apart.
    #[test]
    fn lanes_start_by_groups() {
        let delays: Vec<usize> = (0..10)
            .map(|lane| Stagger::vector(4, 4).delay(lane))
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]);
        let delays: Vec<usize> = (0..4)
            .map(|lane| Stagger::vector(2, 1).delay(lane))
            .collect();
        assert_eq!(delays, [0, 2, 4, 6]);
    }

    /// Pages at strides that crowd lanes with the backends' stagger get
    /// another one that spreads them; those that do not keep it.
    #[test]
    fn stagger_spreads_lanes_over_cache_sets() {
        let soft = Stagger::SOFTWARE;
        for in_place in [true, false] {
            for backend in [Stagger::vector(1, 1), Stagger::vector(4, 4), soft] {
                check_strides::<8>(in_place, backend);
                check_strides::<16>(in_place, backend);
                check_strides::<32>(in_place, backend);
            }
            check_strides::<64>(in_place, soft);
        }
    }
}
