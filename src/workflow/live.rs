//! What every lookup sees: a [`Snapshot`] of the current grids (a [`GridLocator`]), the
//! regions, members and supervision phones, built from the store and swapped whole when
//! a plan is activated. Readers hold an `Arc` of the snapshot they started with, so a
//! swap never blocks or tears a lookup.

use crate::domain::{Grid, Level, RegionRef};
use crate::spatial::tiles::TileId;
use crate::store::{Member, RegionRecord, Store, StoreError};
use crate::workflow::duty;
use crate::workflow::locate::GridLocator;
use crate::workflow::tiles::{TileIndex, TileLayer};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// One consistent view of the current grids and who serves them.
pub struct Snapshot {
    pub locator: GridLocator,
    /// Every region, ordered by code.
    pub regions: Vec<RegionRecord>,
    /// [`Store::grids_version`] when loading started.
    pub version: i64,
    /// [`Store::directory_version`] when loading started.
    pub directory_version: i64,
    pub loaded_at: DateTime<Utc>,
    grid_by_code: HashMap<String, u32>,
    region_by_code: HashMap<String, u32>,
    members: HashMap<String, Vec<Member>>,
    phones: HashMap<String, String>,
    /// Built on the first map tile asked of this snapshot.
    tiles: OnceLock<TileIndex>,
}

impl Snapshot {
    /// The current grid with this code.
    pub fn grid(&self, code: &str) -> Option<&Grid> {
        let i = *self.grid_by_code.get(code)?;
        self.locator.grids().get(i as usize)
    }

    /// A point inside the current grid `code` that the lookup answers with that grid:
    /// where a report's pin starts (see [`GridLocator::point_inside`]).
    pub fn point_inside(&self, code: &str) -> Option<geo_types::Coord<f64>> {
        let i = *self.grid_by_code.get(code)?;
        self.locator.point_inside(i)
    }

    /// The region with this code.
    pub fn region(&self, code: &str) -> Option<&RegionRecord> {
        let i = *self.region_by_code.get(code)?;
        self.regions.get(i as usize)
    }

    /// Members serving a grid or region code.
    pub fn members(&self, code: &str) -> &[Member] {
        self.members.get(code).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The member to call in grid `code` at `at` (see [`duty::on_duty`]).
    pub fn on_duty(&self, code: &str, at: DateTime<Utc>) -> Option<&Member> {
        duty::on_duty(self.members(code), at)
    }

    /// A vector tile of the current grids or regions (see [`crate::workflow::tiles`]).
    pub fn tile(&self, layer: TileLayer, tile: TileId) -> Vec<u8> {
        let index = self
            .tiles
            .get_or_init(|| TileIndex::new(self.locator.grids(), &self.regions));
        index.render(self.locator.grids(), &self.regions, layer, tile)
    }

    /// The supervision phone of a grid: its own, else its nearest ancestor's.
    pub fn supervision_phone(&self, code: &str) -> Option<&str> {
        let mut scopes = vec![code];
        if let Some(grid) = self.grid(code) {
            scopes.extend(grid.ancestors.iter().map(|a| a.code.as_str()));
        }
        scopes.push(code.get(..Level::City.code_len()).unwrap_or(code));
        scopes
            .into_iter()
            .find_map(|s| self.phones.get(s).map(String::as_str))
    }
}

/// The current snapshot, replaceable.
pub struct LiveGrids {
    current: RwLock<Arc<Snapshot>>,
}

impl LiveGrids {
    /// Loads the current grids of both layers.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(LiveGrids {
            current: RwLock::new(Arc::new(load_snapshot(store).await?)),
        })
    }

    /// The snapshot lookups should use now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds from the store and swaps the snapshot in (after an activation).
    pub async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let fresh = Arc::new(load_snapshot(store).await?);
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Reloads only when the store's grids, members or phones changed since the snapshot
    /// was loaded, or when `force`. Returns whether it did.
    pub async fn refresh(&self, store: &dyn Store, force: bool) -> Result<bool, StoreError> {
        let current = self.snapshot();
        if !force
            && store.grids_version().await? == current.version
            && store.directory_version().await? == current.directory_version
        {
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }
}

/// Builds a snapshot from the store.
pub async fn load_snapshot(store: &dyn Store) -> Result<Snapshot, StoreError> {
    let version = store.grids_version().await?;
    let directory_version = store.directory_version().await?;
    let regions = store.regions(None).await?;
    let locator = GridLocator::new(current_grids(store, &regions).await?);
    let mut members: HashMap<String, Vec<Member>> = HashMap::new();
    for m in store.all_members().await? {
        members.entry(m.scope_code.clone()).or_default().push(m);
    }
    let phones = store.supervision_phones().await?.into_iter().collect();
    let grid_by_code = locator
        .grids()
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.clone(), i as u32))
        .collect();
    let region_by_code = regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.code.clone(), i as u32))
        .collect();
    Ok(Snapshot {
        locator,
        regions,
        version,
        directory_version,
        loaded_at: crate::domain::now(),
        grid_by_code,
        region_by_code,
        members,
        phones,
        tiles: OnceLock::new(),
    })
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
    let regions = store.regions(None).await?;
    let grids = current_grids(store, &regions).await?;
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

/// Community, township and county of a grid code, nearest first, named by `name_of`.
pub fn ancestors_of(code: &str, name_of: impl Fn(&str) -> Option<String>) -> Vec<RegionRef> {
    [Level::Community, Level::Township, Level::County]
        .into_iter()
        .filter_map(|level| {
            let code = code.get(..level.code_len())?;
            Some(RegionRef {
                level,
                name: name_of(code),
                code: code.to_string(),
            })
        })
        .collect()
}

/// The current grids with their ancestors named from `regions`.
async fn current_grids(
    store: &dyn Store,
    regions: &[RegionRecord],
) -> Result<Vec<Grid>, StoreError> {
    let names: HashMap<&str, &str> = regions
        .iter()
        .map(|r| (r.code.as_str(), r.name.as_str()))
        .collect();
    let versions = store
        .grids(crate::store::Validity::Current, None, None)
        .await?;
    Ok(versions
        .into_iter()
        .map(|v| {
            let ancestors = ancestors_of(&v.code, |c| names.get(c).map(|n| n.to_string()));
            let mut g = v.into_grid();
            g.ancestors = ancestors;
            g
        })
        .collect())
}
