//! Masking of personal data for callers who do not need it (Art. 13).

/// Keeps the first 3 and last 4 digits of a phone number of 8 or more characters; masks
/// shorter numbers except their last 2.
///
/// ```
/// assert_eq!(wangge::auth::mask_phone("13812345678"), "138****5678");
/// assert_eq!(wangge::auth::mask_phone("12345"), "***45");
/// ```
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    let (head, tail) = if n >= 8 { (3, 4) } else { (0, 2.min(n)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

/// Keeps the first character of a name (the family name, for Chinese names).
///
/// ```
/// assert_eq!(wangge::auth::mask_name("张三丰"), "张**");
/// assert_eq!(wangge::auth::mask_name("Li"), "L*");
/// ```
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}
