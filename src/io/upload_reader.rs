//! Uploaded files are parsed in a child process: the same binary, started as
//! `wangge internal-read-upload`, with limits on memory, CPU time and open files, no
//! network where the kernel allows a private network namespace, and a GDAL that knows
//! only the four formats planners use. A reader that crashes, hangs or runs out of its
//! limits fails that upload with a clear error; the server and its store are untouched,
//! and the store's files are never opened by anything but the store.
//!
//! The parent sends a [`ReadJob`] as JSON on the child's stdin and reads one answer as
//! JSON from its stdout. Boundaries cross as WKB, so coordinates arrive bit for bit.

use super::gdal_files::{self, FileError, ImportOptions, ImportedFile};
use super::upload::{self, UploadError, UploadLimits};
use crate::domain::{Grid, Layer, Localised, Msg};
use crate::msg;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The subcommand the child runs (hidden from `--help`).
pub const CHILD_COMMAND: &str = "internal-read-upload";

/// What the child is asked to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadJob {
    /// The bytes as uploaded, in a directory wangge made for this upload.
    pub raw: PathBuf,
    pub options: ImportOptions,
    pub max_unpacked_bytes: u64,
}

/// The child's limits.
#[derive(Debug, Clone, Copy)]
pub struct ReaderLimits {
    /// Address space, bytes.
    pub memory_bytes: u64,
    /// CPU seconds; the wall-clock limit is twice this.
    pub cpu_secs: u64,
}

/// Why an upload could not be read.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum ReadError {
    /// Refused before parsing: not a format wangge reads, or too large unpacked.
    #[error(transparent)]
    Upload(UploadError),
    /// The file was parsed and is wrong (a feature, a field, its CRS…).
    #[error("{message}")]
    File {
        message: Msg,
        feature: Option<String>,
        /// True when the format itself is refused (HTTP 415).
        unsupported: bool,
    },
    /// The reader stopped: crashed, or went beyond its memory or time limit.
    #[error("the file could not be read: {0}")]
    ReaderFailed(Msg),
    /// The reader could not be started (a server fault, not the file's).
    #[error("the file reader could not run: {0}")]
    Internal(String),
}

impl Localised for ReadError {
    fn zh(&self) -> String {
        match self {
            ReadError::Upload(e) => e.zh(),
            ReadError::File { message, .. } => message.zh().to_string(),
            ReadError::ReaderFailed(m) => format!("文件无法读取：{}", m.zh()),
            ReadError::Internal(e) => format!("文件读取程序无法运行：{e}"),
        }
    }
}

