//! An uploaded boundary file, taken apart by wangge before any format library sees it.
//!
//! The format is decided from the content, the client's file name being only a hint:
//! GeoJSON, KML, a GeoPackage, or a zip holding one dataset (a Shapefile's parts, or one
//! GeoJSON/KML/GeoPackage file; a KMZ is such a zip). Everything else is refused —
//! above all GDAL's VRT and any file that names another file, which would let an upload
//! read the server's files or make it send requests. Zips are unpacked here with their
//! entry names and sizes checked, so GDAL only ever opens files wangge wrote itself, by
//! plain paths (never `/vsi…`).
//!
//! ```
//! use wangge::io::upload::{prepare, UploadFormat, UploadLimits};
//! let dir = tempfile::tempdir().unwrap();
//! let raw = dir.path().join("raw");
//! std::fs::write(&raw, br#"{"type":"FeatureCollection","features":[]}"#).unwrap();
//! let file = prepare(&raw, dir.path(), &UploadLimits::default()).unwrap();
//! assert_eq!(file.format, UploadFormat::GeoJson);
//! ```

use crate::domain::{Localised, Msg};
use crate::msg;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The formats a planner uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadFormat {
    GeoJson,
    Shapefile,
    GeoPackage,
    Kml,
}

impl UploadFormat {
    /// The one GDAL driver allowed to open it.
    pub fn gdal_driver(self) -> &'static str {
        match self {
            UploadFormat::GeoJson => "GeoJSON",
            UploadFormat::Shapefile => "ESRI Shapefile",
            UploadFormat::GeoPackage => "GPKG",
            UploadFormat::Kml => "KML",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            UploadFormat::GeoJson => "geojson",
            UploadFormat::Shapefile => "shp",
            UploadFormat::GeoPackage => "gpkg",
            UploadFormat::Kml => "kml",
        }
    }
}

/// Why an upload is refused before it is parsed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum UploadError {
    /// Not a format wangge reads (HTTP 415).
    #[error("{0}")]
    Unsupported(Msg),
    /// Larger than allowed once unpacked (HTTP 413).
    #[error("{0}")]
    TooLarge(Msg),
    /// A local failure (disk full, …); says nothing about the file.
    #[error("cannot unpack the upload: {0}")]
    Io(String),
}

impl Localised for UploadError {
    fn zh(&self) -> String {
        match self {
            UploadError::Unsupported(m) | UploadError::TooLarge(m) => m.zh().to_string(),
            UploadError::Io(e) => format!("无法解包上传的文件：{e}"),
        }
    }
}

/// How much an upload may grow to.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Bytes all unpacked entries of a zip may take together.
    pub max_unpacked_bytes: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_unpacked_bytes: 2 << 30,
        }
    }
}

/// The file to hand GDAL, and the driver it must use.
#[derive(Debug, Clone)]
pub struct PreparedFile {
    pub path: PathBuf,
    pub format: UploadFormat,
}

/// Longest entry name or value quoted back in an error.
const QUOTE_MAX: usize = 64;

/// `s` cut to at most 64 characters, for quoting untrusted text in an error.
pub fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(QUOTE_MAX - 1).collect();
        format!("{cut:?}…")
    }
}

/// A grid with more vertices than [`MAX_GRID_VERTICES`](crate::domain::MAX_GRID_VERTICES).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "grid {grid} has {vertices} vertices, more than the {max} a grid may \
     have: simplify its boundary first (e.g. ogr2ogr -simplify)",
    max = crate::domain::MAX_GRID_VERTICES
)]
pub struct TooComplex {
    /// The grid's id, quoted and cut to 64 characters.
    pub grid: String,
    pub vertices: usize,
}

impl crate::domain::Localised for TooComplex {
    fn zh(&self) -> String {
        format!(
            "网格 {} 有 {} 个顶点，超过单个网格上限 {}：请先简化边界（例如 ogr2ogr -simplify）",
            self.grid,
            self.vertices,
            crate::domain::MAX_GRID_VERTICES
        )
    }
}

