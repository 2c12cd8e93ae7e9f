//! PostgreSQL's binary COPY format: a header, then per row a field count and each
//! field as a length-prefixed value in the type's binary (`recv`) representation.

pub fn header() -> Vec<u8> {
    let mut b = b"PGCOPY\n\xff\r\n\0".to_vec();
    b.extend_from_slice(&0i32.to_be_bytes()); // flags
    b.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    b
}
pub fn tuple(b: &mut Vec<u8>, fields: i16) {
    b.extend_from_slice(&fields.to_be_bytes());
}
pub fn null(b: &mut Vec<u8>) {
    b.extend_from_slice(&(-1i32).to_be_bytes());
}
pub fn bytes(b: &mut Vec<u8>, v: &[u8]) {
    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
    b.extend_from_slice(v);
}
pub fn int8(b: &mut Vec<u8>, v: i64) {
    bytes(b, &v.to_be_bytes());
}
pub fn int4(b: &mut Vec<u8>, v: i32) {
    bytes(b, &v.to_be_bytes());
}
pub fn text(b: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(s) => bytes(b, s.as_bytes()),
        None => null(b),
    }
}
/// jsonb's binary form is a version byte (1) followed by the JSON text.
pub fn jsonb(b: &mut Vec<u8>, json: &[u8]) {
    b.extend_from_slice(&((json.len() + 1) as i32).to_be_bytes());
    b.push(1);
    b.extend_from_slice(json);
}
pub fn trailer(b: &mut Vec<u8>) {
    b.extend_from_slice(&(-1i16).to_be_bytes());
}
