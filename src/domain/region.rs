//! The administrative hierarchy and its codes.
//!
//! Codes follow the national administrative-division style: a 6-digit county code
//! (e.g. `371602`, Bincheng District), 3 more digits for a township or sub-district,
//! 3 for a community or village, and a 3-digit grid sequence: a grid code has 15 digits.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A level of the hierarchy, from the city down to the grid.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Prefecture-level city (地级市), e.g. Binzhou.
    City,
    /// County, district or county-level city (区/县/县级市).
    County,
    /// Township or sub-district (乡镇/街道).
    Township,
    /// Urban community or administrative village (社区/村).
    Community,
    /// Grid (网格).
    Grid,
}

impl Level {
    /// Number of digits of a code at this level.
    pub fn code_len(self) -> usize {
        match self {
            Level::City => 4,
            Level::County => 6,
            Level::Township => 9,
            Level::Community => 12,
            Level::Grid => 15,
        }
    }

    /// The level a code of `len` digits belongs to.
    pub fn from_code_len(len: usize) -> Option<Level> {
        [
            Level::City,
            Level::County,
            Level::Township,
            Level::Community,
            Level::Grid,
        ]
        .into_iter()
        .find(|l| l.code_len() == len)
    }

    /// The level directly below, if any.
    pub fn child(self) -> Option<Level> {
        match self {
            Level::City => Some(Level::County),
            Level::County => Some(Level::Township),
            Level::Township => Some(Level::Community),
            Level::Community => Some(Level::Grid),
            Level::Grid => None,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::County => "county",
            Level::Township => "township",
            Level::Community => "community",
            Level::Grid => "grid",
        }
    }
}

/// A validated region or grid code: all digits, with the length of its level.
///
/// ```
/// use wangge::domain::{RegionCode, Level};
/// let grid: RegionCode = "371602001002003".parse().unwrap();
/// assert_eq!(grid.level(), Level::Grid);
/// assert_eq!(grid.parent().unwrap().as_str(), "371602001002");
/// assert_eq!(RegionCode::child("371602001002".parse().unwrap(), 3).unwrap().as_str(), "371602001002003");
/// assert!("37160200100200".parse::<RegionCode>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

/// A code that is not a valid region or grid code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a region code: expected 4, 6, 9, 12 or 15 digits")]
pub struct BadCode(pub String);

impl super::Localised for BadCode {
    fn zh(&self) -> String {
        format!("{:?} 不是区划编码：应为 4、6、9、12 或 15 位数字", self.0)
    }
}

impl RegionCode {
    /// The level the code's length denotes.
    pub fn level(&self) -> Level {
        Level::from_code_len(self.0.len()).unwrap_or(Level::Grid)
    }

    /// The code of the enclosing region.
    pub fn parent(&self) -> Option<RegionCode> {
        let len = match self.level() {
            Level::City => return None,
            Level::County => 4,
            l => l.code_len() - 3,
        };
        Some(RegionCode(self.0[..len].to_string()))
    }

    /// The code of the `seq`-th child (1-based) of `parent`, when it fits in 3 digits.
    pub fn child(parent: RegionCode, seq: u32) -> Option<RegionCode> {
        let level = parent.level().child()?;
        if level == Level::County || !(1..=999).contains(&seq) {
            return None;
        }
        Some(RegionCode(format!("{}{seq:03}", parent.0)))
    }

    /// The code itself or its ancestor at `level` (`None` below the code's own level).
    ///
    /// ```
    /// use wangge::domain::{Level, RegionCode};
    /// let grid: RegionCode = "371602001001003".parse().unwrap();
    /// assert_eq!(grid.at(Level::County).unwrap().as_str(), "371602");
    /// assert_eq!(grid.at(Level::City).unwrap().as_str(), "3716");
    /// ```
    pub fn at(&self, level: Level) -> Option<RegionCode> {
        (level.code_len() <= self.0.len())
            .then(|| RegionCode(self.0[..level.code_len()].to_string()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for RegionCode {
    type Err = BadCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Level::from_code_len(s.len()).is_some() && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(RegionCode(s.to_string()))
        } else {
            Err(BadCode(s.to_string()))
        }
    }
}

impl TryFrom<String> for RegionCode {
    type Error = BadCode;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RegionCode> for String {
    fn from(c: RegionCode) -> String {
        c.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region named by level, code and name: an ancestor of a grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRef {
    pub level: Level,
    pub code: String,
    pub name: Option<String>,
}
