//! Which attribute of a boundary file means what, and a review that never lets an
//! attribute vanish silently: when the grids came out without names, households or
//! declared communities, the review names the fields that could have given them (by
//! their names and by what they hold), so a planner can map them and check again.
//!
//! The review reads only the grids (every attribute a reader found stays in a grid's
//! properties), so it runs the same after a CLI import, an upload, or a re-mapping of a
//! stored draft.
//!
//! ```
//! use wangge::domain::{Grid, Layer};
//! use wangge::io::mapping::{Role, review};
//! use serde_json::json;
//!
//! let grid = |name: &str, hh: i64| Grid {
//!     id: "1".into(), name: None, parent: None, layer: Layer::Comprehensive,
//!     ancestors: vec![],
//!     boundary: geo_types::MultiPolygon(vec![]),
//!     properties: json!({"WGMC": name, "HS": hh}).as_object().unwrap().clone(),
//! };
//! let report = review(&[grid("东关一网格", 120), grid("东关二网格", 95)]);
//! let name = report.warnings.iter().find(|w| w.role == Role::Name).unwrap();
//! assert_eq!(name.candidates[0].field, "WGMC");
//! ```

use crate::domain::Grid;
use crate::domain::text::TextKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What an attribute can mean to wangge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The grid's id or code in the sender's system.
    Id,
    /// The grid's name (网格名称), shown on every public card.
    Name,
    /// The community or village the grid belongs to (所属社区).
    Parent,
    /// Households in the grid (户数), used by the workload rules.
    Households,
}

impl Role {
    /// The roles a planner is warned about when no field fills them.
    pub const EXPECTED: [Role; 3] = [Role::Name, Role::Households, Role::Parent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Id => "id",
            Role::Name => "name",
            Role::Parent => "parent",
            Role::Households => "households",
        }
    }

    /// Field names recognised without being named, compared ignoring ASCII case:
    /// English, Chinese, and the pinyin initials Chinese GIS data often uses.
    pub fn default_fields(self) -> &'static [&'static str] {
        match self {
            Role::Id => &[
                "grid_id",
                "code",
                "id",
                "网格编码",
                "网格代码",
                "编码",
                "代码",
                "wgbm",
                "wgdm",
            ],
            Role::Name => &["name", "grid_name", "网格名称", "名称", "网格名", "wgmc"],
            Role::Parent => &[
                "community",
                "parent",
                "parent_code",
                "community_code",
                "所属社区",
                "社区编码",
                "社区代码",
                "所属村居",
                "sssq",
                "sqbm",
            ],
            Role::Households => &["households", "hh", "户数", "住户数", "hs"],
        }
    }

    /// Parts of a field name that suggest the role (lowercased match).
    fn name_hints(self) -> &'static [&'static str] {
        match self {
            Role::Id => &["编码", "代码", "code", "bm", "dm"],
            Role::Name => &["名", "name", "mc"],
            Role::Parent => &["社区", "村", "居委", "community", "parent", "sq"],
            Role::Households => &["户", "household", "hh", "hs"],
        }
    }

    /// The form field and CLI flag that choose this role's field.
    pub fn option(self) -> (&'static str, &'static str) {
        match self {
            Role::Id => ("id_field", "--id-field"),
            Role::Name => ("name_field", "--name-field"),
            Role::Parent => ("parent_field", "--parent-field"),
            Role::Households => ("households_field", "--households-field"),
        }
    }
}

/// Attributes wangge itself adds to a grid's properties; never a sender's field.
pub const DERIVED_FIELDS: [&str; 2] = ["households", "source_id"];

/// A field that could fill a role, and why it is proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub field: String,
    /// `name` (its name suggests the role), `content` (its values do), or both.
    pub because: Vec<String>,
    /// A value from the file, to recognise the field by.
    pub sample: Option<String>,
}

/// A role no field filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingWarning {
    pub role: Role,
    pub detail: String,
    /// `detail` in Chinese (empty in warnings stored before it was written).
    #[serde(default)]
    pub detail_zh: String,
    /// Best first; empty when no field looks like it.
    pub candidates: Vec<Candidate>,
}

/// What the review found: the field each role was read from (if any), every field of
/// the file, and a warning for each expected role left empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MappingReport {
    pub used: BTreeMap<Role, String>,
    pub fields: Vec<String>,
    pub warnings: Vec<MappingWarning>,
}

