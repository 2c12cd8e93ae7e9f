//! The serde reader: a FeatureCollection read straight into grids.
//!
//! serde visits the document once. Each feature is turned into a [`Grid`] as soon as
//! it has been read, so no tree of the whole file is ever built: the file's bytes
//! and the grids' coordinates are the only large things alive at once. Properties
//! are small and stay `serde_json` maps, as the rest of the service expects.
//!
//! The reader is exactly as strict as the tree reader it replaced: the same first
//! problem is reported with the same feature and position, whatever order the
//! members come in (`type` may follow `features`, and `coordinates` may precede the
//! geometry's `type`). A problem does not stop the parse: the first one is kept and
//! the rest of the document is still read, so a document that is not JSON at all is
//! reported as such first, as before.

use super::coords::{self, Coords};
use super::fast;
use super::{FeatureProblem, InputError, ReadOptions, ancestors, convert, text_prop};
use crate::domain::{Grid, Layer};
use crate::msg;
use crate::spatial::crs::CoordSys;
use crate::spatial::geom;
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Reads grids from the bytes of a GeoJSON document: by hand in the common case
/// (see [`super::fast`]), else, and for every problem, with serde.
pub(super) fn read_slice(bytes: &[u8], options: &ReadOptions) -> Result<Vec<Grid>, InputError> {
    if let Ok(Some(grids)) = fast::read_common(&mut &*bytes, &mut Reader::new(options)) {
        return Ok(grids);
    }
    read_with_serde(bytes, options)
}

/// Reads grids from a file a chunk at a time (see [`super::fast`]); only a
/// document the hand reader leaves to serde is read whole.
pub(super) fn read_file(
    path: &Path,
    options: &ReadOptions,
    chunk: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Grid>, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // A pipe or a device cannot be read twice: it is read whole, once.
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes).map_err(io)?;
        return read_slice(&bytes, options);
    }
    let mut window = fast::FileWindow::open(file, metadata.len(), chunk, progress).map_err(io)?;
    if let Some(grids) = fast::read_common(&mut window, &mut Reader::new(options)).map_err(io)? {
        return Ok(grids);
    }
    drop(window);
    let bytes = std::fs::read(path).map_err(io)?;
    read_with_serde(&bytes, options)
}

