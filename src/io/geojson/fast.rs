//! The common case, read by hand: a FeatureCollection whose coordinates are plain
//! arrays of numbers.
//!
//! Nearly all of a plan file is coordinates, and serde_json spends most of its time
//! on them: every number goes through its exact decimal parser, digit by digit,
//! after the scanner has already seen every digit. Here the structure is walked
//! by hand and each number is parsed once by the standard library's exact parser
//! (Eisel–Lemire, correctly rounded like serde_json's `float_roundtrip`), straight
//! into the ring's coordinate array. Properties, ids and unknown members go through
//! serde_json as before.
//!
//! The hand reader only ever answers with grids. Anything it does not expect (an
//! escaped key, a string among the coordinates, deeper nesting, a problem in a
//! feature, broken JSON) makes it give up, and the serde reader reads the document
//! from the start; its answer, grids or the exact first error, is the reader's
//! answer. So the hand reader must agree with the serde reader wherever it answers,
//! which the tests check on generated documents.

use super::coords::Coords;
use super::read::{RawFeature, RawGeometry, Reader, Skip};
use crate::domain::Grid;
use geo_types::Coord;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::Read;

/// Nesting deeper than a MultiPolygon's is left to the serde reader.
const MAX_DEPTH: usize = 6;

/// Where the hand reader's bytes come from: a whole document in memory, or a file
/// read a chunk at a time, so that a plan of any size is never held whole.
pub(super) trait Window {
    /// The bytes read and not yet released.
    fn bytes(&self) -> &[u8];
    /// Whether the bytes end where the document does.
    fn at_end(&self) -> bool;
    /// Releases the bytes before `keep_from` and reads at least as many again as
    /// are kept.
    fn advance(&mut self, keep_from: usize) -> std::io::Result<()>;
}

