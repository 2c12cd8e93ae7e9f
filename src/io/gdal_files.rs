//! Boundary files through GDAL: GeoJSON, Shapefile (also zipped), GeoPackage, KML in;
//! GeoJSON, GeoPackage, Shapefile out. Coordinates are transformed with PROJ to
//! CGCS2000 lon/lat (EPSG:4490) from the file's CRS or the one the caller names.
//!
//! Attribute text must arrive as real text: a Shapefile's encoding comes from
//! `--encoding`, else its `.cpg`, else its DBF language id; a file that declares none is
//! read as raw bytes and accepted only if they are UTF-8. Anything else is an error
//! naming the feature, never silent mojibake.

use crate::domain::{Grid, Layer, Localised, Msg};
use crate::msg;
use crate::spatial::crs::CoordSys;
use crate::spatial::crs::proj::{ProjError, ToCgcs2000};
use gdal::spatial_ref::{AxisMappingStrategy, SpatialRef};
use gdal::vector::{Feature, Geometry, LayerAccess, LayerOptions, OGRFieldType};
use gdal::{Dataset, DatasetOptions, DriverManager, GdalOpenFlags};
use geo_types::{Coord, MultiPolygon};
use geozero::ToGeo;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {message}")]
    Open { path: PathBuf, message: Msg },
    #[error("{path} has no layer {layer:?} (layers: {available})")]
    NoSuchLayer {
        path: PathBuf,
        layer: String,
        available: String,
    },
    #[error("feature {feature}: {message}")]
    Feature { feature: String, message: Msg },
    /// `field` is the attribute's name as read under `likely` (the encoding its bytes
    /// make sense in), or with replacement characters when none fits.
    #[error(
        "feature {feature}: attribute {field:?} is not valid UTF-8 and the file declares no \
         encoding (no .cpg){}",
        encoding_advice(likely.as_deref(), *asked_by)
    )]
    UndeclaredEncoding {
        feature: String,
        field: String,
        likely: Option<String>,
        asked_by: OptionStyle,
    },
    #[error(
        "{path} has no coordinate system and its coordinates are not longitude/latitude \
         (e.g. {x:.1}, {y:.1}){hint}; {}",
        asked_by.advice("crs", suggested.as_deref().unwrap_or("the file's CRS (e.g. EPSG:4548)"))
    )]
    NoCrs {
        path: PathBuf,
        x: f64,
        y: f64,
        hint: Msg,
        /// The CRS the hint points to, when it names one.
        suggested: Option<String>,
        asked_by: OptionStyle,
    },
    #[error(transparent)]
    Proj(#[from] ProjError),
    #[error("GDAL: {0}")]
    Gdal(#[from] gdal::errors::GdalError),
    #[error("unknown output format {0:?}: expected geojson, gpkg or shp")]
    UnknownFormat(String),
    /// A file wangge does not open (HTTP 415).
    #[error("{0}")]
    Unsupported(Msg),
}

impl Localised for FileError {
    fn zh(&self) -> String {
        match self {
            FileError::Open { path, message } => {
                format!("无法打开 {}：{}", path.display(), message.zh())
            }
            FileError::NoSuchLayer {
                path,
                layer,
                available,
            } => format!(
                "{} 中没有图层 {layer:?}（现有图层：{available}）",
                path.display()
            ),
            FileError::Feature { feature, message } => {
                format!("要素 {feature}：{}", message.zh())
            }
            FileError::UndeclaredEncoding {
                feature,
                field,
                likely,
                asked_by,
            } => {
                let advice = match likely {
                    Some(e) => format!("其字节按 {e} 可读：{}", asked_by.advice_zh("encoding", e)),
                    None => asked_by.advice_zh("encoding", "文件的编码（如 GBK、GB18030 或 Big5）"),
                };
                format!(
                    "要素 {feature}：属性 {field:?} 不是有效的 UTF-8，且文件未声明编码（没有 .cpg）；{advice}"
                )
            }
            FileError::NoCrs {
                path,
                x,
                y,
                hint,
                suggested,
                asked_by,
            } => format!(
                "{} 没有坐标系，其坐标也不是经纬度（例如 {x:.1}, {y:.1}）{}；{}",
                path.display(),
                hint.zh(),
                asked_by.advice_zh(
                    "crs",
                    suggested
                        .as_deref()
                        .unwrap_or("文件的坐标系（例如 EPSG:4548）")
                )
            ),
            FileError::Proj(e) => e.zh(),
            FileError::Gdal(e) => format!("GDAL：{e}"),
            FileError::UnknownFormat(f) => {
                format!("未知的输出格式 {f:?}：应为 geojson、gpkg 或 shp")
            }
            FileError::Unsupported(m) => m.zh().to_string(),
        }
    }
}

/// How the caller names reading options, so advice names the one they can change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OptionStyle {
    /// Command-line flags (`--encoding GBK`).
    #[default]
    Flags,
    /// Fields of the upload form (`encoding` = `GBK`).
    FormFields,
}

