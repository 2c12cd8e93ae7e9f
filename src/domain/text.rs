//! Text people read. A **name** (of a department, matter or member; a calendar note)
//! must read as what it is: nothing invisible, blank-looking or direction-changing in
//! it, so that no name can pass for another's or for nothing. **Prose** (a report's
//! description, a step's note) may hold emoji and line breaks, but nothing that
//! reorders what follows or hides as a control character.

use super::Msg;
use crate::msg;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// What a text is, for [`check_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Read as an identity: only visible characters and plain spaces.
    Name,
    /// Read as running text: line breaks, tabs and emoji sequences allowed.
    Prose,
}

/// Whether `c` can make a name read as another's or as nothing: controls, format
/// characters (direction marks, zero-width and joining characters, soft hyphens, tags),
/// unassigned code points and noncharacters, private use, line and paragraph
/// separators, any space but U+0020, and the marks and letters that render blank
/// (variation selectors, fillers, the braille blank).
///
/// ```
/// use wangge::domain::text::is_deceptive;
/// for c in ['\u{202e}', '\u{00ad}', '\u{2800}', '\u{3000}', '\u{00a0}', '\u{1bca0}', '\u{fffe}'] {
///     assert!(is_deceptive(c), "{:04x}", c as u32);
/// }
/// assert!(!is_deceptive('井') && !is_deceptive(' ') && !is_deceptive('-') && !is_deceptive('Ⅲ'));
/// ```
pub fn is_deceptive(c: char) -> bool {
    use GeneralCategory as G;
    match c.general_category() {
        G::Control
        | G::Format
        | G::Surrogate
        | G::PrivateUse
        | G::Unassigned
        | G::LineSeparator
        | G::ParagraphSeparator => true,
        G::SpaceSeparator => c != ' ',
        // Marks and letters that render as nothing or as a blank.
        _ => matches!(
            c as u32,
            0x034F
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x2800
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFFA0
                | 0x16FE4
                | 0x1D159
                | 0x1D173..=0x1D17A
                | 0xE0100..=0xE01EF
        ),
    }
}

/// Whether `c` can disturb prose: control characters other than line breaks and tabs,
/// and the explicit direction embeddings, overrides and isolates (which reorder the
/// text that follows them).
///
/// ```
/// use wangge::domain::text::is_disruptive;
/// assert!(is_disruptive('\u{202e}') && is_disruptive('\u{0007}'));
/// assert!(!is_disruptive('\n') && !is_disruptive('\u{200d}') && !is_disruptive('\u{fe0f}'));
/// ```
pub fn is_disruptive(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        || matches!(c as u32, 0x202A..=0x202E | 0x2066..=0x2069)
}

/// The Chinese words for a checked field (the field's own name when it has none).
fn field_zh(field: &str) -> String {
    let words = match field {
        "name" | "its name" => "名称",
        "description" => "描述",
        "explanation" => "说明",
        "feedback" => "办理反馈",
        "note" => "备注",
        "reason" => "理由",
        "result" => "结果",
        "address" => "地址",
        "contact.name" => "联系人姓名",
        "contact.phone" => "联系电话",
        "contact.email" => "电子邮箱",
        "matter" => "事项",
        "title" => "标题",
        other => return format!("{other} "),
    };
    words.to_string()
}

/// Whether `s` can be a phone number someone dials: up to 32 of digits, `+`, `-` and
/// spaces, with at least one digit.
///
/// ```
/// use wangge::domain::text::is_phone;
/// assert!(is_phone("0543-12345-02") && is_phone("+86 138 0000 0000"));
/// assert!(!is_phone("<script>") && !is_phone("--"));
/// ```
pub fn is_phone(s: &str) -> bool {
    s.len() <= 32
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_digit() || b"+- ".contains(&b))
}

/// Whether `s` has the shape of an e-mail address: a local part of letters, digits and
/// `._%+-` (no leading, trailing or doubled dot), `@`, and a domain of two or more
/// labels of letters, digits and inner hyphens, the last one letters. Letters may be
/// any script's; nothing invisible, no spaces, brackets or slashes.
///
/// ```
/// use wangge::domain::text::is_email;
/// assert!(is_email("wang.xm+report@example.org") && is_email("张三@例子.中国"));
/// assert!(!is_email("a@b") && !is_email("<a>@b.c") && !is_email("a b@c.d"));
/// assert!(!is_email("a@-.-") && !is_email("a@b..c") && !is_email("a@b.c/../x"));
/// assert!(!is_email("a@b.c\u{200b}") && !is_email("=cmd|x@a.b"));
/// ```
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "._%+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.chars().count() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    local_ok
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

/// Checks a text of `kind`: at most `max` characters, something visible in it unless
/// `may_be_empty`, no space at either end of a name, and nothing
/// [deceptive](is_deceptive) in a name or
/// [disruptive](is_disruptive) in prose. The error says what is wrong with `field`.
///
/// ```
/// use wangge::domain::text::{TextKind, check_text};
/// assert!(check_text("name", "滨城区城管", 100, false, TextKind::Name).is_ok());
/// assert!(check_text("name", "\u{1bca0}", 100, false, TextKind::Name).is_err());
/// assert!(check_text("note", "", 200, true, TextKind::Name).is_ok());
/// assert!(check_text("note", "元旦\u{3000}假期", 200, true, TextKind::Name).is_err());
/// assert!(check_text("name", " 滨城区 ", 100, false, TextKind::Name).is_err());
/// assert!(check_text("note", "   ", 200, true, TextKind::Name).is_err());
/// assert!(check_text("description", "井盖没了❤️\n快来", 2000, false, TextKind::Prose).is_ok());
/// assert!(check_text("description", "\u{202e}快来", 2000, false, TextKind::Prose).is_err());
/// ```
pub fn check_text(
    field: &str,
    value: &str,
    max: usize,
    may_be_empty: bool,
    kind: TextKind,
) -> Result<(), Msg> {
    let label = field_zh(field);
    if !may_be_empty && value.trim().is_empty() {
        return Err(msg!("{field} must not be empty", "{label}不能为空"));
    }
    if value.chars().count() > max {
        return Err(msg!(
            "{field} is longer than {max} characters",
            "{label}超过 {max} 个字符"
        ));
    }
    if kind == TextKind::Name && value.trim() != value {
        return Err(msg!(
            "{field} starts or ends with a space",
            "{label}的开头或结尾有空格"
        ));
    }
    let bad = match kind {
        TextKind::Name => value.chars().any(is_deceptive),
        TextKind::Prose => value.chars().any(is_disruptive),
    };
    if bad {
        return Err(match kind {
            TextKind::Name => msg!(
                "{field} holds a control, invisible, blank-looking or text-direction character, \
                 or a space other than U+0020",
                "{label}含有控制字符、不可见或显示为空白的字符、文字方向字符，或 U+0020 以外的空格"
            ),
            TextKind::Prose => msg!(
                "{field} holds a control or text-direction override character",
                "{label}含有控制字符或改变文字方向的字符"
            ),
        });
    }
    Ok(())
}