impl Window for &[u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn at_end(&self) -> bool {
        true
    }
    fn advance(&mut self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file read in chunks of at least `chunk` bytes.
pub(super) struct FileWindow {
    file: File,
    buf: Vec<u8>,
    chunk: usize,
    at_end: bool,
}

impl FileWindow {
    /// Large enough that a read costs little per byte, small enough to stay in
    /// the cache's reach and out of the memory figures.
    pub(super) const CHUNK: usize = 4 << 20;

    pub(super) fn open(file: File, chunk: usize) -> std::io::Result<Self> {
        let mut w = FileWindow {
            file,
            buf: Vec::new(),
            chunk: chunk.max(1),
            at_end: false,
        };
        w.advance(0)?;
        Ok(w)
    }
}

impl Window for FileWindow {
    fn bytes(&self) -> &[u8] {
        &self.buf
    }
    fn at_end(&self) -> bool {
        self.at_end
    }
    fn advance(&mut self, keep_from: usize) -> std::io::Result<()> {
        self.buf.drain(..keep_from.min(self.buf.len()));
        // A feature longer than a chunk doubles the window, so that reading it
        // again from its start costs no more than reading it once.
        let want = self.chunk.max(self.buf.len());
        let got = (&mut self.file)
            .take(want as u64)
            .read_to_end(&mut self.buf)?;
        self.at_end = got < want;
        Ok(())
    }
}

/// The grids of a well-formed FeatureCollection in the common shape, or None to
/// leave the document to the serde reader.
pub(super) fn read_common<W: Window>(
    w: &mut W,
    reader: &mut Reader<'_>,
) -> std::io::Result<Option<Vec<Grid>>> {
    let mut kind: Option<String>;
    let mut ring = Vec::new();
    reader.restart();
    // `{`, the members before `features`, and the array's `[`.
    let mut i = loop {
        let mut s = Scan::new(w.bytes(), w.at_end(), 0, &mut ring);
        kind = None;
        match s.head(&mut kind) {
            Some(()) => break s.i,
            None if s.starved => w.advance(0)?,
            None => return Ok(None),
        }
    };
    // The features, one at a time; a feature cut by the window's end is read
    // again from its start once more bytes are in.
    let mut first = true;
    let mut separator = false;
    loop {
        let mut s = Scan::new(w.bytes(), w.at_end(), i, &mut ring);
        s.ws();
        let step = if separator {
            match s.peek() {
                Some(b',') => {
                    s.i += 1;
                    separator = false;
                    Some(true)
                }
                Some(b']') => {
                    s.i += 1;
                    Some(false)
                }
                _ => None,
            }
        } else if first && s.peek() == Some(b']') {
            s.i += 1;
            Some(false)
        } else {
            s.feature().map(|raw| {
                reader.feature(raw);
                first = false;
                separator = true;
                true
            })
        };
        match step {
            Some(more) => {
                i = s.i;
                if reader.failed.is_some() {
                    return Ok(None);
                }
                if !more {
                    break;
                }
            }
            None if s.starved => {
                w.advance(i)?;
                i = 0;
            }
            None => return Ok(None),
        }
    }
    // The members after `features`, and nothing but white space after the root.
    loop {
        let mut s = Scan::new(w.bytes(), w.at_end(), i, &mut ring);
        let mut tail_kind = kind.clone();
        match s.tail(&mut tail_kind) {
            Some(()) => {
                kind = tail_kind;
                break;
            }
            None if s.starved => {
                w.advance(i)?;
                i = 0;
            }
            None => return Ok(None),
        }
    }
    if kind.as_deref() != Some("FeatureCollection") {
        return Ok(None);
    }
    Ok(Some(std::mem::take(&mut reader.grids)))
}

/// A cursor over the window's bytes. `starved` says that it stopped because the
/// window ended before the document did.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    at_end: bool,
    starved: bool,
    /// Where a ring's positions gather before they are copied, once, into an
    /// array of exactly their size: no growing array is reallocated and copied
    /// again, and the kept memory is only what the rings need.
    ring: &'a mut Vec<Coord<f64>>,
}

impl<'a> Scan<'a> {
    fn new(b: &'a [u8], at_end: bool, i: usize, ring: &'a mut Vec<Coord<f64>>) -> Self {
        Scan {
            b,
            i,
            at_end,
            starved: false,
            ring,
        }
    }

    /// Notes, when the cursor is at the window's end, that the document may go
    /// on. Every value inside the root is followed by a delimiter, so a value that
    /// ends exactly there may have been cut and is read again.
    fn at_window_end(&mut self) -> bool {
        let cut = self.i >= self.b.len() && !self.at_end;
        self.starved |= cut;
        cut
    }

    fn peek(&mut self) -> Option<u8> {
        let c = self.b.get(self.i).copied();
        if c.is_none() {
            self.at_window_end();
        }
        c
    }

    /// The root's `{` and the members before `features`, through the array's `[`.
    fn head(&mut self, kind: &mut Option<String>) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        loop {
            let key = self.plain_string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                "type" => *kind = Some(self.plain_string()?.to_string()),
                "features" => {
                    self.eat(b'[')?;
                    return Some(());
                }
                _ => self.skip()?,
            }
            self.ws();
            self.eat(b',')?;
            self.ws();
        }
    }

    /// The members after the `features` array, the root's `}`, and nothing but
    /// white space after it. A second `features` is left to the serde reader.
    fn tail(&mut self, kind: &mut Option<String>) -> Option<()> {
        self.ws();
        if self.peek()? == b',' {
            self.i += 1;
            self.ws();
            loop {
                let key = self.plain_string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                match key {
                    "type" => *kind = Some(self.plain_string()?.to_string()),
                    "features" => return None,
                    _ => self.skip()?,
                }
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                    }
                    _ => break,
                }
            }
        }
        self.eat(b'}')?;
        self.ws();
        if self.i < self.b.len() || self.at_window_end() {
            return None;
        }
        Some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// The members of an object whose `{` has been eaten, each handed to `member`
    /// with the cursor on its value.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.plain_string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes or control characters.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let Some(len) = self.b[start..].iter().position(|&c| c == b'"') else {
            self.i = self.b.len();
            self.at_window_end();
            return None;
        };
        let raw = &self.b[start..start + len];
        if raw.iter().any(|&c| c == b'\\' || c < 0x20) {
            return None;
        }
        self.i = start + len + 1;
        std::str::from_utf8(raw).ok()
    }

    /// One value read by serde_json, which checks it as strictly as the serde
    /// reader does.
    fn value<T: DeserializeOwned>(&mut self) -> Option<T> {
        let mut stream = serde_json::Deserializer::from_slice(&self.b[self.i..]).into_iter::<T>();
        let value = match stream.next() {
            Some(Ok(value)) => value,
            // Broken, or cut by the window: only more bytes can tell.
            _ => {
                self.i = self.b.len();
                self.at_window_end();
                return None;
            }
        };
        self.i += stream.byte_offset();
        if self.at_window_end() {
            return None;
        }
        Some(value)
    }

    fn skip(&mut self) -> Option<()> {
        self.value::<Skip>().map(|_| ())
    }

    fn feature(&mut self) -> Option<RawFeature> {
        let mut raw = RawFeature::default();
        self.eat(b'{')?;
        self.members(|p, key| {
            match key {
                "id" => raw.id = Some(p.value::<Value>()?),
                "properties" => {
                    raw.properties = match p.value::<Value>()? {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    }
                }
                "geometry" => raw.geometry = p.geometry()?,
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(raw)
    }

    /// As the serde reader: null is no geometry, an object is read, anything else
    /// is an untyped geometry.
    fn geometry(&mut self) -> Option<Option<RawGeometry>> {
        if self.peek()? != b'{' {
            let value = self.value::<Value>()?;
            return Some((!value.is_null()).then(RawGeometry::default));
        }
        self.i += 1;
        let mut g = RawGeometry::default();
        self.members(|p, key| {
            match key {
                "type" => {
                    g.kind = match p.peek()? {
                        b'"' => Some(p.plain_string()?.to_string()),
                        _ => {
                            p.skip()?;
                            None
                        }
                    }
                }
                "coordinates" => g.coordinates = Some(p.coords(0)?),
                _ => p.skip()?,
            }
            Some(())
        })?;
        Some(Some(g))
    }

    /// Nested arrays of numbers, shaped as the serde reader shapes them.
    fn coords(&mut self, depth: usize) -> Option<Coords> {
        if self.peek()? != b'[' {
            return Some(Coords::Number(self.number()?));
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(Coords::List(vec![]));
        }
        let first = self.coords(depth + 1)?;
        match first {
            Coords::Number(x) => self.position_from(x),
            Coords::Position { at, len } => self.positions_from(at, len, depth),
            other => self.rest_of_list(vec![other], depth),
        }
    }

    /// After an element: true when another follows, false at the array's end.
    fn next_element(&mut self) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.ws();
                Some(true)
            }
            b']' => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// An array that began with the number `x`. Only plain positions (numbers
    /// throughout) are taken; anything else is left to the serde reader.
    fn position_from(&mut self, x: f64) -> Option<Coords> {
        if !self.next_element()? {
            return Some(Coords::List(vec![Coords::Number(x)]));
        }
        let y = self.number()?;
        let mut len = 2;
        while self.next_element()? {
            self.number()?;
            len += 1;
        }
        Some(Coords::Position {
            at: Coord { x, y },
            len,
        })
    }

    fn positions_from(&mut self, at: Coord<f64>, len: usize, depth: usize) -> Option<Coords> {
        // Taken, so that an array nested in this one (never a valid ring) gathers
        // in one of its own.
        let mut coords = std::mem::take(self.ring);
        coords.clear();
        coords.push(at);
        while self.next_element()? {
            match self.coords(depth + 1)? {
                Coords::Position { at, len: l } if l == len => coords.push(at),
                other => {
                    let mut items: Vec<Coords> = coords
                        .iter()
                        .map(|&at| Coords::Position { at, len })
                        .collect();
                    *self.ring = coords;
                    items.push(other);
                    return self.rest_of_list(items, depth);
                }
            }
        }
        let exact = coords.to_vec();
        *self.ring = coords;
        Some(Coords::Positions { coords: exact, len })
    }

    fn rest_of_list(&mut self, mut items: Vec<Coords>, depth: usize) -> Option<Coords> {
        while self.next_element()? {
            items.push(self.coords(depth + 1)?);
        }
        Some(Coords::List(items))
    }

    /// A JSON number, exactly rounded; None for anything else, and for a number
    /// too large for an f64, which serde_json refuses.
    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        let end = number_end(self.b, start);
        // A number that reaches the window's end may go on past it, and one that
        // breaks off there may be whole once more bytes are in.
        self.i = end.unwrap_or_else(|i| i);
        if self.at_window_end() {
            return None;
        }
        let end = end.ok()?;
        // The grammar admits only ASCII.
        let text = std::str::from_utf8(&self.b[start..end]).ok()?;
        let x: f64 = text.parse().ok()?;
        x.is_finite().then_some(x)
    }
}

/// Where the JSON number starting at `i` ends, or where its grammar breaks.
fn number_end(b: &[u8], mut i: usize) -> Result<usize, usize> {
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return Err(i),
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return Err(i);
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err(i);
        }
    }
    Ok(i)
}