/// Refuses the first grid over [`MAX_GRID_VERTICES`](crate::domain::MAX_GRID_VERTICES):
/// the one rule the upload reader and the plan checks apply.
pub fn check_complexity(grids: &[crate::domain::Grid]) -> Result<(), TooComplex> {
    for g in grids {
        let vertices = crate::spatial::geom::vertex_count(&g.boundary);
        if vertices > crate::domain::MAX_GRID_VERTICES {
            return Err(TooComplex {
                grid: quote(&g.id),
                vertices,
            });
        }
    }
    Ok(())
}

/// Decides the format of `raw` (bytes exactly as uploaded) and lays the dataset out in
/// `workdir` under wangge's own names. `raw` may be inside `workdir`.
pub fn prepare(
    raw: &Path,
    workdir: &Path,
    limits: &UploadLimits,
) -> Result<PreparedFile, UploadError> {
    match sniff(raw)? {
        Sniffed::Zip => unzip(raw, workdir, limits),
        Sniffed::Xml => Err(UploadError::Io("XML left unsniffed".into())),
        Sniffed::Plain(format) => place(raw, workdir, format),
    }
}

enum Sniffed {
    Zip,
    Xml,
    Plain(UploadFormat),
}

fn io(e: std::io::Error) -> UploadError {
    UploadError::Io(e.kind().to_string())
}

fn read_head(path: &Path) -> Result<Vec<u8>, UploadError> {
    let mut head = Vec::with_capacity(64 * 1024);
    std::fs::File::open(path)
        .map_err(io)?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(io)?;
    Ok(head)
}

/// The format of the file at `path`: from its first bytes, and for XML from its whole
/// prolog (a comment can push a document type declaration past any fixed head).
fn sniff(path: &Path) -> Result<Sniffed, UploadError> {
    let head = read_head(path)?;
    let sniffed = sniff_head(&head)?;
    if let Sniffed::Xml = sniffed {
        let whole = std::fs::read(path).map_err(io)?;
        return sniff_xml(&whole).map(Sniffed::Plain);
    }
    Ok(sniffed)
}

fn sniff_head(head: &[u8]) -> Result<Sniffed, UploadError> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Sniffed::Zip);
    }
    if head.starts_with(b"SQLite format 3\0") {
        return Ok(Sniffed::Plain(UploadFormat::GeoPackage));
    }
    if head.starts_with(&[0x00, 0x00, 0x27, 0x0a]) {
        return Err(UploadError::Unsupported(msg!(
            "a lone .shp: zip the .shp with its .shx and .dbf (and .prj, .cpg) and upload the zip",
            "单独的 .shp 无法读取：请把 .shp 与 .shx、.dbf（以及 .prj、.cpg）一起压缩成 zip 再上传"
        )));
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &text[i..])
        .unwrap_or_default();
    match start.first() {
        Some(b'{') => Ok(Sniffed::Plain(UploadFormat::GeoJson)),
        Some(b'<') => Ok(Sniffed::Xml),
        _ => Err(UploadError::Unsupported(msg!(
            "not a format wangge reads: upload GeoJSON, KML/KMZ, a GeoPackage, or a zipped \
             Shapefile",
            "不是可读取的格式：请上传 GeoJSON、KML/KMZ、GeoPackage 或压缩的 Shapefile"
        ))),
    }
}

fn after<'a>(text: &'a [u8], end: &[u8]) -> Option<&'a [u8]> {
    text.windows(end.len())
        .position(|w| w == end)
        .map(|i| &text[i + end.len()..])
}

