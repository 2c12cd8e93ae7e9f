//! Text people read as names: a name that reads as another's (an invisible or
//! direction-changing character, a blank that is not a space) is refused everywhere a
//! name or note is written.

/// Whether `c` can make a text read as another's or as nothing: controls, format
/// characters (direction marks and overrides, zero-width and joining characters, soft
/// hyphens, tags, variation selectors), line and paragraph separators, fillers that
/// render blank, and private-use characters.
///
/// ```
/// use wangge::domain::text::is_deceptive;
/// assert!(is_deceptive('\u{202e}') && is_deceptive('\u{00ad}') && is_deceptive('\u{2800}'));
/// assert!(!is_deceptive('井') && !is_deceptive(' ') && !is_deceptive('-'));
/// ```
pub fn is_deceptive(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || matches!(
            u,
            0x00AD
                | 0x034F
                | 0x061C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x2028..=0x202E
                | 0x2060..=0x206F
                | 0x2800
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF0..=0xFFFB
                | 0xE000..=0xF8FF
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
                | 0xF0000..
        )
}

/// Checks a name or note: at most `max` characters, something visible in it unless
/// `may_be_empty`, and no [deceptive](is_deceptive) character (`\n` and `\t` only where
/// `multiline`). The error says what is wrong with `field`.
///
/// ```
/// use wangge::domain::text::check_text;
/// assert!(check_text("name", "滨城区城管", 100, false, false).is_ok());
/// assert!(check_text("name", "\u{2800}", 100, false, false).is_err());
/// assert!(check_text("note", "", 200, true, false).is_ok());
/// assert!(check_text("note", "元旦\u{202e}假期", 200, true, false).is_err());
/// ```
pub fn check_text(
    field: &str,
    value: &str,
    max: usize,
    may_be_empty: bool,
    multiline: bool,
) -> Result<(), String> {
    if !may_be_empty && value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    if value
        .chars()
        .any(|c| is_deceptive(c) && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(format!(
            "{field} holds a control, invisible, blank-looking or text-direction character"
        ));
    }
    Ok(())
}
