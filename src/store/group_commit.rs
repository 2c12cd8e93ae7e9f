//! Group commit: writes that arrive together are stored by one statement in one
//! transaction, so that a burst of case submissions pays for one commit (one WAL flush,
//! one round trip, one executor start) instead of one each.
//!
//! There is no timer and no batching delay: a write that finds a flush slot free is
//! flushed at once, alone; only writes that arrive while every slot is busy wait, and
//! they are flushed together as soon as a slot frees. Light load keeps the latency of a
//! single insert; heavy load grows the batches by itself.
//!
//! Each flush runs as its own task, so a caller that gives up (a client that hangs up)
//! does not cancel the writes of the others it was batched with: a write that was
//! handed over completes, and its result is simply not read.

use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Stores a batch of writes; answers one result per write, in order.
pub type Flush<T, R> = Arc<dyn Fn(Vec<T>) -> BoxFuture<'static, Vec<R>> + Send + Sync>;

/// Writes waiting to be flushed, and how many flushes are under way.
struct Queue<T, R> {
    waiting: Vec<(T, oneshot::Sender<R>)>,
    flushing: usize,
}

/// Batches concurrent writes (see the module documentation).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use wangge::store::group_commit::GroupCommit;
/// let doubler = GroupCommit::new(2, 100, Arc::new(|batch: Vec<i32>| {
///     Box::pin(async move { batch.into_iter().map(|n| n * 2).collect() }) as _
/// }));
/// assert_eq!(doubler.submit(21).await, Some(42));
/// # });
/// ```
pub struct GroupCommit<T, R> {
    queue: Mutex<Queue<T, R>>,
    flushes: usize,
    batch: usize,
    flush: Flush<T, R>,
}

impl<T, R> GroupCommit<T, R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<T, R>> {
        // The queue is only pushed to and drained; a panic elsewhere cannot leave it
        // half-changed, so a poisoned lock is still sound.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// At most `flushes` batches under way at once (e.g. the connections worth using
    /// for writes), each of at most `batch` writes.
    pub fn new(flushes: usize, batch: usize, flush: Flush<T, R>) -> Arc<Self> {
        Arc::new(GroupCommit {
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                flushing: 0,
            }),
            flushes: flushes.max(1),
            batch: batch.max(1),
            flush,
        })
    }

    /// Stores `item` with whatever else is waiting and answers its result; `None` only
    /// if the flush panicked or the runtime is shutting down.
    pub async fn submit(self: &Arc<Self>, item: T) -> Option<R> {
        let (answer, result) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push((item, answer));
            let start = queue.flushing < self.flushes;
            if start {
                queue.flushing += 1;
            }
            start
        };
        if start {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.flush_until_empty().await });
        }
        result.await.ok()
    }

    async fn flush_until_empty(self: Arc<Self>) {
        // Gives the slot back even if a flush panics, so that later writes still start one.
        struct Slot<'a, T, R>(&'a GroupCommit<T, R>);
        impl<T, R> Drop for Slot<'_, T, R> {
            fn drop(&mut self) {
                self.0.lock().flushing -= 1;
            }
        }
        let _slot = Slot(&*self);
        loop {
            let taken: Vec<_> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    return;
                }
                let n = queue.waiting.len().min(self.batch);
                queue.waiting.drain(..n).collect()
            };
            let (items, answers): (Vec<T>, Vec<_>) = taken.into_iter().unzip();
            let results = (self.flush)(items).await;
            for (answer, result) in answers.into_iter().zip(results) {
                // The caller may have gone; the write is stored all the same.
                let _ = answer.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn recording(
        sizes: Arc<Mutex<Vec<usize>>>,
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    ) -> Flush<u32, u32> {
        Arc::new(move |batch: Vec<u32>| {
            let (sizes, running, most) = (sizes.clone(), running.clone(), most.clone());
            Box::pin(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                sizes.lock().unwrap().push(batch.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                batch.into_iter().map(|n| n + 1000).collect()
            })
        })
    }

    #[tokio::test]
    async fn a_lone_write_is_flushed_at_once_and_alone() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let group = GroupCommit::new(
            2,
            50,
            recording(sizes.clone(), Default::default(), Default::default()),
        );
        assert_eq!(group.submit(1).await, Some(1001));
        assert_eq!(group.submit(2).await, Some(1002));
        assert_eq!(*sizes.lock().unwrap(), vec![1, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_flushes_each_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let most = Arc::new(AtomicUsize::new(0));
        let group = GroupCommit::new(
            3,
            40,
            recording(sizes.clone(), Default::default(), most.clone()),
        );
        let tasks: Vec<_> = (0..500u32)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { (n, group.submit(n).await) })
            })
            .collect();
        for task in tasks {
            let (n, answer) = task.await.unwrap();
            assert_eq!(answer, Some(n + 1000));
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 500);
        assert!(sizes.iter().all(|&s| (1..=40).contains(&s)), "{sizes:?}");
        assert!(sizes.len() < 100, "500 writes took {} flushes", sizes.len());
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(group.lock().flushing, 0);
    }

    #[tokio::test]
    async fn a_write_whose_caller_gave_up_is_still_flushed() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let group = GroupCommit::new(
            1,
            10,
            recording(sizes.clone(), Default::default(), Default::default()),
        );
        let abandoned = tokio::time::timeout(Duration::from_millis(1), group.submit(7)).await;
        assert!(abandoned.is_err());
        assert_eq!(group.submit(8).await, Some(1008));
        assert_eq!(sizes.lock().unwrap().iter().sum::<usize>(), 2);
    }

    #[tokio::test]
    async fn a_panicking_flush_fails_its_writes_and_frees_its_slot() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let group: Arc<GroupCommit<u32, u32>> = GroupCommit::new(
            1,
            10,
            Arc::new(move |batch: Vec<u32>| {
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                Box::pin(async move {
                    assert!(!first, "the first flush fails");
                    batch
                })
            }),
        );
        assert_eq!(group.submit(1).await, None);
        assert_eq!(group.submit(2).await, Some(2));
    }
}