/// Walks the XML prolog (declaration, processing instructions, comments) to the root
/// element. Any `<!…>` there — a document type declaration with its entities, which is
/// how XML reaches outside itself or multiplies itself — is refused; so is any root but
/// `kml` (an OGR VRT's `OGRVRTDataSource` above all).
fn sniff_xml(text: &[u8]) -> Result<UploadFormat, UploadError> {
    let unsupported = |m: Msg| Err(UploadError::Unsupported(m));
    let mut rest = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    loop {
        let start = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[start..];
        if rest.starts_with(b"<?") {
            rest = match after(rest, b"?>") {
                Some(r) => r,
                None => {
                    return unsupported(msg!(
                        "XML with an unterminated declaration",
                        "XML 声明未结束"
                    ));
                }
            };
        } else if rest.starts_with(b"<!--") {
            rest = match after(&rest[4..], b"-->") {
                Some(r) => r,
                None => {
                    return unsupported(msg!("XML with an unterminated comment", "XML 注释未结束"));
                }
            };
        } else if rest.starts_with(b"<!") {
            return unsupported(msg!(
                "XML with a document type declaration (entities) is not accepted",
                "不接受带文档类型声明（实体）的 XML"
            ));
        } else if let Some(tag) = rest.strip_prefix(b"<") {
            let name_len = tag
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
                .unwrap_or(tag.len());
            let name = &tag[..name_len];
            let local = name.rsplit(|b| *b == b':').next().unwrap_or(name);
            return if local == b"kml" {
                Ok(UploadFormat::Kml)
            } else if local.eq_ignore_ascii_case(b"OGRVRTDataSource") {
                unsupported(msg!(
                    "an OGR VRT file, which reads other files: upload the data itself",
                    "OGR VRT 文件会读取其他文件，不予接受：请上传数据本身"
                ))
            } else {
                unsupported(msg!(
                    "XML that is not KML: upload GeoJSON, KML/KMZ, a GeoPackage, or a zipped \
                     Shapefile",
                    "不是 KML 的 XML：请上传 GeoJSON、KML/KMZ、GeoPackage 或压缩的 Shapefile"
                ))
            };
        } else {
            return unsupported(msg!(
                "neither XML nor any other format wangge reads",
                "既不是 XML，也不是其他可读取的格式"
            ));
        }
    }
}

/// A plain (unzipped) upload, checked further where its format needs it.
fn place(raw: &Path, workdir: &Path, format: UploadFormat) -> Result<PreparedFile, UploadError> {
    let path = workdir.join(format!("dataset.{}", format.extension()));
    if raw != path {
        std::fs::rename(raw, &path)
            .or_else(|_| std::fs::copy(raw, &path).map(|_| ()))
            .map_err(io)?;
    }
    Ok(PreparedFile { path, format })
}

const SHAPEFILE_PARTS: [&str; 5] = ["shp", "shx", "dbf", "prj", "cpg"];
const SINGLE_DATASETS: [&str; 5] = ["geojson", "json", "kml", "gpkg", "shp"];

fn unzip(raw: &Path, workdir: &Path, limits: &UploadLimits) -> Result<PreparedFile, UploadError> {
    let file = std::fs::File::open(raw).map_err(io)?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        UploadError::Unsupported(msg!("an unreadable zip: {e}", "zip 无法读取：{e}"))
    })?;
    // Check every entry before unpacking any.
    let mut entries: Vec<(usize, String)> = Vec::new();
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| {
            UploadError::Unsupported(msg!("an unreadable zip: {e}", "zip 无法读取：{e}"))
        })?;
        let name = entry.name().map(|n| n.to_string()).map_err(|e| {
            UploadError::Unsupported(msg!(
                "an unreadable zip entry name: {e}",
                "zip 中的文件名无法读取：{e}"
            ))
        })?;
        if entry.is_dir() {
            continue;
        }
        if entry.enclosed_name().is_none() || name.contains('\\') {
            return Err(UploadError::Unsupported(msg!(
                "the zip entry {} points outside the archive",
                "zip 中的 {} 指向压缩包之外",
                quote(&name)
            )));
        }
        if entry.is_symlink() {
            return Err(UploadError::Unsupported(msg!(
                "the zip entry {} is a link",
                "zip 中的 {} 是链接",
                quote(&name)
            )));
        }
        if entry.encrypted() {
            return Err(UploadError::Unsupported(msg!(
                "the zip entry {} is encrypted",
                "zip 中的 {} 已加密",
                quote(&name)
            )));
        }
        declared = declared.saturating_add(entry.size());
        entries.push((i, name));
    }
    if declared > limits.max_unpacked_bytes {
        return Err(too_large(limits));
    }
    let plan = zip_layout(&entries)?;
    let mut budget = limits.max_unpacked_bytes;
    let mut main = None;
    for (index, extension) in &plan.files {
        let mut entry = archive.by_index(*index).map_err(|e| {
            UploadError::Unsupported(msg!("an unreadable zip: {e}", "zip 无法读取：{e}"))
        })?;
        let target = workdir.join(format!("dataset.{extension}"));
        let mut out = std::fs::File::create(&target).map_err(io)?;
        // Declared sizes can lie: stop at the budget whatever the header said.
        let written = std::io::copy(&mut (&mut entry).take(budget + 1), &mut out).map_err(|e| {
            UploadError::Unsupported(msg!("an unreadable zip: {e}", "zip 无法读取：{e}"))
        })?;
        if written > budget {
            return Err(too_large(limits));
        }
        budget -= written;
        out.flush().map_err(io)?;
        if Some(extension.as_str()) == plan.main.as_deref() {
            main = Some(target);
        }
    }
    let Some(main) = main else {
        return Err(UploadError::Unsupported(msg!(
            "the zip holds no dataset",
            "zip 中没有数据集"
        )));
    };
    if plan.shapefile {
        check_shapefile(&main)?;
        return Ok(PreparedFile {
            path: main,
            format: UploadFormat::Shapefile,
        });
    }
    // One file inside: its content decides, as for a plain upload (a VRT called
    // .geojson stays refused; a zip inside a zip is not unpacked).
    match sniff(&main)? {
        Sniffed::Zip => Err(UploadError::Unsupported(msg!(
            "a zip inside a zip: upload the inner file",
            "zip 中套着 zip：请上传里面的文件"
        ))),
        Sniffed::Xml => Err(UploadError::Io("XML left unsniffed".into())),
        Sniffed::Plain(format) => place(&main, workdir, format),
    }
}

