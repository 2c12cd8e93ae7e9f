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
use serde::Deserialize;
use serde_json::{Map, Value};

/// Nesting deeper than a MultiPolygon's is left to the serde reader.
const MAX_DEPTH: usize = 6;

/// The grids of a well-formed FeatureCollection in the common shape, or None.
pub(super) fn read_common(bytes: &[u8], reader: &mut Reader<'_>) -> Option<Vec<Grid>> {
    let mut p = Scan { b: bytes, i: 0 };
    let mut kind = None;
    let mut features = false;
    p.ws();
    p.eat(b'{')?;
    p.members(|p, key| {
        match key {
            "type" => kind = Some(p.plain_string()?),
            // A repeated `features` member is left to the serde reader.
            "features" if !features => {
                p.features(reader)?;
                features = true;
            }
            "features" => return None,
            _ => p.skip()?,
        }
        Some(())
    })?;
    p.ws();
    if p.i != p.b.len() || kind != Some("FeatureCollection") || !features {
        return None;
    }
    if reader.failed.is_some() {
        return None;
    }
    Some(std::mem::take(&mut reader.grids))
}

/// A cursor over the document's bytes.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
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
        let len = self.b[start..].iter().position(|&c| c == b'"')?;
        let raw = &self.b[start..start + len];
        if raw.iter().any(|&c| c == b'\\' || c < 0x20) {
            return None;
        }
        self.i = start + len + 1;
        std::str::from_utf8(raw).ok()
    }

    /// One value read by serde_json, which checks it as strictly as the serde
    /// reader does.
    fn value<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let mut stream = serde_json::Deserializer::from_slice(&self.b[self.i..]).into_iter::<T>();
        let value = stream.next()?.ok()?;
        self.i += stream.byte_offset();
        Some(value)
    }

    fn skip(&mut self) -> Option<()> {
        self.value::<Skip>().map(|_| ())
    }

    fn features(&mut self, reader: &mut Reader<'_>) -> Option<()> {
        reader.restart();
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let raw = self.feature()?;
            reader.feature(raw);
            if reader.failed.is_some() {
                return None;
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
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
        let mut coords = Vec::with_capacity(16);
        coords.push(at);
        while self.next_element()? {
            match self.coords(depth + 1)? {
                Coords::Position { at, len: l } if l == len => coords.push(at),
                other => {
                    let mut items: Vec<Coords> = coords
                        .into_iter()
                        .map(|at| Coords::Position { at, len })
                        .collect();
                    items.push(other);
                    return self.rest_of_list(items, depth);
                }
            }
        }
        Some(Coords::Positions { coords, len })
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
        let b = self.b;
        let start = self.i;
        let mut i = start;
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
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
        }
        // The grammar above admits only ASCII.
        let text = std::str::from_utf8(&b[start..i]).ok()?;
        let x: f64 = text.parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        self.i = i;
        Some(x)
    }
}
