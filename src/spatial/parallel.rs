//! Splitting index builds over the machine's cores, deterministically: work runs on
//! contiguous ranges and the results come back in range order, so what is built does
//! not depend on the number of threads.

/// Threads for building an index of `n` polygons: one for small inputs (spawning costs
/// more than it saves), else what the machine offers, at most 8.
pub(crate) fn build_threads(n: usize) -> usize {
    if n < 2_000 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |t| t.get().min(8))
}

/// Runs `work` on `threads` contiguous ranges of `0..n` and returns the results in range
/// order.
pub(crate) fn in_parallel<T: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return vec![work(0..n)];
    }
    let step = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                // With more threads than items the last ranges are empty.
                s.spawn(move || work((t * step).min(n)..((t + 1) * step).min(n)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Runs `a` and `b`, on two threads when `threads` allows more than one.
pub(crate) fn join<A: Send, B: Send>(
    threads: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads <= 1 {
        return (a(), b());
    }
    std::thread::scope(|s| {
        let hb = s.spawn(b);
        let ra = a();
        (
            ra,
            hb.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once_in_order() {
        for threads in [1, 2, 3, 8] {
            let parts = in_parallel(10, threads, |r| r.collect::<Vec<_>>());
            assert_eq!(parts.concat(), (0..10).collect::<Vec<_>>());
        }
        assert_eq!(in_parallel(0, 4, |r| r.len()), vec![0]);
        // 10 items on 8 threads: steps of 2, so threads 5 to 7 get nothing.
        let parts = in_parallel(10, 8, |r| r.collect::<Vec<_>>());
        assert_eq!(parts.concat(), (0..10).collect::<Vec<_>>());
    }
}
