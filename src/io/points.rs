//! Point lists for batch location: CSV with `lon,lat` per line.

use super::geojson::{InputError, check_lon_lat};
use geo_types::Coord;

/// Parses `lon,lat` lines (further columns ignored). A first line that does not start
/// with a number is taken as a header; blank lines and `#` comments are skipped.
///
/// ```
/// let pts = wangge::io::points::parse_csv("lon,lat\n118.0,37.4\n\n118.1,37.5,x\n", "pts.csv").unwrap();
/// assert_eq!(pts.len(), 2);
/// ```
pub fn parse_csv(text: &str, path: &str) -> Result<Vec<Coord<f64>>, InputError> {
    parse_csv_in(text, path, true)
}

/// Like [`parse_csv`]; `lon_lat` false accepts any finite pair (projected
/// coordinates, e.g. Gauss–Krüger eastings and northings).
pub fn parse_csv_in(text: &str, path: &str, lon_lat: bool) -> Result<Vec<Coord<f64>>, InputError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split(',').map(str::trim);
        let (a, b) = (cols.next().unwrap_or(""), cols.next().unwrap_or(""));
        let err = |message: String| InputError::Points {
            path: path.to_string(),
            line: i + 1,
            message,
        };
        match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => {
                if lon_lat {
                    check_lon_lat(x, y).map_err(|p| err(p.to_string()))?;
                } else if !x.is_finite() || !y.is_finite() {
                    return Err(err("coordinate is not a finite number".into()));
                }
                out.push(Coord { x, y });
            }
            _ if i == 0 => continue,
            _ => return Err(err(format!("expected lon,lat, found {line:?}"))),
        }
    }
    Ok(out)
}

/// Parses `X,Y` as given on a command line (`lon_lat`: check the ranges).
pub fn parse_pair(s: &str, lon_lat: bool) -> Result<Coord<f64>, InputError> {
    let v = parse_csv_in(&format!("x,y\n{s}"), "--point", lon_lat)?;
    v.first().copied().ok_or_else(|| InputError::Points {
        path: "--point".into(),
        line: 1,
        message: format!("expected X,Y, found {s:?}"),
    })
}