impl OptionStyle {
    /// "pass --crs …" or "set the form field `crs` to …".
    pub fn advice(self, option: &str, value: &str) -> String {
        match self {
            OptionStyle::Flags => format!("pass --{} {value}", option.replace('_', "-")),
            OptionStyle::FormFields => format!("set the form field `{option}` to {value}"),
        }
    }

    /// [`advice`](Self::advice) in Chinese.
    pub fn advice_zh(self, option: &str, value: &str) -> String {
        match self {
            OptionStyle::Flags => format!("请加上 --{} {value}", option.replace('_', "-")),
            OptionStyle::FormFields => format!("请把表单字段 `{option}` 设为 {value}"),
        }
    }
}

fn encoding_advice(likely: Option<&str>, asked_by: OptionStyle) -> String {
    match likely {
        Some(e) => format!(
            "; its bytes read as {e}: {}",
            asked_by.advice("encoding", e)
        ),
        None => format!(
            "; {}",
            asked_by.advice(
                "encoding",
                "the file's encoding (e.g. GBK, GB18030 or Big5)"
            )
        ),
    }
}

/// The encoding raw attribute bytes make sense in: the Chinese ones a municipality's
/// files come in, tried in order, the first that decodes all of them to text with
/// Chinese characters.
pub fn likely_encoding(samples: &[&[u8]]) -> Option<&'static str> {
    let candidates: [(&'static encoding_rs::Encoding, &'static str); 3] = [
        (encoding_rs::GBK, "GBK"),
        (encoding_rs::GB18030, "GB18030"),
        (encoding_rs::BIG5, "Big5"),
    ];
    candidates.into_iter().find_map(|(encoding, name)| {
        let mut any_han = false;
        for bytes in samples {
            let text = encoding.decode_without_bom_handling_and_without_replacement(bytes)?;
            any_han |= text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        }
        any_han.then_some(name)
    })
}

/// Which attributes mean what, and how to read the file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportOptions {
    /// The only GDAL driver allowed to open the file (uploads name theirs; otherwise any
    /// of [`READ_DRIVERS`]).
    pub driver: Option<String>,
    /// How errors name the file instead of its path (an upload's temporary path means
    /// nothing to its sender and tells an attacker about the server).
    pub display_name: Option<String>,
    /// Grid id/code attribute (default: the first of grid_id, code, id; else the FID).
    pub id_field: Option<String>,
    /// Name attribute (default: name, Name, 名称).
    pub name_field: Option<String>,
    /// Parent community attribute (default: community, parent).
    pub parent_field: Option<String>,
    /// Household count attribute (default: households).
    pub households_field: Option<String>,
    /// Layer attribute with comprehensive/dedicated (default: layer).
    pub layer_field: Option<String>,
    /// The dataset layer to read (default: the first).
    pub source_layer: Option<String>,
    /// Source CRS overriding the file's: anything PROJ accepts, or gcj02/bd09.
    pub crs: Option<String>,
    /// Attribute encoding of a Shapefile (e.g. GBK, GB18030, UTF-8).
    pub encoding: Option<String>,
    /// How the caller names these options (advice in errors uses the same words).
    #[serde(default)]
    pub asked_by: OptionStyle,
    /// The longitude the data should lie near (the plan's scope, the parent file), so
    /// Gauss–Krüger metres without a zone number can be given their likely zone.
    #[serde(default)]
    pub near_lon: Option<f64>,
}

/// What a file held.
#[derive(Debug, Clone)]
pub struct ImportedFile {
    pub grids: Vec<Grid>,
    /// The CRS the coordinates were transformed from.
    pub source_crs: String,
    /// The attribute encoding used, when the format has one.
    pub encoding: Option<String>,
    pub driver: String,
}

/// The GDAL drivers wangge reads boundaries with; no other driver ever opens a file.
pub const READ_DRIVERS: [&str; 4] = ["GeoJSON", "ESRI Shapefile", "GPKG", "KML"];

/// Reads a file from the command line: a zip is unpacked and checked as an upload is
/// (into a temporary directory), anything else is opened where it is.
pub fn read_local_file(
    path: &Path,
    options: &ImportOptions,
    progress: impl FnMut(u64, u64),
) -> Result<ImportedFile, FileError> {
    let zipped = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip") || e.eq_ignore_ascii_case("kmz"));
    if !zipped {
        return read_grids(path, options, progress);
    }
    let dir = tempfile::tempdir().map_err(|e| FileError::Open {
        path: path.to_path_buf(),
        message: msg!("no temporary directory: {e}", "没有临时目录：{e}"),
    })?;
    let copy = dir.path().join("upload.raw");
    std::fs::copy(path, &copy).map_err(|e| FileError::Open {
        path: path.to_path_buf(),
        message: Msg::verbatim(e.to_string()),
    })?;
    let prepared = crate::io::upload::prepare(
        &copy,
        dir.path(),
        &crate::io::upload::UploadLimits::default(),
    )
    .map_err(|e| FileError::Open {
        path: path.to_path_buf(),
        message: Msg::of(&e),
    })?;
    let options = ImportOptions {
        driver: Some(prepared.format.gdal_driver().into()),
        display_name: Some(
            options
                .display_name
                .clone()
                .unwrap_or_else(|| path.display().to_string()),
        ),
        ..options.clone()
    };
    read_grids(&prepared.path, &options, progress)
}