/// The serde reader, whose answer is the reader's answer.
pub(super) fn read_with_serde(
    bytes: &[u8],
    options: &ReadOptions,
) -> Result<Vec<Grid>, InputError> {
    let mut reader = Reader::new(options);
    let mut root = RawFeature::default();
    let mut root_type = None;
    let mut features = Features::Absent;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = RootSeed {
        reader: &mut reader,
        root: &mut root,
        root_type: &mut root_type,
        features: &mut features,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    parsed.map_err(|e| InputError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    match root_type.as_deref() {
        Some("FeatureCollection") => match features {
            Features::Array => match reader.failed {
                Some(e) => Err(e),
                None => Ok(reader.grids),
            },
            Features::Absent | Features::NotArray => Err(InputError::Structure(msg!(
                "FeatureCollection without a \"features\" array",
                "FeatureCollection 缺少 \"features\" 数组"
            ))),
        },
        Some("Feature") => {
            reader.restart();
            reader.feature(root);
            match reader.failed {
                Some(e) => Err(e),
                None => Ok(reader.grids),
            }
        }
        Some(other) => Err(InputError::Structure(msg!(
            "expected a GeoJSON FeatureCollection, found a {other}",
            "应为 GeoJSON FeatureCollection，却是 {other}"
        ))),
        None => Err(InputError::Structure(msg!(
            "expected a GeoJSON FeatureCollection: no \"type\" member",
            "应为 GeoJSON FeatureCollection：缺少 \"type\" 成员"
        ))),
    }
}

/// The grids read so far, and the first problem.
pub(super) struct Reader<'o> {
    options: &'o ReadOptions,
    /// Each id's first feature.
    seen: HashMap<String, usize>,
    pub(super) grids: Vec<Grid>,
    pub(super) failed: Option<InputError>,
    next_index: usize,
}

impl<'o> Reader<'o> {
    pub(super) fn new(options: &'o ReadOptions) -> Self {
        Reader {
            options,
            seen: HashMap::new(),
            grids: Vec::new(),
            failed: None,
            next_index: 0,
        }
    }

    /// Forgets what was read: a repeated `features` member replaces the first, as
    /// it does in a JSON object.
    pub(super) fn restart(&mut self) {
        self.seen.clear();
        self.grids.clear();
        self.failed = None;
        self.next_index = 0;
    }

    pub(super) fn feature(&mut self, raw: RawFeature) {
        let index = self.next_index;
        self.next_index += 1;
        if self.failed.is_some() {
            return;
        }
        match self.grid(index, raw) {
            Ok(g) => self.grids.push(g),
            Err(e) => self.failed = Some(e),
        }
    }

    fn grid(&mut self, index: usize, raw: RawFeature) -> Result<Grid, InputError> {
        let options = self.options;
        let props = raw.properties;
        let id = text_prop(&props, &options.id_field)
            .or_else(|| match raw.id? {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .or_else(|| options.index_as_missing_id.then(|| index.to_string()));
        let Some(id_str) = id.clone() else {
            return Err(InputError::feature(
                index,
                &None,
                None,
                FeatureProblem::MissingId(options.id_field.clone()),
            ));
        };
        if let Some(&first) = self.seen.get(&id_str) {
            if !options.allow_duplicate_ids {
                return Err(InputError::feature(
                    index,
                    &id,
                    None,
                    FeatureProblem::DuplicateId { id: id_str, first },
                ));
            }
        } else {
            self.seen.insert(id_str.clone(), index);
        }
        let geometry = raw.geometry.ok_or_else(|| {
            InputError::feature(index, &id, None, FeatureProblem::MissingGeometry)
        })?;
        let kind = geometry.kind.as_deref().unwrap_or("untyped");
        let mut boundary = coords::polygonal(kind, geometry.coordinates)
            .map_err(|(position, problem)| InputError::feature(index, &id, position, problem))?;
        if options.coord_sys != CoordSys::Wgs84 && options.coord_sys != CoordSys::Cgcs2000 {
            convert(&mut boundary, options.coord_sys);
        }
        geom::normalise_orientation(&mut boundary);
        let layer = match props.get("layer").and_then(Value::as_str) {
            Some(s) => s.parse::<Layer>().map_err(|m| {
                InputError::feature(index, &id, None, FeatureProblem::BadProperty(m))
            })?,
            None => Layer::Comprehensive,
        };
        Ok(Grid {
            name: props
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
            layer,
            parent: text_prop(&props, "community"),
            ancestors: ancestors(&props),
            id: id_str,
            boundary,
            properties: props,
        })
    }
}

/// A feature's members, as far as grids need them.
#[derive(Default)]
pub(super) struct RawFeature {
    pub(super) id: Option<Value>,
    /// Empty when the member is absent or not an object.
    pub(super) properties: Map<String, Value>,
    /// None when the member is absent or null.
    pub(super) geometry: Option<RawGeometry>,
}

/// A geometry's members. Anything that is not an object reads as an untyped
/// geometry with no coordinates, which the interpretation refuses.
#[derive(Default)]
pub(super) struct RawGeometry {
    /// Only a string names a type.
    pub(super) kind: Option<String>,
    pub(super) coordinates: Option<Coords>,
}

/// Whether the root had a `features` member, and whether it was an array.
enum Features {
    Absent,
    NotArray,
    Array,
}

/// A feature member the root and a feature share; the root keeps the rest.
fn feature_member<'de, A: MapAccess<'de>>(
    key: &str,
    raw: &mut RawFeature,
    map: &mut A,
) -> Result<bool, A::Error> {
    match key {
        "id" => raw.id = map.next_value::<Scalar>()?.0,
        "properties" => {
            raw.properties = match map.next_value()? {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        }
        "geometry" => raw.geometry = map.next_value_seed(GeometrySeed)?,
        _ => return Ok(false),
    }
    Ok(true)
}

struct RootSeed<'a, 'o> {
    reader: &'a mut Reader<'o>,
    root: &'a mut RawFeature,
    root_type: &'a mut Option<String>,
    features: &'a mut Features,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GeoJSON FeatureCollection")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                *self.root_type = match map.next_value::<Scalar>()?.0 {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
            } else if key == "features" {
                self.reader.restart();
                *self.features = if map.next_value_seed(FeaturesSeed(self.reader))? {
                    Features::Array
                } else {
                    Features::NotArray
                };
            } else if !feature_member(&key, self.root, &mut map)? {
                map.next_value::<Skip>()?;
            }
        }
        Ok(())
    }

    // Any other root has no "type" member; it is still read to the end, so that
    // what is not JSON is reported as such.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The `features` member: each element becomes a grid as soon as it is read.
/// Yields whether the member was an array.
struct FeaturesSeed<'a, 'o>(&'a mut Reader<'o>);

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        loop {
            // After the first problem the rest is only parsed, as features still,
            // so that a broken document is reported as it always was.
            match seq.next_element_seed(FeatureSeed)? {
                Some(raw) => self.0.feature(raw),
                None => return Ok(true),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// One element of `features`; anything but an object reads as a feature with no
/// members.
struct FeatureSeed;

impl<'de> DeserializeSeed<'de> for FeatureSeed {
    type Value = RawFeature;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawFeature, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FeatureSeed {
    type Value = RawFeature;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GeoJSON Feature")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFeature, A::Error> {
        let mut raw = RawFeature::default();
        while let Some(key) = map.next_key::<String>()? {
            if !feature_member(&key, &mut raw, &mut map)? {
                map.next_value::<Skip>()?;
            }
        }
        Ok(raw)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawFeature, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(RawFeature::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<RawFeature, E> {
        Ok(RawFeature::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<RawFeature, E> {
        Ok(RawFeature::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<RawFeature, E> {
        Ok(RawFeature::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<RawFeature, E> {
        Ok(RawFeature::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<RawFeature, E> {
        Ok(RawFeature::default())
    }
    fn visit_unit<E>(self) -> Result<RawFeature, E> {
        Ok(RawFeature::default())
    }
}

/// A feature's `geometry`: null is no geometry; an object is read for its type and
/// coordinates; anything else is an untyped geometry.
struct GeometrySeed;

impl<'de> DeserializeSeed<'de> for GeometrySeed {
    type Value = Option<RawGeometry>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GeometrySeed {
    type Value = Option<RawGeometry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GeoJSON geometry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut g = RawGeometry::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => {
                    g.kind = match map.next_value::<Scalar>()?.0 {
                        Some(Value::String(s)) => Some(s),
                        _ => None,
                    }
                }
                "coordinates" => g.coordinates = Some(map.next_value()?),
                _ => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Some(g))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Some(RawGeometry::default()))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(RawGeometry::default()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(RawGeometry::default()))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(RawGeometry::default()))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(RawGeometry::default()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(RawGeometry::default()))
    }
}

/// A value that is read and dropped. Unlike serde's `IgnoredAny` it goes through
/// the same parsing as a `Value`, so a document broken inside it is reported with
/// the same words, and it keeps nothing.
pub(super) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
}

/// An id or a type name: a string or a number is kept, anything else is read and
/// dropped, so that a huge array where an id belongs costs no memory.
pub(super) struct Scalar(pub(super) Option<Value>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(Value::String(v.to_owned()))))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(Some(Value::from(v))))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(Value::from(v))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(Value::from(v))))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        SkipVisitor.visit_seq(seq).map(|_| Scalar(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        SkipVisitor.visit_map(map).map(|_| Scalar(None))
    }
}
