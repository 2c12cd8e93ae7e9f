//! Grids and their layers.

use super::region::RegionRef;
use geo_types::MultiPolygon;
use serde::{Deserialize, Serialize};

/// Which tiling a grid belongs to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Comprehensive grids tile their community or village exactly.
    #[default]
    Comprehensive,
    /// Dedicated grids (industrial park, school, market…) may lie over comprehensive
    /// grids, but not over each other.
    Dedicated,
}

impl Layer {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Comprehensive => "comprehensive",
            Layer::Dedicated => "dedicated",
        }
    }
}

impl std::str::FromStr for Layer {
    type Err = super::Msg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "comprehensive" | "综合网格" | "" => Ok(Layer::Comprehensive),
            "dedicated" | "专属网格" => Ok(Layer::Dedicated),
            other => Err(crate::msg!(
                "unknown grid layer {other:?}: expected comprehensive or dedicated",
                "未知的网格类别 {other:?}：应为综合网格（comprehensive）或专属网格（dedicated）"
            )),
        }
    }
}

/// The longest grid name a plan may carry (the public card shows it whole).
pub const MAX_GRID_NAME_CHARS: usize = 100;

/// The most vertices one grid may have: real grid boundaries have hundreds to a few
/// thousand; beyond this a boundary is a digitising accident (or an attack on the
/// checks' time) and should be simplified first.
pub const MAX_GRID_VERTICES: usize = 20_000;

/// A grid with its boundary (CGCS2000 lon/lat, right-hand rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The grid's id in its source: normally its 15-digit code.
    pub id: String,
    pub name: Option<String>,
    pub layer: Layer,
    /// Code of the community/village the grid belongs to, when known.
    pub parent: Option<String>,
    /// Community, township, county (nearest first), when known.
    pub ancestors: Vec<RegionRef>,
    pub boundary: MultiPolygon<f64>,
    /// Other properties of the source feature.
    pub properties: serde_json::Map<String, serde_json::Value>,
}