/// Refuses GeoPackages whose schema holds more than tables, indices, R-tree virtual
/// tables and the standard triggers: views, other triggers and other virtual tables
/// (SpatiaLite's VirtualText reads any file) would run the sender's SQL or modules.
fn check_geopackage(dataset: &Dataset, shown: &Path) -> Result<(), FileError> {
    let sql = "SELECT type, name FROM sqlite_master WHERE type NOT IN ('table', 'index', 'trigger') \
               OR (type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' \
                   AND (name NOT LIKE 'rtree\\_%' ESCAPE '\\' OR instr(name, '\"') > 0 \
                        OR instr(upper(name), 'USING') > 0 \
                        OR sql NOT LIKE 'CREATE VIRTUAL TABLE \"' || name || '\" USING rtree(%')) \
               OR (type = 'table' AND sql NOT LIKE 'CREATE TABLE%' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%') \
               OR (type = 'trigger' \
                   AND name NOT LIKE 'rtree\\_%' ESCAPE '\\' AND name NOT LIKE 'gpkg\\_%' ESCAPE '\\' \
                   AND name NOT LIKE 'trigger\\_insert\\_feature\\_count\\_%' ESCAPE '\\' \
                   AND name NOT LIKE 'trigger\\_delete\\_feature\\_count\\_%' ESCAPE '\\')";
    let found = dataset
        .execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT)
        .map_err(|e| FileError::Open {
            path: shown.to_path_buf(),
            message: msg!(
                "not a readable GeoPackage ({e})",
                "不是可读取的 GeoPackage（{e}）"
            ),
        })?;
    if let Some(mut rows) = found
        && let Some(row) = rows.features().next()
    {
        let kind = row.field_as_string(0).ok().flatten().unwrap_or_default();
        let name = row.field_as_string(1).ok().flatten().unwrap_or_default();
        return Err(FileError::Unsupported(msg!(
            "the GeoPackage holds a {kind} {} that is not plain GeoPackage content: views, \
             virtual tables and custom triggers are not accepted",
            "GeoPackage 中有 {kind} {}，不是普通的 GeoPackage 内容：不接受视图、虚拟表和自定义触发器",
            crate::io::upload::quote(&name)
        )));
    }
    Ok(())
}

fn has_cpg(path: &Path) -> bool {
    path.with_extension("cpg").exists() || path.with_extension("CPG").exists()
}

/// The raw bytes of a field's name and of one record's value in a Shapefile's `.dbf`,
/// read from the file itself: GDAL hands text over already decoded, and an error about
/// undecodable text should show it as it was meant.
fn dbf_raw(path: &Path, record: u64, field: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path.with_extension("dbf")).ok()?;
    let mut header = [0u8; 32];
    f.read_exact(&mut header).ok()?;
    let header_len = u16::from_le_bytes([header[8], header[9]]) as u64;
    let record_len = u16::from_le_bytes([header[10], header[11]]) as u64;
    let fields = (header_len.checked_sub(33)? / 32) as usize;
    if field >= fields {
        return None;
    }
    // Each value follows the record's deletion flag and the fields before it.
    let mut offset = 1u64;
    let mut descriptor = [0u8; 32];
    for _ in 0..field {
        f.read_exact(&mut descriptor).ok()?;
        offset += descriptor[16] as u64;
    }
    f.read_exact(&mut descriptor).ok()?;
    let name: Vec<u8> = descriptor[..11]
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .collect();
    let len = descriptor[16] as usize;
    f.seek(SeekFrom::Start(header_len + record * record_len + offset))
        .ok()?;
    let mut value = vec![0u8; len];
    f.read_exact(&mut value).ok()?;
    while value.last() == Some(&b' ') {
        value.pop();
    }
    Some((name, value))
}