fn too_large(limits: &UploadLimits) -> UploadError {
    UploadError::TooLarge(msg!(
        "the zip unpacks to more than {} bytes",
        "zip 解压后超过 {} 字节",
        limits.max_unpacked_bytes
    ))
}

struct ZipLayout {
    /// (entry index, extension to write it under)
    files: Vec<(usize, String)>,
    /// The extension of the file to open.
    main: Option<String>,
    shapefile: bool,
}

fn extension_of(name: &str) -> (String, String) {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) => (stem.to_lowercase(), ext.to_ascii_lowercase()),
        None => (base.to_lowercase(), String::new()),
    }
}

/// Which entries form the one dataset; anything else is refused, naming the entry.
fn zip_layout(entries: &[(usize, String)]) -> Result<ZipLayout, UploadError> {
    let has_shp = entries.iter().any(|(_, n)| extension_of(n).1 == "shp");
    if has_shp {
        let mut stem: Option<String> = None;
        let mut seen: Vec<String> = Vec::new();
        let mut files = Vec::new();
        for (i, name) in entries {
            let (s, ext) = extension_of(name);
            if !SHAPEFILE_PARTS.contains(&ext.as_str()) {
                return Err(UploadError::Unsupported(msg!(
                    "the zip entry {} is not part of a Shapefile (.shp .shx .dbf .prj .cpg)",
                    "zip 中的 {} 不属于 Shapefile（.shp .shx .dbf .prj .cpg）",
                    quote(name)
                )));
            }
            if stem.get_or_insert_with(|| s.clone()) != &s || seen.contains(&ext) {
                return Err(UploadError::Unsupported(msg!(
                    "the zip entry {} belongs to a second dataset: a zip holds one Shapefile",
                    "zip 中的 {} 属于另一个数据集：一个 zip 只能放一个 Shapefile",
                    quote(name)
                )));
            }
            seen.push(ext.clone());
            files.push((*i, ext));
        }
        for needed in ["shx", "dbf"] {
            if !seen.iter().any(|e| e == needed) {
                return Err(UploadError::Unsupported(msg!(
                    "the zipped Shapefile has no .{needed}",
                    "压缩的 Shapefile 缺少 .{needed}"
                )));
            }
        }
        return Ok(ZipLayout {
            files,
            main: Some("shp".into()),
            shapefile: true,
        });
    }
    match entries {
        [] => Err(UploadError::Unsupported(msg!(
            "the zip is empty",
            "zip 是空的"
        ))),
        [(i, name)] => {
            let (_, ext) = extension_of(name);
            if SINGLE_DATASETS.contains(&ext.as_str()) {
                Ok(ZipLayout {
                    files: vec![(*i, "inner".into())],
                    main: Some("inner".into()),
                    shapefile: false,
                })
            } else {
                Err(UploadError::Unsupported(msg!(
                    "the zip entry {} is not a GeoJSON, KML or GeoPackage file",
                    "zip 中的 {} 不是 GeoJSON、KML 或 GeoPackage 文件",
                    quote(name)
                )))
            }
        }
        [_, (_, second), ..] => Err(UploadError::Unsupported(msg!(
            "the zip entry {} is a second file: a zip holds one dataset (a Shapefile's \
             parts, or one GeoJSON, KML or GeoPackage file)",
            "zip 中的 {} 是第二个文件：一个 zip 只能放一个数据集（一个 Shapefile 的各部分，\
             或一个 GeoJSON、KML、GeoPackage 文件）",
            quote(second)
        ))),
    }
}

