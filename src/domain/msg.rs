//! Words for people, in each language the service speaks (English and Chinese).
//!
//! An error that reaches a person is written once in each language where it is raised:
//! [`msg!`](crate::msg) takes both templates and the same arguments, so a message cannot
//! exist in one language only (there is deliberately no `From<String>` for [`Msg`]).
//! Typed errors whose English is their `#[error]` text add their Chinese through
//! [`Localised`]. The HTTP layer picks the language from `Accept-Language`; the CLI and
//! the logs speak English.

use std::fmt;

/// A language the service answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// English: the default, and what logs and the CLI use.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The language tag (`Content-Language`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The caller's preferred language among ours, from an `Accept-Language` value
    /// (RFC 9110 §12.5.4): the highest `q` wins, the earlier range on a tie; `*` and
    /// languages we do not speak are passed over; English when nothing matches.
    ///
    /// ```
    /// use wangge::domain::Lang;
    /// assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
    /// assert_eq!(Lang::from_accept_language("en-GB, zh;q=0.5"), Lang::En);
    /// assert_eq!(Lang::from_accept_language("fr, zh-Hans;q=0.3"), Lang::Zh);
    /// assert_eq!(Lang::from_accept_language("zh;q=0, de"), Lang::En);
    /// ```
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for range in header.split(',').take(32) {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "zh" => Lang::Zh,
                "en" => Lang::En,
                _ => continue,
            };
            if !(q > 0.0 && q <= 1.0) {
                continue;
            }
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }
}

/// One message in English and Chinese. `Display` is the English.
///
/// ```
/// use wangge::{domain::Lang, msg};
/// let id = 7;
/// let m = msg!("plan {id} is not a draft", "方案 {id} 不是草稿");
/// assert_eq!(m.to_string(), "plan 7 is not a draft");
/// assert_eq!(m.get(Lang::Zh), "方案 7 不是草稿");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Msg(Box<Words>);

/// Boxed so that an error carrying a message stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Words {
    en: String,
    zh: String,
}

impl Msg {
    /// A message from its two languages.
    pub fn new(en: impl Into<String>, zh: impl Into<String>) -> Self {
        Msg(Box::new(Words {
            en: en.into(),
            zh: zh.into(),
        }))
    }

    /// Words from outside wangge (GDAL, PROJ, the operating system) that are the same
    /// in every language: they are quoted as they came.
    pub fn verbatim(words: impl Into<String>) -> Self {
        let words = words.into();
        Msg::new(words.clone(), words)
    }

    /// A typed error's words in both languages.
    pub fn of(error: &(impl Localised + ?Sized)) -> Self {
        Msg::new(error.to_string(), error.zh())
    }

    /// The message in `lang`.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.0.en,
            Lang::Zh => &self.0.zh,
        }
    }

    /// The English words (logs, the CLI).
    pub fn en(&self) -> &str {
        &self.0.en
    }

    /// The Chinese words.
    pub fn zh(&self) -> &str {
        &self.0.zh
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.en())
    }
}

/// A message is an error in its own right (a value that does not parse, for clap and `?`).
impl std::error::Error for Msg {}

/// A typed error that can say itself in Chinese too; its `Display` is the English.
pub trait Localised: fmt::Display {
    /// The Chinese words.
    fn zh(&self) -> String;

    /// The words in `lang`.
    fn in_lang(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.to_string(),
            Lang::Zh => self.zh(),
        }
    }
}

impl Localised for Msg {
    fn zh(&self) -> String {
        self.0.zh.clone()
    }
}

/// A [`Msg`] from an English and a Chinese format string over the same arguments
/// (captured names or trailing `name = value` pairs).
#[macro_export]
macro_rules! msg {
    ($en:literal, $zh:literal $(,)?) => {
        $crate::domain::Msg::new(format!($en), format!($zh))
    };
    ($en:literal, $zh:literal, $($args:tt)+) => {
        $crate::domain::Msg::new(format!($en, $($args)+), format!($zh, $($args)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_prefers_the_highest_weight_we_speak() {
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language("*"), Lang::En);
        assert_eq!(Lang::from_accept_language("zh"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("ZH-cn"), Lang::Zh);
        assert_eq!(
            Lang::from_accept_language("en;q=0.4, zh-TW;q=0.8"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("zh;q=0.5, en;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("zh;q=abc, en;q=0.1"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("zh;q=2, en;q=0.1"), Lang::En);
    }

    #[test]
    fn a_message_carries_both_languages_and_arguments() {
        let n = 2;
        let m = msg!(
            "{n} error(s) in plan {id}",
            "方案 {id} 有 {n} 个错误",
            id = 9
        );
        assert_eq!(m.get(Lang::En), "2 error(s) in plan 9");
        assert_eq!(m.get(Lang::Zh), "方案 9 有 2 个错误");
        assert_eq!(m.to_string(), m.en());
    }
}
