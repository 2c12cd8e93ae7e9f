//! The grids every lookup sees: a [`GridLocator`] built from the store's current grids,
//! swapped whole when a plan is activated. Readers hold an `Arc` of the snapshot they
//! started with, so a swap never blocks or tears a lookup.

use crate::domain::{Level, RegionRef};
use crate::store::{Store, StoreError};
use crate::workflow::locate::GridLocator;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The current snapshot, replaceable.
pub struct LiveGrids {
    current: RwLock<Arc<GridLocator>>,
}

impl LiveGrids {
    /// Loads the current grids of both layers.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(LiveGrids {
            current: RwLock::new(Arc::new(load_locator(store).await?)),
        })
    }

    /// The snapshot lookups should use now.
    pub fn snapshot(&self) -> Arc<GridLocator> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds from the store and swaps the snapshot in (after an activation).
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let fresh = Arc::new(load_locator(store).await?);
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

/// Builds a locator from the current grids, with community, township and county named
/// from the stored regions.
pub async fn load_locator(store: &dyn Store) -> Result<GridLocator, StoreError> {
    Ok(load_locator_timed(store).await?.0)
}

/// Where loading spends its time.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadTimings {
    /// Query, transfer and WKB decoding.
    pub fetch: std::time::Duration,
    /// Building the partitions.
    pub index: std::time::Duration,
}

/// [`load_locator`], with timings.
pub async fn load_locator_timed(
    store: &dyn Store,
) -> Result<(GridLocator, LoadTimings), StoreError> {
    let t = std::time::Instant::now();
    let versions = store.grids(None, None, None).await?;
    let names: HashMap<String, String> = store
        .regions(None)
        .await?
        .into_iter()
        .map(|r| (r.code, r.name))
        .collect();
    let grids: Vec<_> = versions
        .into_iter()
        .map(|v| {
            let ancestors = [Level::Community, Level::Township, Level::County]
                .into_iter()
                .filter_map(|level| {
                    let code = v.code.get(..level.code_len())?.to_string();
                    Some(RegionRef {
                        level,
                        name: names.get(&code).cloned(),
                        code,
                    })
                })
                .collect();
            let mut g = v.into_grid();
            g.ancestors = ancestors;
            g
        })
        .collect();
    let fetch = t.elapsed();
    let locator = GridLocator::new(grids);
    Ok((
        locator,
        LoadTimings {
            fetch,
            index: t.elapsed() - fetch,
        },
    ))
}