/// The undecodable-text error for field `index` of Shapefile record `fid`, its name
/// decoded under the encoding its bytes most likely are.
fn undeclared_encoding(
    path: &Path,
    is_shp: bool,
    fid: u64,
    index: usize,
    lossy_name: &str,
    asked_by: OptionStyle,
) -> FileError {
    let raw = is_shp.then(|| dbf_raw(path, fid, index)).flatten();
    let likely = raw
        .as_ref()
        .and_then(|(name, value)| likely_encoding(&[name, value]));
    let field = match (&raw, likely) {
        (Some((name, _)), Some(e)) => encoding_rs::Encoding::for_label(e.as_bytes())
            .map(|enc| enc.decode_without_bom_handling(name).0.into_owned())
            .unwrap_or_else(|| lossy_name.to_string()),
        _ => lossy_name.to_string(),
    };
    FileError::UndeclaredEncoding {
        feature: format!("#{fid}"),
        field,
        likely: likely.map(str::to_string),
        asked_by,
    }
}

fn dbf_language_id(path: &Path) -> Option<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(path.with_extension("dbf")).ok()?;
    let mut header = [0u8; 30];
    f.read_exact(&mut header).ok()?;
    Some(header[29]).filter(|&id| id != 0)
}

/// Reads grids from any vector file GDAL knows. `progress(done, total)` is called as
/// features are read.
pub fn read_grids(
    path: &Path,
    options: &ImportOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportedFile, FileError> {
    let shown = options
        .display_name
        .as_ref()
        .map_or_else(|| path.to_path_buf(), PathBuf::from);
    // GDAL's messages may carry the path it was given: say the shown name instead.
    let scrub = |message: String| -> String {
        let mut m = message.replace(&*path.to_string_lossy(), &shown.to_string_lossy());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            m = m.replace(&*dir.to_string_lossy(), "");
        }
        m
    };
    if path.to_string_lossy().starts_with("/vsi") {
        return Err(FileError::Unsupported(msg!(
            "GDAL virtual file systems (/vsi…) are not opened",
            "不打开 GDAL 虚拟文件系统（/vsi…）"
        )));
    }
    let drivers: Vec<&str> = match &options.driver {
        Some(d) => READ_DRIVERS.iter().copied().filter(|r| r == d).collect(),
        None => READ_DRIVERS.to_vec(),
    };
    if drivers.is_empty() {
        return Err(FileError::Unsupported(msg!(
            "wangge does not read files with the {} driver",
            "不读取 {} 驱动的文件",
            crate::io::upload::quote(options.driver.as_deref().unwrap_or_default())
        )));
    }
    let is_shp = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("shp"));
    // A loose Shapefile that declares no encoding is read raw (ENCODING=""), so
    // non-UTF-8 bytes show up as such instead of being recoded from an assumed Latin-1.
    // Inside a zip GDAL reads the .cpg itself, and raw bytes are checked all the same.
    let declared = options.encoding.clone().or_else(|| {
        (is_shp && (has_cpg(path) || dbf_language_id(path).is_some())).then(|| "declared".into())
    });
    let encoding_option = match (&options.encoding, &declared) {
        (Some(e), _) => Some(format!("ENCODING={e}")),
        (None, None) if is_shp => Some("ENCODING=".to_string()),
        _ => None,
    };
    let open_options: Vec<&str> = encoding_option.iter().map(String::as_str).collect();
    let dataset = Dataset::open_ex(
        path,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
            allowed_drivers: Some(&drivers),
            open_options: (!open_options.is_empty()).then_some(open_options.as_slice()),
            ..Default::default()
        },
    )
    .map_err(|e| FileError::Open {
        path: shown.clone(),
        message: match e {
            gdal::errors::GdalError::NullPointer { .. } => {
                let (kind, kind_zh) = match options.driver.as_deref() {
                    Some(d) => (d, d),
                    None => (
                        "GeoJSON, Shapefile, GeoPackage or KML",
                        "GeoJSON、Shapefile、GeoPackage 或 KML",
                    ),
                };
                msg!("not a readable {kind} file", "不是可读取的 {kind_zh} 文件")
            }
            other => Msg::verbatim(scrub(other.to_string())),
        },
    })?;
    let driver = dataset.driver().short_name();
    if driver == "GPKG" {
        check_geopackage(&dataset, &shown)?;
    }
    let mut layer = match &options.source_layer {
        Some(name) => dataset
            .layer_by_name(name)
            .map_err(|_| FileError::NoSuchLayer {
                path: shown.clone(),
                layer: name.clone(),
                available: dataset
                    .layers()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
        None => dataset.layer(0).map_err(|e| FileError::Open {
            path: shown.clone(),
            message: {
                let e = scrub(e.to_string());
                msg!("no vector layer: {e}", "没有矢量图层：{e}")
            },
        })?,
    };
    let field_names: Vec<String> = layer.defn().fields().map(|f| f.name()).collect();
    let field_types: Vec<OGRFieldType::Type> =
        layer.defn().fields().map(|f| f.field_type()).collect();
    let find = |explicit: &Option<String>, defaults: &[&str]| -> Option<usize> {
        match explicit {
            Some(name) => field_names
                .iter()
                .position(|f| f.eq_ignore_ascii_case(name)),
            None => defaults
                .iter()
                .find_map(|d| field_names.iter().position(|f| f.eq_ignore_ascii_case(d))),
        }
    };
    for (explicit, what) in [
        (&options.id_field, "--id-field"),
        (&options.name_field, "--name-field"),
        (&options.parent_field, "--parent-field"),
        (&options.households_field, "--households-field"),
        (&options.layer_field, "--layer-field"),
    ] {
        if let Some(name) = explicit
            && find(explicit, &[]).is_none()
        {
            return Err(FileError::Open {
                path: shown.clone(),
                message: msg!(
                    "{what} {name:?} is not a field of the file (fields: {})",
                    "{what} {name:?} 不是文件中的字段（字段有：{}）",
                    field_names.join(", ")
                ),
            });
        }
    }
    // Common English and Chinese field names (and their pinyin initials) are
    // recognised without being named.
    use crate::io::mapping::Role;
    let id_idx = find(&options.id_field, Role::Id.default_fields());
    let name_idx = find(&options.name_field, Role::Name.default_fields());
    let parent_idx = find(&options.parent_field, Role::Parent.default_fields());
    let households_idx = find(&options.households_field, Role::Households.default_fields());
    let layer_idx = find(&options.layer_field, &["layer"]);

    let transform = Transform::new(&shown, options, layer.spatial_ref())?;
    let total = layer.try_feature_count().unwrap_or(0);
    // The count comes from the file's header: reserve for it only within reason.
    let mut grids = Vec::with_capacity(total.min(100_000) as usize);
    for (n, feature) in layer.features().enumerate() {
        let fid = feature.fid().map_or(n as u64, |f| f);
        let feature_name = |id: &str| {
            if id.is_empty() {
                format!("#{fid}")
            } else {
                format!("{} (#{fid})", crate::io::upload::quote(id))
            }
        };
        let text = |idx: Option<usize>| -> Result<Option<String>, FileError> {
            let Some(i) = idx else { return Ok(None) };
            let v = feature.field_as_string(i)?;
            if let Some(s) = &v
                && (s.contains('\u{FFFD}') || field_names[i].contains('\u{FFFD}'))
            {
                return Err(undeclared_encoding(
                    path,
                    is_shp,
                    fid,
                    i,
                    &field_names[i],
                    options.asked_by,
                ));
            }
            Ok(v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        };
        let id = text(id_idx)?.unwrap_or_else(|| fid.to_string());
        let mut properties = Map::new();
        for (i, name) in field_names.iter().enumerate() {
            // Numbers stay numbers; everything else (dates, lists) as GDAL formats it.
            let value = match field_types[i] {
                OGRFieldType::OFTInteger | OGRFieldType::OFTInteger64 => {
                    feature.field_as_integer64(i)?.map(Value::from)
                }
                OGRFieldType::OFTReal => feature.field_as_double(i)?.map(Value::from),
                _ => text(Some(i))?.map(Value::from),
            }
            .unwrap_or(Value::Null);
            properties.insert(name.clone(), value);
        }
        if let Some(h) = households_idx {
            let households = feature.field_as_integer64(h)?;
            properties.insert(
                "households".into(),
                households.map(Value::from).unwrap_or(Value::Null),
            );
        }
        let layer_kind = match text(layer_idx)? {
            Some(l) => l.parse::<Layer>().map_err(|message| FileError::Feature {
                feature: feature_name(&id),
                message,
            })?,
            None => Layer::Comprehensive,
        };
        let geometry = feature.geometry().ok_or_else(|| FileError::Feature {
            feature: feature_name(&id),
            message: msg!("has no geometry", "没有几何图形"),
        })?;
        let mut boundary = polygonal(geometry).map_err(|message| FileError::Feature {
            feature: feature_name(&id),
            message,
        })?;
        transform
            .apply(&mut boundary)
            .map_err(|e| FileError::Feature {
                feature: feature_name(&id),
                message: Msg::of(&e),
            })?;
        crate::spatial::geom::normalise_orientation(&mut boundary);
        grids.push(Grid {
            name: text(name_idx)?,
            parent: text(parent_idx)?,
            layer: layer_kind,
            ancestors: Vec::new(),
            boundary,
            properties,
            id,
        });
        if n % 1024 == 0 {
            progress(n as u64, total);
        }
    }
    progress(grids.len() as u64, total);
    Ok(ImportedFile {
        grids,
        source_crs: transform.describe(),
        encoding: if is_shp {
            Some(match (&options.encoding, declared) {
                (Some(e), _) => e.clone(),
                (None, Some(_)) => "declared by the file (.cpg/LDID)".into(),
                (None, None) => "UTF-8 (undeclared)".into(),
            })
        } else {
            None
        },
        driver,
    })
}

fn polygonal(g: &Geometry) -> Result<MultiPolygon<f64>, Msg> {
    let unreadable =
        |e: &dyn std::fmt::Display| msg!("unreadable geometry: {e}", "几何图形无法读取：{e}");
    let wkb = g.wkb().map_err(|e| unreadable(&e))?;
    let geo = geozero::wkb::Wkb(wkb.as_slice())
        .to_geo()
        .map_err(|e| unreadable(&e))?;
    let mut parts = Vec::new();
    collect_polygons(geo, &mut parts)?;
    if parts.is_empty() {
        return Err(msg!("geometry is empty", "几何图形为空"));
    }
    Ok(MultiPolygon(parts))
}

fn collect_polygons(
    g: geo_types::Geometry<f64>,
    out: &mut Vec<geo_types::Polygon<f64>>,
) -> Result<(), Msg> {
    use geo_types::Geometry as G;
    match g {
        G::Polygon(p) => out.push(p),
        G::MultiPolygon(m) => out.extend(m.0),
        G::GeometryCollection(c) => {
            for g in c.0 {
                collect_polygons(g, out)?;
            }
        }
        other => {
            let (kind, kind_zh) = geometry_kind(&other);
            return Err(msg!(
                "expected a polygon or multipolygon, found a {kind}",
                "应为面或多面，却是{kind_zh}"
            ));
        }
    }
    Ok(())
}

/// A geometry's kind in English and Chinese.
fn geometry_kind(g: &geo_types::Geometry<f64>) -> (&'static str, &'static str) {
    use geo_types::Geometry as G;
    match g {
        G::Point(_) => ("point", "点"),
        G::MultiPoint(_) => ("multipoint", "多点"),
        G::Line(_) | G::LineString(_) => ("linestring", "线"),
        G::MultiLineString(_) => ("multilinestring", "多线"),
        _ => ("non-polygonal geometry", "非面几何"),
    }
}

/// How coordinates get to CGCS2000 lon/lat.
enum Transform {
    /// Already lon/lat on CGCS2000/WGS84.
    Identity(String),
    /// An offset datum (GCJ-02, BD-09), undone by wangge's own conversion.
    Offset(CoordSys),
    /// Anything PROJ knows.
    Proj(String, Box<ToCgcs2000>),
    /// No CRS anywhere: accepted only if every coordinate is plausible lon/lat.
    Unknown {
        path: PathBuf,
        asked_by: OptionStyle,
        near_lon: Option<f64>,
    },
}

impl Transform {
    fn new(
        path: &Path,
        options: &ImportOptions,
        layer_srs: Option<SpatialRef>,
    ) -> Result<Self, FileError> {
        if let Some(name) = options.crs.as_deref() {
            return Ok(match name.parse::<CoordSys>() {
                Ok(CoordSys::Wgs84 | CoordSys::Cgcs2000) => Transform::Identity(name.to_string()),
                Ok(offset) => Transform::Offset(offset),
                Err(_) => Transform::Proj(name.to_string(), Box::new(ToCgcs2000::new(name)?)),
            });
        }
        let Some(mut srs) = layer_srs else {
            return Ok(Transform::Unknown {
                path: path.to_path_buf(),
                asked_by: options.asked_by,
                near_lon: options.near_lon,
            });
        };
        let _ = srs.auto_identify_epsg();
        let code = match (srs.auth_name(), srs.auth_code()) {
            (Some(a), Ok(c)) => Some(format!("{a}:{c}")),
            _ => None,
        };
        if matches!(
            code.as_deref(),
            Some("EPSG:4490" | "EPSG:4326" | "OGC:CRS84")
        ) || (srs.is_geographic()
            && srs
                .name()
                .is_some_and(|n| n.contains("84") || n.contains("2000")))
        {
            return Ok(Transform::Identity(
                code.unwrap_or_else(|| srs.name().unwrap_or_default()),
            ));
        }
        let definition = match &code {
            Some(c) => c.clone(),
            None => srs.to_wkt()?,
        };
        let label = code.unwrap_or_else(|| srs.name().unwrap_or_else(|| "the file's CRS".into()));
        Ok(Transform::Proj(
            label,
            Box::new(ToCgcs2000::new(&definition)?),
        ))
    }

    fn apply(&self, m: &mut MultiPolygon<f64>) -> Result<(), FileError> {
        match self {
            Transform::Identity(_) => Ok(()),
            Transform::Offset(sys) => {
                for_each_coord(m, |c| *c = sys.to_wgs84(*c));
                Ok(())
            }
            Transform::Proj(_, proj) => {
                // One PROJ call for the whole feature, written back in the same order.
                let mut coords = Vec::new();
                for_each_coord(m, |c| coords.push(*c));
                proj.convert_all(&mut coords)?;
                let mut converted = coords.into_iter();
                for_each_coord(m, |c| {
                    if let Some(n) = converted.next() {
                        *c = n;
                    }
                });
                Ok(())
            }
            Transform::Unknown {
                path,
                asked_by,
                near_lon,
            } => {
                let mut bad = None;
                for_each_coord(m, |c| {
                    if bad.is_none() && !(c.x.abs() <= 180.0 && c.y.abs() <= 90.0) {
                        bad = Some(*c);
                    }
                });
                match bad {
                    None => Ok(()),
                    Some(c) => {
                        let (hint, suggested) = gauss_kruger_hint(c, *near_lon);
                        Err(FileError::NoCrs {
                            path: path.clone(),
                            x: c.x,
                            y: c.y,
                            hint,
                            suggested,
                            asked_by: *asked_by,
                        })
                    }
                }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Transform::Identity(name) => format!("{name} (lon/lat, no transformation)"),
            Transform::Offset(sys) => sys.as_str().to_string(),
            Transform::Proj(name, _) => name.clone(),
            Transform::Unknown { .. } => "none given; coordinates are lon/lat".into(),
        }
    }
}

/// Gauss–Krüger eastings with the zone number in front (e.g. 40 512 345 m) name their
/// CGCS2000 3-degree zone: zones 25–45 are EPSG:4513–4533. Without it (500 000 m is
/// every zone's central meridian) the coordinates cannot tell the zone; where the data
/// should lie can, when the caller knows it (`near_lon`: the plan's scope, a parent file).
fn gauss_kruger_hint(c: Coord<f64>, near_lon: Option<f64>) -> (Msg, Option<String>) {
    let zone = (c.x / 1_000_000.0).floor() as i64;
    if (25..=45).contains(&zone) && (0.0..10_000_000.0).contains(&c.y) {
        let code = format!("EPSG:{}", 4513 + zone - 25);
        return (
            msg!(
                "; they look like CGCS2000 3-degree Gauss-Kruger zone {zone} ({code})",
                "；看起来是 CGCS2000 3 度带高斯-克吕格第 {zone} 带（{code}）"
            ),
            Some(code),
        );
    }
    if !((0.0..1_000_000.0).contains(&c.x) && (0.0..6_500_000.0).contains(&c.y)) {
        return (Msg::new("", ""), None);
    }
    let unprefixed = "they look like CGCS2000 Gauss-Kruger metres without the zone number";
    let unprefixed_zh = "看起来是不带带号的 CGCS2000 高斯-克吕格坐标（米）";
    match near_lon.filter(|l| (73.5..=136.5).contains(l)) {
        Some(lon) => {
            // 3-degree zones are centred on multiples of 3°, 6-degree ones on 6n − 3°.
            let cm3 = ((lon / 3.0).round() * 3.0).clamp(75.0, 135.0) as i64;
            let cm6 = (((lon / 6.0).floor() + 1.0) * 6.0 - 3.0).clamp(75.0, 135.0) as i64;
            let code3 = format!("EPSG:{}", 4534 + (cm3 - 75) / 3);
            (
                msg!(
                    "; {unprefixed}: near {lon:.1}°E that is the 3-degree zone of central \
                     meridian {cm3}°E ({code3}) or the 6-degree zone of {cm6}°E (EPSG:{})",
                    "；{unprefixed_zh}：在东经 {lon:.1}° 附近，应是中央经线 {cm3}°E 的 3 度带（{code3}）\
                     或中央经线 {cm6}°E 的 6 度带（EPSG:{}）",
                    4502 + (cm6 - 75) / 6
                ),
                Some(code3),
            )
        }
        None => (
            msg!(
                "; {unprefixed} (EPSG:4534–4554 for 3-degree zones of central meridian \
                 75°E–135°E, EPSG:4502–4512 for 6-degree zones), and the zone cannot be told \
                 from them alone",
                "；{unprefixed_zh}（中央经线 75°E–135°E 的 3 度带为 EPSG:4534–4554，6 度带为 \
                 EPSG:4502–4512），仅凭坐标无法判断是哪一带"
            ),
            None,
        ),
    }
}

fn for_each_coord(m: &mut MultiPolygon<f64>, mut f: impl FnMut(&mut Coord<f64>)) {
    for p in &mut m.0 {
        p.exterior_mut(|r| r.0.iter_mut().for_each(&mut f));
        p.interiors_mut(|rs| rs.iter_mut().for_each(|r| r.0.iter_mut().for_each(&mut f)));
    }
}

/// Output formats of [`write_features`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    GeoJson,
    GeoPackage,
    Shapefile,
}

impl ExportFormat {
    /// From a name (`geojson`, `gpkg`, `shp`) or a file extension.
    pub fn parse(name: &str) -> Result<Self, FileError> {
        match name.to_ascii_lowercase().as_str() {
            "geojson" | "json" => Ok(ExportFormat::GeoJson),
            "gpkg" | "geopackage" => Ok(ExportFormat::GeoPackage),
            "shp" | "shapefile" => Ok(ExportFormat::Shapefile),
            other => Err(FileError::UnknownFormat(other.to_string())),
        }
    }

    fn driver(self) -> &'static str {
        match self {
            ExportFormat::GeoJson => "GeoJSON",
            ExportFormat::GeoPackage => "GPKG",
            ExportFormat::Shapefile => "ESRI Shapefile",
        }
    }
}

/// One feature to write: a boundary and its attributes (strings and integers).
#[derive(Debug, Clone)]
pub struct OutFeature {
    pub boundary: MultiPolygon<f64>,
    pub attributes: Vec<(&'static str, Option<OutValue>)>,
}

/// An attribute value of an [`OutFeature`].
#[derive(Debug, Clone)]
pub enum OutValue {
    Text(String),
    Integer(i64),
    /// A calendar date (a DATE column where the format has one).
    Date(chrono::NaiveDate),
}

impl OutValue {
    fn field_type(&self) -> OGRFieldType::Type {
        match self {
            OutValue::Text(_) => OGRFieldType::OFTString,
            OutValue::Integer(_) => OGRFieldType::OFTInteger64,
            OutValue::Date(_) => OGRFieldType::OFTDate,
        }
    }
}

/// Writes features in CGCS2000 lon/lat (EPSG:4490; GeoJSON per RFC 7946) to `path`,
/// replacing it. Shapefiles get UTF-8 attributes with a `.cpg` saying so.
pub fn write_features(
    path: &Path,
    format: ExportFormat,
    layer_name: &str,
    features: &[OutFeature],
) -> Result<(), FileError> {
    let driver = DriverManager::get_driver_by_name(format.driver())?;
    if path.exists() {
        let _ = driver.delete(path);
        let _ = std::fs::remove_file(path);
    }
    let mut dataset = driver.create_vector_only(path)?;
    let mut srs = SpatialRef::from_epsg(4490)?;
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    let layer_options: &[&str] = match format {
        ExportFormat::Shapefile => &["ENCODING=UTF-8"],
        // GDAL's RFC 7946 writer rounds coordinates to 7 decimals unless told otherwise
        // (rounded, boundaries leave the slanted edges they shared with their parent and
        // slivers appear). 17 decimals give back every bit of any coordinate above
        // 1/16 degree, so an export re-imports to the same boundaries.
        ExportFormat::GeoJson => &["RFC7946=YES", "COORDINATE_PRECISION=17"],
        ExportFormat::GeoPackage => &[],
    };
    // Each field's type from the first feature that has a value for it.
    let fields: Vec<(&'static str, OGRFieldType::Type)> = features
        .first()
        .map(|first| {
            first
                .attributes
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let ty = features
                        .iter()
                        .find_map(|f| f.attributes.get(i).and_then(|(_, v)| v.as_ref()))
                        .map_or(OGRFieldType::OFTString, OutValue::field_type);
                    (*name, ty)
                })
                .collect()
        })
        .unwrap_or_default();
    // GeoPackage writes are one SQLite transaction: fast, and all or nothing.
    if format == ExportFormat::GeoPackage {
        let mut txn = dataset.start_transaction()?;
        write_layer(&mut txn, layer_name, &srs, layer_options, &fields, features)?;
        txn.commit()?;
    } else {
        write_layer(
            &mut dataset,
            layer_name,
            &srs,
            layer_options,
            &fields,
            features,
        )?;
    }
    Ok(())
}

fn write_layer(
    ds: &mut Dataset,
    layer_name: &str,
    srs: &SpatialRef,
    layer_options: &[&str],
    fields: &[(&'static str, OGRFieldType::Type)],
    features: &[OutFeature],
) -> Result<(), FileError> {
    let layer = ds.create_layer(LayerOptions {
        name: layer_name,
        srs: Some(srs),
        ty: gdal::vector::OGRwkbGeometryType::wkbMultiPolygon,
        options: Some(layer_options),
    })?;
    layer.create_defn_fields(fields)?;
    for f in features {
        let mut feature = Feature::new(layer.defn())?;
        for (i, (_, v)) in f.attributes.iter().enumerate() {
            match v {
                Some(OutValue::Text(s)) => feature.set_field_string(i, s)?,
                Some(OutValue::Integer(n)) => feature.set_field_integer64(i, *n)?,
                Some(OutValue::Date(d)) => feature.set_field_datetime(
                    i,
                    d.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset(),
                )?,
                None => feature.set_field_null(i)?,
            }
        }
        let wkb = geozero::ToWkb::to_wkb(
            &geo_types::Geometry::MultiPolygon(f.boundary.clone()),
            geozero::CoordDimensions::xy(),
        )
        .map_err(|e| FileError::Feature {
            feature: format!("{:?}", f.attributes.first()),
            message: Msg::verbatim(e.to_string()),
        })?;
        feature.set_geometry(Geometry::from_wkb(&wkb)?)?;
        feature.create(&layer)?;
    }
    Ok(())
}
