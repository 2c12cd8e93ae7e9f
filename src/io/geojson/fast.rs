//! The common case, read by hand: a FeatureCollection whose coordinates are plain
//! arrays of numbers.
//!
//! Nearly all of a plan file is coordinates, and serde_json spends most of its time
//! on them: every number goes through its exact decimal parser, digit by digit,
//! after the scanner has already seen every digit. Here the structure is walked
//! by hand and each number is parsed once, correctly rounded like serde_json's
//! `float_roundtrip` (by hand up to 19 digits, else by the standard library's
//! Eisel–Lemire parser), straight into the ring's coordinate array. Properties, ids
//! and unknown members go through serde_json as before.
//!
//! The hand reader only ever answers with grids. Anything it does not expect (an
//! escaped key, a string among the coordinates, deeper nesting, a problem in a
//! feature, broken JSON) makes it give up, and the serde reader reads the document
//! from the start; its answer, grids or the exact first error, is the reader's
//! answer. So the hand reader must agree with the serde reader wherever it answers,
//! which the tests check on generated documents.

use super::coords::Coords;
use super::read::{RawFeature, RawGeometry, Reader, Scalar, Skip};
use crate::domain::Grid;
use geo_types::Coord;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::Read;

/// Nesting deeper than a MultiPolygon's is left to the serde reader.
const MAX_DEPTH: usize = 6;

/// How many arrays and objects enclose a root member (the root), a feature's
/// member (the root, `features`, the feature) and a geometry's member.
const ROOT: usize = 1;
const FEATURE: usize = 3;
const GEOMETRY: usize = 4;

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
pub(super) struct FileWindow<'p> {
    file: File,
    buf: Vec<u8>,
    chunk: usize,
    at_end: bool,
    /// Bytes read so far and the file's length, told after every read.
    read: u64,
    len: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl<'p> FileWindow<'p> {
    /// Large enough that a read costs little per byte, small enough to stay in
    /// the cache's reach and out of the memory figures.
    pub(super) const CHUNK: usize = 4 << 20;

    /// A window on `file` of `len` bytes that calls `progress(read, len)` as it reads.
    pub(super) fn open(
        file: File,
        len: u64,
        chunk: usize,
        progress: &'p mut dyn FnMut(u64, u64),
    ) -> std::io::Result<Self> {
        let mut w = FileWindow {
            file,
            buf: Vec::new(),
            chunk: chunk.max(1),
            at_end: false,
            read: 0,
            len,
            progress,
        };
        w.advance(0)?;
        Ok(w)
    }
}

