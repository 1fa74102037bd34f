//! A few independent blocks of work on rayon's threads. A short job called from a thread
//! outside the pool is not handed over whole: the caller computes the first block itself
//! and spins for the others, as an OpenMP thread team does.
//!
//! Handing a job to the pool and sleeping until it is done costs a wake-up each way; for a
//! 256×256 sgemm (about 0.1 ms) that was 15% of the time in paired benchmark runs
//! (docs/benchmarks.md, stop 12). For long jobs the hand-over is cheap and a spinning
//! caller only competes with the workers, so they keep rayon's usual path.

use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a caller from outside the pool spins for the pool's share before it blocks.
const SPIN: Duration = Duration::from_micros(200);

/// Runs `f` on every item in parallel and returns the first error (with several, any
/// one of them). When `short` and the calling thread is outside rayon's pool, the first
/// item runs on the calling thread, which then spins (at most [`SPIN`]) until the pool
/// has run the rest.
pub(crate) fn try_for_each<I, E, F>(items: &mut [I], short: bool, f: F) -> Result<(), E>
where
    I: Send,
    E: Send,
    F: Fn(&mut I) -> Result<(), E> + Sync,
{
    if !short || rayon::current_thread_index().is_some() || items.len() < 2 {
        return items.par_iter_mut().try_for_each(&f);
    }
    let (first, rest) = items.split_at_mut(1);
    let done = AtomicBool::new(false);
    let mut rest_result = Ok(());
    let first_result = rayon::in_place_scope(|scope| {
        scope.spawn(|_| {
            rest_result = rest.par_iter_mut().try_for_each(&f);
            done.store(true, Ordering::Release);
        });
        let result = f(&mut first[0]);
        let start = Instant::now();
        while !done.load(Ordering::Acquire) && start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        // The scope itself waits for the spawned half if the spin gave up.
        result
    });
    first_result.and(rest_result)
}

#[cfg(test)]
mod tests {
    use super::try_for_each;

    fn run(items: usize, short: bool, fail_at: Option<usize>) -> (Result<(), usize>, Vec<usize>) {
        let mut v: Vec<(usize, usize)> = (0..items).map(|i| (i, 0)).collect();
        let r = try_for_each(&mut v, short, |(i, out)| {
            if Some(*i) == fail_at {
                return Err(*i);
            }
            *out = *i * 10;
            Ok(())
        });
        (r, v.into_iter().map(|(_, o)| o).collect())
    }

    #[test]
    fn every_item_runs_once_from_outside_and_inside_the_pool() {
        for short in [false, true] {
            for items in [0, 1, 2, 3, 7] {
                let want: Vec<usize> = (0..items).map(|i| i * 10).collect();
                assert_eq!(run(items, short, None), (Ok(()), want.clone()));
                let inside = rayon::scope(|_| run(items, short, None));
                assert_eq!(inside, (Ok(()), want));
            }
        }
    }

    #[test]
    fn an_error_in_either_part_is_returned() {
        for short in [false, true] {
            // The first item runs on the caller, the others on the pool.
            assert_eq!(run(3, short, Some(0)).0, Err(0));
            assert_eq!(run(3, short, Some(2)).0, Err(2));
        }
    }
}
