//! Reading every grid version of the city on parallel connections.
//!
//! One query streams 100 000 boundaries through one connection and decodes them on one
//! thread; split into id ranges, each read on its own connection and decoded on its own
//! runtime worker, the whole read takes about half as long on two cores. Separate
//! connections see separate snapshots, so the caller compares the grids' version before
//! and after and reads again if an activation committed in between.

use super::{GridVersion, Store, StoreError, StoreResult};
use std::future::Future;

/// [`Store::grids`] for either backend: `read(like, range)` reads the matching grid
/// versions whose ids lie in `range`, `id_bounds()` answers the smallest and largest
/// grid version id. A subtree (`under`) is one read; the whole city is read in id
/// ranges at once, again if the grids' version moved meanwhile. Sorted by code, then id.
pub(crate) async fn grids<S, B, BFut, R, RFut>(
    store: &S,
    under: Option<&str>,
    id_bounds: B,
    read: R,
) -> StoreResult<Vec<GridVersion>>
where
    S: Store + ?Sized,
    B: Fn() -> BFut,
    BFut: Future<Output = StoreResult<(Option<i64>, Option<i64>)>>,
    R: Fn(String, (i64, i64)) -> RFut,
    RFut: Future<Output = StoreResult<Vec<GridVersion>>> + Send + 'static,
{
    let like = super::like_prefix(under);
    let mut grids = if under.is_some() {
        read(like, (i64::MIN, i64::MAX)).await?
    } else {
        loop {
            let version = store.grids_version().await?;
            let (Some(lo), Some(hi)) = id_bounds().await? else {
                return Ok(Vec::new());
            };
            let ranges = id_ranges(lo, hi, parallel_reads());
            let grids = read_ranges(ranges, |range| read(like.clone(), range)).await?;
            if store.grids_version().await? == version {
                break grids;
            }
        }
    };
    // Sorted here, not in SQL: sorting rows that carry whole boundaries would make
    // the database spill hundreds of megabytes to a temporary sort.
    grids.sort_unstable_by(|a, b| a.code.cmp(&b.code).then(a.id.cmp(&b.id)));
    Ok(grids)
}

/// Half-open id ranges `[from, to)` covering `lo..=hi` in `parts` pieces (fewer when
/// the span is small).
fn id_ranges(lo: i64, hi: i64, parts: usize) -> Vec<(i64, i64)> {
    let span = (hi as i128 - lo as i128 + 1).max(1);
    let parts = (parts.max(1) as i128).min(span);
    (0..parts)
        .map(|i| {
            let from = lo as i128 + span * i / parts;
            let to = lo as i128 + span * (i + 1) / parts;
            (from as i64, to as i64)
        })
        .collect()
}

/// How many ranges to read at once: one per core, at most four.
fn parallel_reads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Runs `read` for every range as its own task and concatenates the results in range
/// order.
async fn read_ranges<F, Fut>(ranges: Vec<(i64, i64)>, read: F) -> StoreResult<Vec<GridVersion>>
where
    F: Fn((i64, i64)) -> Fut,
    Fut: Future<Output = StoreResult<Vec<GridVersion>>> + Send + 'static,
{
    let tasks: Vec<_> = ranges
        .into_iter()
        .map(|range| tokio::spawn(read(range)))
        .collect();
    let mut grids = Vec::new();
    for task in tasks {
        let part = task
            .await
            .map_err(|e| StoreError::Corrupt(format!("reading grids failed: {e}")))??;
        if grids.is_empty() {
            grids = part;
        } else {
            grids.extend(part);
        }
    }
    Ok(grids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_id_once() {
        for (lo, hi, parts) in [
            (1, 100, 2),
            (5, 5, 4),
            (1, 3, 4),
            (-10, 10, 3),
            (1, 1_000_001, 4),
        ] {
            let ranges = id_ranges(lo, hi, parts);
            assert_eq!(ranges.first().map(|r| r.0), Some(lo));
            assert_eq!(ranges.last().map(|r| r.1), Some(hi + 1));
            assert!(
                ranges
                    .windows(2)
                    .all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1)
            );
            assert!(ranges.len() <= parts);
        }
    }
}