impl From<FileError> for ReadError {
    fn from(e: FileError) -> Self {
        let feature = match &e {
            FileError::Feature { feature, .. } | FileError::UndeclaredEncoding { feature, .. } => {
                Some(feature.clone())
            }
            _ => None,
        };
        ReadError::File {
            unsupported: matches!(e, FileError::Unsupported(_)),
            message: Msg::of(&e),
            feature,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WireGrid {
    id: String,
    name: Option<String>,
    layer: Layer,
    parent: Option<String>,
    properties: serde_json::Map<String, serde_json::Value>,
    /// The boundary as hex WKB.
    wkb: String,
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Read {
        grids: Vec<WireGrid>,
        source_crs: String,
        encoding: Option<String>,
        driver: String,
    },
    Refused(ReadError),
}

/// Reads an upload in a child process of `exe` (the wangge binary).
pub async fn read_isolated(
    exe: &Path,
    job: &ReadJob,
    limits: ReaderLimits,
) -> Result<ImportedFile, ReadError> {
    use tokio::io::AsyncWriteExt;
    let input = serde_json::to_vec(job).map_err(|e| ReadError::Internal(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(CHILD_COMMAND)
        .env_clear()
        .env("LANG", "C.UTF-8")
        .env("PROJ_NETWORK", "OFF")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for keep in ["GDAL_DATA", "PROJ_DATA", "PROJ_LIB"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    let (memory, cpu) = (limits.memory_bytes, limits.cpu_secs);
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, unshare).
    unsafe {
        cmd.pre_exec(move || {
            confine(memory, cpu);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ReadError::Internal(format!("cannot start the reader: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .await
            .map_err(|e| ReadError::Internal(format!("cannot reach the reader: {e}")))?;
    }
    let wall = Duration::from_secs(cpu.saturating_mul(2).max(1));
    let output = match tokio::time::timeout(wall, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(ReadError::Internal(format!("the reader vanished: {e}"))),
        // Dropping the child's future kills it (kill_on_drop).
        Err(_) => {
            return Err(ReadError::ReaderFailed(msg!(
                "the reader went beyond its time limit ({} s of wall-clock time)",
                "读取超出了时间上限（{} 秒）",
                wall.as_secs()
            )));
        }
    };
    if !output.stderr.is_empty() {
        tracing::warn!(
            stderr = %String::from_utf8_lossy(&output.stderr[..output.stderr.len().min(4096)]),
            "upload reader said"
        );
    }
    let answer = if output.status.success() {
        serde_json::from_slice::<Answer>(&output.stdout).ok()
    } else {
        None
    };
    match answer {
        Some(Answer::Read {
            grids,
            source_crs,
            encoding,
            driver,
        }) => Ok(ImportedFile {
            grids: grids.into_iter().map(from_wire).collect::<Result<_, _>>()?,
            source_crs,
            encoding,
            driver,
        }),
        Some(Answer::Refused(e)) => Err(e),
        None => Err(ReadError::ReaderFailed(describe_exit(output.status))),
    }
}

fn describe_exit(status: std::process::ExitStatus) -> Msg {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => msg!(
            "the reader went beyond its time limit (CPU seconds)",
            "读取超出了时间上限（CPU 秒数）"
        ),
        Some(_) => msg!(
            "the reader crashed or went beyond its memory limit",
            "读取程序崩溃或超出了内存上限"
        ),
        None => msg!(
            "the reader stopped (exit code {}), most likely at its memory limit",
            "读取程序已停止（退出码 {}），很可能是达到了内存上限",
            status.code().unwrap_or(-1)
        ),
    }
}

/// Runs in the forked child before exec.
fn confine(memory: u64, cpu: u64) {
    let set = |resource, soft: u64, hard: u64| {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        unsafe { libc::setrlimit(resource, &limit) };
    };
    set(libc::RLIMIT_AS, memory, memory);
    // SIGXCPU at the soft limit, SIGKILL a second later.
    set(libc::RLIMIT_CPU, cpu, cpu + 1);
    set(libc::RLIMIT_CORE, 0, 0);
    set(libc::RLIMIT_NOFILE, 64, 64);
    // A network namespace of its own has no interfaces but a down loopback: nothing
    // the reader does can reach another host or this one. Needs root or unprivileged
    // user namespaces; where neither is allowed GDAL's own settings (below) still hold.
    // SAFETY: unshare only changes this (single-threaded, forked) process.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET);
        }
    }
}

fn from_wire(g: WireGrid) -> Result<Grid, ReadError> {
    use geozero::ToGeo;
    let bad = |m: String| {
        ReadError::ReaderFailed(msg!(
            "the reader's answer is corrupt: {m}",
            "读取程序的回答已损坏：{m}"
        ))
    };
    let bytes = hex::decode(&g.wkb).map_err(|e| bad(e.to_string()))?;
    let boundary = match geozero::wkb::Wkb(bytes.as_slice())
        .to_geo()
        .map_err(|e| bad(e.to_string()))?
    {
        geo_types::Geometry::MultiPolygon(m) => m,
        _ => return Err(bad("a boundary is not a multipolygon".into())),
    };
    Ok(Grid {
        id: g.id,
        name: g.name,
        layer: g.layer,
        parent: g.parent,
        ancestors: Vec::new(),
        boundary,
        properties: g.properties,
    })
}

fn to_wire(g: Grid) -> Result<WireGrid, ReadError> {
    let wkb = geozero::ToWkb::to_wkb(
        &geo_types::Geometry::MultiPolygon(g.boundary),
        geozero::CoordDimensions::xy(),
    )
    .map_err(|e| ReadError::ReaderFailed(Msg::new(e.to_string(), e.to_string())))?;
    Ok(WireGrid {
        id: g.id,
        name: g.name,
        layer: g.layer,
        parent: g.parent,
        properties: g.properties,
        wkb: hex::encode(wkb),
    })
}

/// GDAL as the reader needs it: only the four read drivers registered, and its own
/// network paths pointed nowhere.
fn harden_gdal() {
    use gdal::DriverManager;
    // Set before any driver or connection exists.
    for (key, value) in [
        // No /vsicurl/ file name can match this, and every HTTP request GDAL would make
        // goes to a closed port.
        ("CPL_VSIL_CURL_ALLOWED_FILENAME", "/nonexistent/wangge"),
        ("GDAL_HTTP_PROXY", "127.0.0.1:9"),
        ("GDAL_HTTPS_PROXY", "127.0.0.1:9"),
        ("GDAL_HTTP_TIMEOUT", "1"),
        ("OGR_SQLITE_LOAD_EXTENSIONS", ""),
        // No SpatiaLite in GeoPackage connections: its virtual-table modules
        // (VirtualText, VirtualShape…) read arbitrary files.
        ("SPATIALITE_LOAD", "NO"),
        // Do not list the directory around the file (only wangge's files are there).
        ("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"),
    ] {
        let _ = gdal::config::set_config_option(key, value);
    }
    DriverManager::register_all();
    let others: Vec<_> = DriverManager::all()
        .filter(|d| !gdal_files::READ_DRIVERS.contains(&d.short_name().as_str()))
        .collect();
    for driver in &others {
        DriverManager::deregister_driver(driver);
    }
}

/// The child's whole life: one job in, one answer out. Returns the exit code.
pub fn child_main() -> i32 {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return 2;
    }
    let answer = match serde_json::from_slice::<ReadJob>(&input) {
        Ok(job) => match read_job(&job) {
            Ok(a) => a,
            Err(e) => Answer::Refused(e),
        },
        Err(e) => Answer::Refused(ReadError::Internal(format!("bad job: {e}"))),
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &answer).is_ok() && out.flush().is_ok();
    if written { 0 } else { 3 }
}

fn read_job(job: &ReadJob) -> Result<Answer, ReadError> {
    let workdir = job
        .raw
        .parent()
        .ok_or_else(|| ReadError::Internal("the upload has no directory".into()))?;
    confine_files(workdir);
    test_faults(&job.raw)?;
    harden_gdal();
    let prepared = upload::prepare(
        &job.raw,
        workdir,
        &UploadLimits {
            max_unpacked_bytes: job.max_unpacked_bytes,
        },
    )
    .map_err(ReadError::Upload)?;
    let options = ImportOptions {
        driver: Some(prepared.format.gdal_driver().into()),
        ..job.options.clone()
    };
    let file = gdal_files::read_grids(&prepared.path, &options, |_, _| {})?;
    // Refused before any costly step, as the plan checks would refuse it.
    upload::check_complexity(&file.grids).map_err(|e| ReadError::File {
        message: Msg::of(&e),
        feature: Some(e.grid.clone()),
        unsupported: false,
    })?;
    precheck_geometry(&file.grids);
    Ok(Answer::Read {
        grids: file
            .grids
            .into_iter()
            .map(to_wire)
            .collect::<Result<_, _>>()?,
        source_crs: file.source_crs,
        encoding: file.encoding,
        driver: file.driver,
    })
}

/// From here on the process may read only the system's libraries and data (`/usr`,
/// GDAL's and PROJ's data directories) and read and write only the upload's own
/// directory (Linux Landlock). Whatever a format library is tricked into opening — the
/// store, `/etc/shadow`, another upload — the kernel refuses. On a kernel without
/// Landlock this does nothing and says so on stderr (the server logs it).
fn confine_files(workdir: &Path) {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V3;
    let mut read_only: Vec<PathBuf> = ["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/null"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for var in ["GDAL_DATA", "PROJ_DATA", "PROJ_LIB"] {
        if let Some(dir) = std::env::var_os(var) {
            read_only.push(PathBuf::from(dir));
        }
    }
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules([workdir], AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self());
    match status {
        Ok(s) if s.ruleset == RulesetStatus::FullyEnforced => {}
        Ok(s) => eprintln!(
            "upload reader: file access only partly confined ({:?})",
            s.ruleset
        ),
        Err(e) => eprintln!("upload reader: file access not confined: {e}"),
    }
}

/// Runs the engine's costliest steps over the grids once, here, under this process's
/// CPU and memory limits and killed if the upload is abandoned: geometry built to make
/// them slow (a star polygon with millions of self-crossings, a comb whose teeth all
/// overlap in height) fails the upload as a reader that ran out of time, instead of
/// holding the server's plan checker for many minutes. Its findings are not used:
/// the server validates against the communities itself.
fn precheck_geometry(grids: &[crate::domain::Grid]) {
    use crate::spatial::coverage::{self, ValidateOptions};
    let boundaries: Vec<&geo_types::MultiPolygon<f64>> =
        grids.iter().map(|g| &g.boundary).collect();
    let ids: Vec<&str> = grids.iter().map(|g| g.id.as_str()).collect();
    let _ = coverage::validate(&boundaries, &ids, None, &ValidateOptions::default());
    for b in &boundaries {
        let _ = coverage::representative(b);
    }
}

/// Debug builds only: a file starting with a marker makes the reader fail as a broken
/// parser would, or try to read a file outside its upload, so the tests can show the
/// server survives the one and the kernel refuses the other.
#[cfg(debug_assertions)]
fn test_faults(raw: &Path) -> Result<(), ReadError> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(raw)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    if let Some(path) = head.strip_prefix(b"WANGGE-TEST-READ:") {
        let path = String::from_utf8_lossy(path).trim().to_string();
        return Err(ReadError::File {
            message: match std::fs::read(&path) {
                Ok(bytes) => msg!(
                    "test hook read {} bytes of {path}",
                    "测试钩子读取了 {path} 的 {} 字节",
                    bytes.len()
                ),
                Err(e) => msg!(
                    "test hook could not read {path}: {}",
                    "测试钩子无法读取 {path}：{}",
                    e.kind()
                ),
            },
            feature: None,
            unsupported: false,
        });
    }
    if head.starts_with(b"WANGGE-TEST-CRASH") {
        std::process::abort();
    }
    if head.starts_with(b"WANGGE-TEST-MEMORY") {
        // Far beyond any memory limit: allocation fails and the reader aborts.
        let mut hog: Vec<Vec<u8>> = Vec::new();
        loop {
            hog.push(vec![1u8; 256 << 20]);
        }
    }
    if head.starts_with(b"WANGGE-TEST-SPIN") {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
fn test_faults(_raw: &Path) -> Result<(), ReadError> {
    Ok(())
}