impl Window for FileWindow<'_> {
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
        self.read += got as u64;
        (self.progress)(self.read, self.len.max(self.read));
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
            let key = self.key()?;
            match key {
                "type" => *kind = Some(self.plain_string()?.to_string()),
                "features" => {
                    self.eat(b'[')?;
                    return Some(());
                }
                _ => self.skip(ROOT)?,
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
                let key = self.key()?;
                match key {
                    "type" => *kind = Some(self.plain_string()?.to_string()),
                    "features" => return None,
                    _ => self.skip(ROOT)?,
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
            let key = self.key()?;
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

    /// A member's name, with the cursor left on its value.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.plain_string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
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
    /// `depth` is how many arrays and objects enclose the value: serde_json refuses
    /// a document nested 128 deep, and a value read alone must not escape that.
    fn value<T: DeserializeOwned>(&mut self, depth: usize) -> Option<T> {
        let start = self.i;
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
        if self.at_window_end() || depth + nesting(&self.b[start..self.i]) >= 128 {
            return None;
        }
        Some(value)
    }

    fn skip(&mut self, depth: usize) -> Option<()> {
        self.value::<Skip>(depth).map(|_| ())
    }

    fn feature(&mut self) -> Option<RawFeature> {
        let mut raw = RawFeature::default();
        self.eat(b'{')?;
        self.members(|p, key| {
            match key {
                "id" => raw.id = p.value::<Scalar>(FEATURE)?.0,
                "properties" => {
                    raw.properties = match p.value::<Value>(FEATURE)? {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    }
                }
                "geometry" => raw.geometry = p.geometry()?,
                _ => p.skip(FEATURE)?,
            }
            Some(())
        })?;
        Some(raw)
    }

    /// As the serde reader: null is no geometry, an object is read, anything else
    /// is an untyped geometry.
    fn geometry(&mut self) -> Option<Option<RawGeometry>> {
        if self.peek()? != b'{' {
            let null = self.peek()? == b'n';
            self.skip(FEATURE)?;
            return Some((!null).then(RawGeometry::default));
        }
        self.i += 1;
        let mut g = RawGeometry::default();
        self.members(|p, key| {
            match key {
                "type" => {
                    g.kind = match p.peek()? {
                        b'"' => Some(p.plain_string()?.to_string()),
                        _ => {
                            p.skip(GEOMETRY)?;
                            None
                        }
                    }
                }
                "coordinates" => g.coordinates = Some(p.coords(0)?),
                _ => p.skip(GEOMETRY)?,
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
        let scanned = scan_number(self.b, start);
        // A number that reaches the window's end may go on past it, and one that
        // breaks off there may be whole once more bytes are in.
        self.i = scanned.as_ref().map_or_else(|&i| i, |s| s.end);
        if self.at_window_end() {
            return None;
        }
        let scanned = scanned.ok()?;
        if let Some(x) = scanned.exact {
            return Some(x);
        }
        // The grammar admits only ASCII.
        let text = std::str::from_utf8(&self.b[start..scanned.end]).ok()?;
        let x: f64 = text.parse().ok()?;
        x.is_finite().then_some(x)
    }
}

/// How deep arrays and objects nest in a JSON value's text.
fn nesting(value: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &c in value {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

/// A JSON number's extent, and its value when its digits give it exactly.
struct Scanned {
    end: usize,
    exact: Option<f64>,
}

/// The powers of ten that an f64 holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The floating-point quotient `significand as f64 / 10^k` is within two units in the
/// last place of the exact one. Whether a candidate `m·2^e` is the nearest double is
/// decided in integers with multiplications only: `|significand·2^-e - m·10^k|` against
/// half of `10^k`. `None` (the caller divides in integers) when the numbers do not fit
/// 128 bits, or the answer is not found within two steps inside the candidate's binade.
fn checked_quotient(significand: u64, k: u32) -> Option<f64> {
    let power = *EXACT_POWERS_OF_TEN.get(usize::try_from(k).ok()?)?;
    let guess = (significand as f64 / power).to_bits();
    let biased = i64::try_from(guess >> 52).ok()?;
    let shift = u32::try_from(1075 - biased).ok().filter(|&s| s <= 64)?;
    let lowest = 1u64 << 52;
    let mut mantissa = (guess & (lowest - 1)) | lowest;
    let exact = u128::from(significand) << shift;
    let ten_to_k = u128::from(*POWERS_OF_FIVE.get(usize::try_from(k).ok()?)?) << k;
    for _ in 0..3 {
        let candidate = u128::from(mantissa) * ten_to_k;
        let (distance, above) = if exact >= candidate {
            (exact - candidate, true)
        } else {
            (candidate - exact, false)
        };
        if mantissa == lowest && !above {
            // Below a power of two the next double down is half a unit away: the
            // test by half a unit does not hold there.
            return None;
        }
        let twice = distance * 2;
        let nearest = if twice < ten_to_k {
            Some(mantissa)
        } else if twice == ten_to_k {
            // Halfway: the even one of the two.
            Some(if mantissa & 1 == 0 {
                mantissa
            } else if above {
                mantissa + 1
            } else {
                mantissa - 1
            })
        } else {
            None
        };
        match nearest {
            Some(m) if (lowest..lowest << 1).contains(&m) => {
                return Some(f64::from_bits((guess & !(lowest - 1)) | (m - lowest)));
            }
            // A tie rounded out of the binade: the exact division decides.
            Some(_) => return None,
            None => {}
        }
        mantissa = if above { mantissa + 1 } else { mantissa - 1 };
        if !(lowest..lowest << 1).contains(&mantissa) {
            return None;
        }
    }
    None
}

/// 5^0 to 5^27, the divisors of [`divided_by_power_of_ten`].
const POWERS_OF_FIVE: [u64; 28] = {
    let mut p = [1u64; 28];
    let mut k = 1;
    while k < 28 {
        p[k] = p[k - 1] * 5;
        k += 1;
    }
    p
};

/// Scans the JSON number starting at `i`: where it ends (or where its grammar
/// breaks), and its value where it can be had exactly without the standard library.
/// When the significand fits 53 bits and the power of ten is exact, one multiplication
/// or division of two exact numbers rounds once, correctly (Clinger's fast path): the
/// case of coordinates with up to about 15 digits, such as the 7 decimals that GIS
/// tools usually write. Significands of 16 to 19 digits over a power of ten (a double
/// printed in full, 17 digits) go to [`divided_by_power_of_ten`]. Longer numbers, and
/// anything else, are left to the standard library.
fn scan_number(b: &[u8], mut i: usize) -> Result<Scanned, usize> {
    let negative = b.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    // The significand is gathered while scanning; `digits` says whether it is whole.
    let mut significand = Digits::default();
    match b.get(i) {
        Some(b'0') => {
            i += 1;
            significand.digits = 1;
        }
        Some(b'1'..=b'9') => significand.scan(b, &mut i),
        _ => return Err(i),
    }
    let mut fraction_len = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let before = significand.digits;
        significand.scan(b, &mut i);
        fraction_len = significand.digits - before;
        if fraction_len == 0 {
            return Err(i);
        }
    }
    let mut exponent: Option<i64> = Some(0);
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let sign = match b.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let mut power = Digits::default();
        power.scan(b, &mut i);
        if power.digits == 0 {
            return Err(i);
        }
        // Six digits are more than any exact case needs; more are left whole to
        // the standard library.
        exponent = (power.digits <= 6).then(|| sign * power.value as i64);
    }
    let exact = exponent.and_then(|exponent| {
        // Nineteen digits always fit a u64; longer numbers go to the standard library.
        if significand.digits > 19 {
            return None;
        }
        let significand = significand.value;
        let power = exponent - i64::try_from(fraction_len).ok()?;
        let x = if significand <= 1 << 53 {
            let scale = *EXACT_POWERS_OF_TEN.get(usize::try_from(power.unsigned_abs()).ok()?)?;
            let x = significand as f64;
            if power >= 0 { x * scale } else { x / scale }
        } else {
            // 16 to 19 digits, such as a double printed in full (17 digits).
            divided_by_power_of_ten(significand, u32::try_from(-power).ok()?)?
        };
        Some(if negative { -x } else { x })
    });
    Ok(Scanned { end: i, exact })
}

/// Decimal digits read into an integer: exact while `digits <= 19`, wrapped beyond.
#[derive(Default)]
struct Digits {
    value: u64,
    digits: usize,
}

impl Digits {
    /// Reads the digits from `b[*i..]`, eight at a time where eight follow.
    fn scan(&mut self, b: &[u8], i: &mut usize) {
        while let Some(eight) = b.get(*i..*i + 8).and_then(eight_digits) {
            self.value = self.value.wrapping_mul(100_000_000).wrapping_add(eight);
            self.digits += 8;
            *i += 8;
        }
        while let Some(d) = b.get(*i).filter(|d| d.is_ascii_digit()) {
            self.value = self
                .value
                .wrapping_mul(10)
                .wrapping_add(u64::from(d - b'0'));
            self.digits += 1;
            *i += 1;
        }
    }
}

/// The value of eight ASCII digits, `None` when any of the eight bytes is not one: the
/// bytes as one little-endian word, tested and combined in a few word operations (as
/// in Lemire's fast_float).
fn eight_digits(chunk: &[u8]) -> Option<u64> {
    let v = u64::from_le_bytes(chunk.try_into().ok()?);
    let high = 0xF0F0_F0F0_F0F0_F0F0;
    // Each byte 0x30..=0x39: its high nibble is 3, and adding 6 does not carry into it.
    if (v & high) | ((v.wrapping_add(0x0606_0606_0606_0606) & high) >> 4) != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = v - 0x3030_3030_3030_3030;
    // Pairs of digits, then pairs of pairs, then the two halves.
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let low = (v & mask).wrapping_mul(0x000F_4240_0000_0064);
    let high = ((v >> 16) & mask).wrapping_mul(0x0000_2710_0000_0001);
    Some(u64::from((low.wrapping_add(high) >> 32) as u32))
}

/// `significand / 10^k`, exactly rounded (to nearest, ties to even), for a significand
/// above 2^53 and `1 <= k <= 27`; `None` outside that range.
///
/// `significand / 10^k = significand / 5^k · 2^-k`, and the division by 5^k is done
/// in 128-bit integers: `(significand << 64) / 5^k` has at least 55 bits (more than
/// the 53 of a double plus the rounding bit) and the remainder says whether anything
/// was cut off. Scaling by 2^-k is exact, so the one rounding is that of the quotient.
fn divided_by_power_of_ten(significand: u64, k: u32) -> Option<f64> {
    if significand <= 1 << 53 || !(1..=27).contains(&k) {
        return None;
    }
    if let Some(x) = checked_quotient(significand, k) {
        return Some(x);
    }
    let divisor = u128::from(*POWERS_OF_FIVE.get(usize::try_from(k).ok()?)?);
    let numerator = u128::from(significand) << 64;
    let (quotient, remainder) = (numerator / divisor, numerator % divisor);
    let bits = 128 - quotient.leading_zeros();
    let shift = bits - 53;
    let mut mantissa = (quotient >> shift) as u64;
    let round = (quotient >> (shift - 1)) & 1 == 1;
    let sticky = remainder != 0 || quotient & ((1u128 << (shift - 1)) - 1) != 0;
    let mut exponent = i64::from(shift) - 64 - i64::from(k);
    if round && (sticky || mantissa & 1 == 1) {
        mantissa += 1;
        if mantissa == 1 << 53 {
            mantissa >>= 1;
            exponent += 1;
        }
    }
    // |exponent| stays far inside the normal range: 2^exponent is exact.
    let scale = f64::from_bits(u64::try_from(1023 + exponent).ok()? << 52);
    Some(mantissa as f64 * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Option<f64> {
        let mut ring = Vec::new();
        Scan::new(text.as_bytes(), true, 0, &mut ring).number()
    }

    #[test]
    fn the_exact_path_agrees_with_the_standard_parser_at_its_limits() {
        for text in [
            "0",
            "-0",
            "-0.0",
            "1e22",
            "1e23",
            "9007199254740992",
            "9007199254740993",
            "0.1",
            "120.3897998",
            "37.5061234",
            "-117.0000001",
            "1E-22",
            "1e-23",
            "123456789012345678901",
            "0.0000000000000000000000001",
            "1.5e+3",
            "2.0000000000000004",
            "1e400",
            "1e-400",
        ] {
            let expected: f64 = text.parse().unwrap();
            let got = parse(text);
            if expected.is_finite() {
                assert_eq!(got.map(f64::to_bits), Some(expected.to_bits()), "{text}");
            } else {
                assert_eq!(got, None, "{text}");
            }
        }
    }

    #[test]
    fn eight_digits_are_read_as_a_number_and_anything_else_refused() {
        assert_eq!(eight_digits(b"12345678"), Some(12_345_678));
        assert_eq!(eight_digits(b"00000000"), Some(0));
        assert_eq!(eight_digits(b"99999999"), Some(99_999_999));
        for not_digits in [
            &b"1234567."[..],
            b"/2345678",
            b":2345678",
            b"1234 678",
            b"1234567",
        ] {
            assert_eq!(eight_digits(not_digits), None, "{not_digits:?}");
        }
    }

    #[test]
    fn long_significands_round_as_the_standard_parser_at_ties_and_limits() {
        for text in [
            "118.44854172818256",
            "37.712094926325385",
            "9007199254740993e-1",
            "9007199254740993.5",
            "18446744073709551615e-27",
            "1844674407370955161.5",
            "900719925474099.45",
            "9.007199254740993",
            "0.9007199254740993",
            "-118.44715678781584",
            "0.99999999999999994",
            "0.49999999999999997",
            "127.99999999999999",
            "-127.99999999999999",
            "9.9999999999999994e-1",
            "128.00000000000001",
        ] {
            let expected: f64 = text.parse().unwrap();
            assert_eq!(
                parse(text).map(f64::to_bits),
                Some(expected.to_bits()),
                "{text}"
            );
        }
    }

    proptest! {
        #[test]
        fn long_significands_divide_exactly_as_the_standard_parser_reads_them(
            significand in (1u64 << 53) + 1..=u64::MAX,
            k in 1u32..=27,
        ) {
            let expected: f64 = format!("{significand}e-{k}").parse().unwrap();
            prop_assert_eq!(
                divided_by_power_of_ten(significand, k).map(f64::to_bits),
                Some(expected.to_bits())
            );
        }

        #[test]
        fn doubles_next_to_a_power_of_two_are_read_back_exactly(
            power in -12i32..12,
            below in 0u64..300,
            digits in 15usize..19,
        ) {
            let x = f64::from_bits(2f64.powi(power).to_bits() - below);
            for text in [format!("{x:.digits$e}"), format!("{:.*}", digits, x)] {
                let expected: f64 = text.parse().unwrap();
                prop_assert_eq!(parse(&text).map(f64::to_bits), Some(expected.to_bits()), "{}", text);
            }
        }

        #[test]
        fn exact_ties_between_two_doubles_round_to_even(
            half in (1u64 << 52)..(1u64 << 53),
            k in 1u32..=4,
        ) {
            // An odd 54-bit m over 2^k lies exactly halfway between two doubles.
            let significand = (2 * half + 1) * 5u64.pow(k);
            let expected: f64 = format!("{significand}e-{k}").parse().unwrap();
            prop_assert_eq!(
                divided_by_power_of_ten(significand, k).map(f64::to_bits),
                Some(expected.to_bits())
            );
        }

        #[test]
        fn numbers_are_read_exactly_as_the_standard_parser_reads_them(
            negative in any::<bool>(),
            integer in "(0|[1-9][0-9]{0,18})",
            fraction in prop::option::of("[0-9]{1,20}"),
            exponent in prop::option::of(-40i32..40),
        ) {
            let mut text = format!("{}{integer}", if negative { "-" } else { "" });
            if let Some(f) = fraction {
                text.push('.');
                text.push_str(&f);
            }
            if let Some(e) = exponent {
                text.push_str(&format!("e{e}"));
            }
            let expected: f64 = text.parse().unwrap();
            prop_assert_eq!(parse(&text).map(f64::to_bits), Some(expected.to_bits()), "{}", text);
        }
    }
}