impl MappingReport {
    /// The report as JSON for a validation report.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn count_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What the grids hold for a role, as the reader mapped it.
fn mapped(role: Role, g: &Grid) -> Option<String> {
    match role {
        Role::Id => Some(g.id.clone()),
        Role::Name => g.name.clone(),
        Role::Parent => g.parent.clone(),
        Role::Households => g.properties.get("households").and_then(text_of),
    }
}

/// Whether every value of `field` is what a region code of the community level looks
/// like (12 digits).
fn looks_like_community_code(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the values of one field fit the role, judged by what they hold.
fn content_fits(role: Role, values: &[&Value], grids: usize) -> bool {
    let present: Vec<&Value> = values
        .iter()
        .copied()
        .filter(|v| text_of(v).is_some())
        .collect();
    if present.len() * 2 < grids.max(1) {
        return false;
    }
    match role {
        Role::Id => false,
        Role::Name => {
            let texts: Vec<String> = present.iter().filter_map(|v| text_of(v)).collect();
            let distinct: BTreeSet<&String> = texts.iter().collect();
            texts.iter().all(|t| {
                t.chars().count() <= 60
                    && t.chars().any(|c| c.is_alphabetic())
                    && !looks_like_community_code(t)
            }) && (distinct.len() > 1 || texts.len() == 1)
        }
        Role::Households => {
            let counts: Vec<Option<i64>> = present.iter().map(|v| count_of(v)).collect();
            counts
                .iter()
                .all(|c| c.is_some_and(|n| (0..=100_000).contains(&n)))
                && counts.iter().collect::<BTreeSet<_>>().len() > 1
        }
        Role::Parent => {
            let texts: Vec<String> = present.iter().filter_map(|v| text_of(v)).collect();
            texts.iter().all(|t| looks_like_community_code(t))
        }
    }
}

/// Field names that hold people's names or contacts (personal data).
fn looks_personal(field: &str) -> bool {
    let lower = field.to_lowercase();
    [
        "姓名",
        "人员",
        "电话",
        "手机",
        "身份证",
        "联系",
        "网格员",
        "负责人",
        "phone",
        "mobile",
        "tel",
        "contact",
        "person",
        "member",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

fn name_fits(role: Role, field: &str) -> bool {
    let lower = field.to_lowercase();
    role.default_fields()
        .iter()
        .any(|d| d.eq_ignore_ascii_case(field))
        || role.name_hints().iter().any(|h| lower.contains(h))
}

/// Reviews how the grids' attributes were mapped: for each expected role that no grid
/// has a value for, a warning with the fields that could fill it, best first (fields
/// whose name and content both fit, then content, then name).
pub fn review(grids: &[Grid]) -> MappingReport {
    let mut fields: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for g in grids {
        for k in g.properties.keys() {
            if !DERIVED_FIELDS.contains(&k.as_str()) && seen.insert(k.clone()) {
                fields.push(k.clone());
            }
        }
    }
    let mut report = MappingReport {
        fields: fields.clone(),
        ..MappingReport::default()
    };
    for role in [Role::Id, Role::Name, Role::Parent, Role::Households] {
        let values: Vec<Option<String>> = grids.iter().map(|g| mapped(role, g)).collect();
        if values.iter().any(Option::is_some) {
            // The field it came from is the one whose values match the grids' own.
            if let Some(f) = fields.iter().find(|f| {
                grids.iter().zip(&values).all(|(g, v)| {
                    g.properties.get(f.as_str()).and_then(text_of).as_ref() == v.as_ref()
                })
            }) {
                report.used.insert(role, f.clone());
            }
            continue;
        }
        if !Role::EXPECTED.contains(&role) {
            continue;
        }
        let mut candidates: Vec<((u8, std::cmp::Reverse<usize>), Candidate)> = Vec::new();
        for f in &fields {
            if report.used.values().any(|u| u == f) {
                continue;
            }
            let column: Vec<&Value> = grids
                .iter()
                .map(|g| g.properties.get(f.as_str()).unwrap_or(&Value::Null))
                .collect();
            // A copy of the ids (GDAL turns a GeoJSON feature id into a field) is not
            // a name or anything else.
            let copies_ids = grids
                .iter()
                .zip(&column)
                .all(|(g, v)| text_of(v).as_deref() == Some(g.id.as_str()));
            if copies_ids && report.used.contains_key(&Role::Id) {
                continue;
            }
            // A person's name or contact is not a grid's name, and its values are not
            // shown as samples to whoever reads the plan.
            if role == Role::Name && looks_personal(f) {
                continue;
            }
            // Never propose as names what the name rules would refuse.
            if role == Role::Name
                && column.iter().filter_map(|v| text_of(v)).any(|t| {
                    crate::domain::text::check_text(
                        "name",
                        &t,
                        crate::domain::MAX_GRID_NAME_CHARS,
                        false,
                        TextKind::Name,
                    )
                    .is_err()
                })
            {
                continue;
            }
            let by_content = content_fits(role, &column, grids.len());
            let by_name = name_fits(role, f);
            if !(by_content || by_name) {
                continue;
            }
            let mut because = Vec::new();
            if by_name {
                because.push("name".to_string());
            }
            if by_content {
                because.push("content".to_string());
            }
            let rank = match (by_name, by_content) {
                (true, true) => 0,
                (false, true) => 1,
                _ => 2,
            };
            // Among equals, the field with more distinct values first: a grid's own
            // name before the name of the community it lies in.
            let distinct = column
                .iter()
                .filter_map(|v| text_of(v))
                .collect::<BTreeSet<_>>()
                .len();
            let sample = column.iter().find_map(|v| text_of(v)).map(|s| {
                let short: String = s.chars().take(40).collect();
                short
            });
            candidates.push((
                (rank, std::cmp::Reverse(distinct)),
                Candidate {
                    field: f.clone(),
                    because,
                    sample,
                },
            ));
        }
        candidates.sort_by_key(|(rank, _)| *rank);
        let candidates: Vec<Candidate> = candidates.into_iter().map(|(_, c)| c).collect();
        // A file with no household or community field has lost nothing; one without
        // names leaves every public card blank, so that is always said.
        if candidates.is_empty() && role != Role::Name {
            continue;
        }
        let (what, what_zh) = match role {
            Role::Name => (
                "names (the public card shows none)",
                "名称（公开卡片将不显示名称）",
            ),
            Role::Households => ("household counts", "户数"),
            Role::Parent => (
                "communities (they are assigned by location instead)",
                "所属村社区（将改为按位置确定）",
            ),
            Role::Id => ("ids", "编码"),
        };
        let (form, flag) = role.option();
        let (detail, detail_zh) = if candidates.is_empty() {
            (
                format!("no field gave the grids' {what}"),
                format!("没有字段提供网格的{what_zh}"),
            )
        } else {
            let names: Vec<String> = candidates
                .iter()
                .map(|c| format!("{:?}", c.field))
                .collect();
            let names = names.join(", ");
            (
                format!(
                    "no field gave the grids' {what}; {names} could: choose it as {form} ({flag})"
                ),
                format!("没有字段提供网格的{what_zh}；{names} 可以：请选作 {form}（{flag}）"),
            )
        };
        report.warnings.push(MappingWarning {
            role,
            detail,
            detail_zh,
            candidates,
        });
    }
    report
}

/// A planner's choice of fields for a stored draft, applied to its grids' attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChoice {
    pub name_field: Option<String>,
    pub households_field: Option<String>,
    pub parent_field: Option<String>,
}

/// Why a field choice cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChoiceError {
    #[error("{option} {field} is not a field of the plan's file (fields: {fields})")]
    NoSuchField {
        option: &'static str,
        field: String,
        fields: String,
    },
    #[error("choose at least one of name_field, households_field or parent_field")]
    NothingChosen,
}

impl crate::domain::Localised for ChoiceError {
    fn zh(&self) -> String {
        match self {
            ChoiceError::NoSuchField {
                option,
                field,
                fields,
            } => format!("{option} {field} 不是方案文件中的字段（字段有：{fields}）"),
            ChoiceError::NothingChosen => {
                "请至少选择 name_field、households_field 或 parent_field 之一".into()
            }
        }
    }
}

impl FieldChoice {
    /// Sets each chosen role on the grids from their own attributes (a value that is
    /// empty or not a count leaves the grid without one). Every chosen field must be a
    /// field the grids carry.
    pub fn apply(&self, grids: &mut [Grid]) -> Result<(), ChoiceError> {
        let chosen = [
            (Role::Name, &self.name_field),
            (Role::Households, &self.households_field),
            (Role::Parent, &self.parent_field),
        ];
        if chosen.iter().all(|(_, f)| f.is_none()) {
            return Err(ChoiceError::NothingChosen);
        }
        let fields = review(grids).fields;
        for (role, field) in chosen {
            let Some(field) = field else { continue };
            if !fields.iter().any(|f| f == field) {
                return Err(ChoiceError::NoSuchField {
                    option: role.option().0,
                    field: crate::io::upload::quote(field),
                    fields: fields
                        .iter()
                        .map(|f| crate::io::upload::quote(f))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        for g in grids.iter_mut() {
            for (role, field) in chosen {
                let Some(field) = field else { continue };
                let value = g.properties.get(field.as_str());
                match role {
                    Role::Name => g.name = value.and_then(text_of),
                    Role::Parent => g.parent = value.and_then(text_of),
                    Role::Households => {
                        let count = value.and_then(count_of).map(Value::from);
                        g.properties
                            .insert("households".into(), count.unwrap_or(Value::Null));
                    }
                    Role::Id => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Layer;
    use serde_json::json;

    fn grid(props: Value) -> Grid {
        Grid {
            id: "g".into(),
            name: None,
            parent: None,
            layer: Layer::Comprehensive,
            ancestors: vec![],
            boundary: geo_types::MultiPolygon(vec![]),
            properties: props.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn unmapped_names_and_households_are_warned_with_the_fields_that_fit() {
        let grids = vec![
            grid(json!({"字段A": "东关一网格", "字段B": 120, "备注": "x"})),
            grid(json!({"字段A": "东关二网格", "字段B": 95, "备注": "x"})),
        ];
        let r = review(&grids);
        let name = r.warnings.iter().find(|w| w.role == Role::Name).unwrap();
        assert_eq!(name.candidates[0].field, "字段A");
        assert_eq!(name.candidates[0].because, ["content"]);
        assert_eq!(name.candidates[0].sample.as_deref(), Some("东关一网格"));
        let hh = r
            .warnings
            .iter()
            .find(|w| w.role == Role::Households)
            .unwrap();
        assert_eq!(hh.candidates.len(), 1, "{hh:?}");
        assert_eq!(hh.candidates[0].field, "字段B");
        assert!(hh.detail.contains("households_field"), "{}", hh.detail);
    }

    #[test]
    fn mapped_roles_name_their_field_and_carry_no_warning() {
        let mut g1 = grid(json!({"网格名称": "一", "户数": 10, "households": 10}));
        g1.name = Some("一".into());
        let mut g2 = grid(json!({"网格名称": "二", "户数": 12, "households": 12}));
        g2.name = Some("二".into());
        g1.parent = Some("371602001001".into());
        g2.parent = Some("371602001001".into());
        g1.properties
            .insert("所属社区".into(), json!("371602001001"));
        g2.properties
            .insert("所属社区".into(), json!("371602001001"));
        let r = review(&[g1, g2]);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.used[&Role::Name], "网格名称");
        assert_eq!(r.used[&Role::Households], "户数");
        assert_eq!(r.used[&Role::Parent], "所属社区");
        assert!(!r.fields.contains(&"households".to_string()));
    }

    #[test]
    fn a_name_hint_alone_is_a_candidate_after_content_matches() {
        let grids = vec![
            grid(json!({"WGMC": 1, "label": "甲"})),
            grid(json!({"WGMC": 2, "label": "乙"})),
        ];
        let r = review(&grids);
        let name = r.warnings.iter().find(|w| w.role == Role::Name).unwrap();
        let fields: Vec<&str> = name.candidates.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["label", "WGMC"]);
    }

    #[test]
    fn a_choice_sets_names_households_and_parents_from_the_grids_own_fields() {
        let mut grids = vec![grid(
            json!({"mc": "东关一网格", "hs": "88", "sq": "371602001001"}),
        )];
        FieldChoice {
            name_field: Some("mc".into()),
            households_field: Some("hs".into()),
            parent_field: Some("sq".into()),
        }
        .apply(&mut grids)
        .unwrap();
        assert_eq!(grids[0].name.as_deref(), Some("东关一网格"));
        assert_eq!(grids[0].properties["households"], json!(88));
        assert_eq!(grids[0].parent.as_deref(), Some("371602001001"));
        assert!(review(&grids).warnings.is_empty());
    }

    #[test]
    fn people_s_names_and_refused_names_are_never_proposed_as_grid_names() {
        let grids = vec![
            grid(
                json!({"网格员姓名": "张伟", "电话": "13900000000", "rlo": "\u{202e}甲", "标注": "甲"}),
            ),
            grid(
                json!({"网格员姓名": "李娜", "电话": "13900000001", "rlo": "\u{202e}乙", "标注": "乙"}),
            ),
        ];
        let r = review(&grids);
        let name = r.warnings.iter().find(|w| w.role == Role::Name).unwrap();
        let fields: Vec<&str> = name.candidates.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["标注"]);
    }

    #[test]
    fn a_choice_of_a_field_the_file_does_not_have_is_refused() {
        let mut grids = vec![grid(json!({"mc": "一"}))];
        let err = FieldChoice {
            name_field: Some("名称".into()),
            ..FieldChoice::default()
        }
        .apply(&mut grids)
        .unwrap_err();
        assert!(err.to_string().contains("fields: \"mc\""), "{err}");
        assert_eq!(
            FieldChoice::default().apply(&mut grids),
            Err(ChoiceError::NothingChosen)
        );
    }
}