fn file_len(path: &Path) -> Result<u64, UploadError> {
    Ok(std::fs::metadata(path).map_err(io)?.len())
}

/// A Shapefile's headers must agree with its sizes: a header claiming a billion records
/// would otherwise make a reader reserve memory for them.
fn check_shapefile(shp: &Path) -> Result<(), UploadError> {
    let shp_len = file_len(shp)?;
    let shx_len = file_len(&shp.with_extension("shx"))?;
    if shx_len < 100 || (shx_len - 100) % 8 != 0 {
        return Err(UploadError::Unsupported(msg!(
            "the Shapefile's .shx is not an index file",
            "Shapefile 的 .shx 不是索引文件"
        )));
    }
    let records = (shx_len - 100) / 8;
    // Every record takes at least 12 bytes of the .shp (header and shape type).
    if records.saturating_mul(12) > shp_len {
        return Err(UploadError::Unsupported(msg!(
            "the Shapefile's .shx lists {records} records, more than its .shp can hold",
            "Shapefile 的 .shx 列出 {records} 条记录，超过其 .shp 能容纳的数量"
        )));
    }
    let dbf = shp.with_extension("dbf");
    let dbf_len = file_len(&dbf)?;
    let mut header = [0u8; 12];
    std::fs::File::open(&dbf)
        .map_err(io)?
        .read_exact(&mut header)
        .map_err(|_| {
            UploadError::Unsupported(msg!(
                "the Shapefile's .dbf is truncated",
                "Shapefile 的 .dbf 不完整"
            ))
        })?;
    let dbf_records = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let header_len = u64::from(u16::from_le_bytes([header[8], header[9]]));
    let record_len = u64::from(u16::from_le_bytes([header[10], header[11]]));
    let claimed = header_len.saturating_add(dbf_records.saturating_mul(record_len));
    if claimed > dbf_len.saturating_add(1) {
        return Err(UploadError::Unsupported(msg!(
            "the Shapefile's .dbf header claims {dbf_records} records, more than the file holds",
            "Shapefile 的 .dbf 文件头声称有 {dbf_records} 条记录，超过文件实际所含"
        )));
    }
    if dbf_records != records {
        return Err(UploadError::Unsupported(msg!(
            "the Shapefile's .dbf has {dbf_records} records and its .shx {records}",
            "Shapefile 的 .dbf 有 {dbf_records} 条记录，而 .shx 有 {records} 条"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(bytes: &[u8]) -> Result<PreparedFile, UploadError> {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, bytes).unwrap();
        let r = prepare(&raw, dir.path(), &UploadLimits::default());
        // Keep the directory alive only for the call; the format is what is checked.
        drop(dir);
        r
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, bytes) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn content_decides_the_format_not_the_name() {
        let geojson = br#"  {"type":"FeatureCollection","features":[]}"#;
        assert_eq!(prepared(geojson).unwrap().format, UploadFormat::GeoJson);
        assert_eq!(
            prepared(b"\xEF\xBB\xBF<?xml version=\"1.0\"?><kml xmlns=\"x\"></kml>")
                .unwrap()
                .format,
            UploadFormat::Kml
        );
        assert_eq!(
            prepared(b"SQLite format 3\0rest").unwrap().format,
            UploadFormat::GeoPackage
        );
    }

    #[test]
    fn vrt_and_entities_are_refused_however_named() {
        let vrt = b"<OGRVRTDataSource><OGRVRTLayer name=\"x\"><SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>";
        assert!(
            matches!(prepared(vrt), Err(UploadError::Unsupported(m)) if m.en().contains("VRT"))
        );
        let zipped = zip_of(&[("grids.geojson", vrt)]);
        assert!(
            matches!(prepared(&zipped), Err(UploadError::Unsupported(m)) if m.en().contains("VRT"))
        );
        let xxe = b"<?xml version=\"1.0\"?><!DOCTYPE kml [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><kml>&x;</kml>";
        assert!(
            matches!(prepared(xxe), Err(UploadError::Unsupported(m)) if m.en().contains("entities"))
        );
        assert!(matches!(
            prepared(b"\x00\x01binary"),
            Err(UploadError::Unsupported(_))
        ));
    }

    #[test]
    fn a_document_type_behind_a_long_comment_is_still_refused() {
        let mut xml = b"<?xml version=\"1.0\"?>\n<!-- ".to_vec();
        xml.extend(std::iter::repeat_n(b'x', 200_000));
        xml.extend_from_slice(b" <kml> -->\n<!DOCTYPE kml [<!ENTITY x SYSTEM \"file:///etc/hostname\">]><kml>&x;</kml>");
        assert!(
            matches!(prepared(&xml), Err(UploadError::Unsupported(m)) if m.en().contains("document type"))
        );
        let prefixed =
            b"<?xml version=\"1.0\"?><kml:kml xmlns:kml=\"http://www.opengis.net/kml/2.2\"/>";
        assert_eq!(prepared(prefixed).unwrap().format, UploadFormat::Kml);
        assert!(
            matches!(prepared(b"<svg></svg>"), Err(UploadError::Unsupported(m)) if m.en().contains("not KML"))
        );
    }

    #[test]
    fn a_zip_holds_one_dataset_and_nothing_escapes() {
        let two = zip_of(&[("a.geojson", b"{}"), ("b.geojson", b"{}")]);
        assert!(
            matches!(prepared(&two), Err(UploadError::Unsupported(m)) if m.en().contains("b.geojson"))
        );
        let escape = zip_of(&[("../../etc/cron.d/x.geojson", b"{}")]);
        assert!(
            matches!(prepared(&escape), Err(UploadError::Unsupported(m)) if m.en().contains("outside"))
        );
        let extra = zip_of(&[
            ("g.shp", b""),
            ("g.shx", b""),
            ("g.dbf", b""),
            ("g.vrt", b""),
        ]);
        assert!(
            matches!(prepared(&extra), Err(UploadError::Unsupported(m)) if m.en().contains("g.vrt"))
        );
        let nested = zip_of(&[("inner.geojson", &zip_of(&[("x.geojson", b"{}")]))]);
        assert!(
            matches!(prepared(&nested), Err(UploadError::Unsupported(m)) if m.en().contains("zip inside"))
        );
        let one = zip_of(&[("folder/grids.json", b"{\"type\":\"FeatureCollection\"}")]);
        assert_eq!(prepared(&one).unwrap().format, UploadFormat::GeoJson);
    }

    #[test]
    fn unpacking_stops_at_the_limit() {
        let big = vec![b' '; 1 << 20];
        let zipped = zip_of(&[("g.geojson", &big)]);
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, &zipped).unwrap();
        let small = UploadLimits {
            max_unpacked_bytes: 1000,
        };
        assert!(matches!(
            prepare(&raw, dir.path(), &small),
            Err(UploadError::TooLarge(_))
        ));
    }

    #[test]
    fn quotes_are_cut_to_64_characters() {
        let long = "x".repeat(500);
        assert!(quote(&long).chars().count() <= 66);
        assert_eq!(quote("abc"), "\"abc\"");
    }
}
