//! The case state machine as one pure function: which step may follow which state.
//! Who may take a step, and what it changes besides the state, is `dispatch`'s business.

use crate::domain::{CaseState, Lang, Localised};
use serde::{Deserialize, Serialize};

/// A step in a case's life (the `kind` of its event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    ResolveOnSite,
    Escalate,
    Accept,
    Assign,
    Acknowledge,
    Return,
    RequestExtension,
    DecideExtension,
    Handle,
    /// A check that found the result sound.
    Verify,
    /// A check that did not: back to the department.
    RejectResult,
    Close,
    Reopen,
    /// To the dispatch centre one level up.
    EscalateUp,
    /// A supervision notice (督办).
    Supervise,
    Merge,
    /// The deadline is near (system).
    DueSoon,
    /// The deadline has passed (system).
    Overdue,
}

impl Step {
    /// The step's name in Chinese (the web app's words).
    pub fn zh(self) -> &'static str {
        match self {
            Step::ResolveOnSite => "就地解决",
            Step::Escalate => "上报中心",
            Step::Accept => "受理",
            Step::Assign => "派遣",
            Step::Acknowledge => "签收",
            Step::Return => "退回",
            Step::RequestExtension => "申请延期",
            Step::DecideExtension => "审核延期",
            Step::Handle => "办结",
            Step::Verify => "核查",
            Step::RejectResult => "核查不通过",
            Step::Close => "结案",
            Step::Reopen => "重新办理",
            Step::EscalateUp => "提级办理",
            Step::Supervise => "督办",
            Step::Merge => "合并",
            Step::DueSoon => "标记即将到期",
            Step::Overdue => "标记超期",
        }
    }

    /// The event kind as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ResolveOnSite => "resolve_on_site",
            Step::Escalate => "escalate",
            Step::Accept => "accept",
            Step::Assign => "assign",
            Step::Acknowledge => "acknowledge",
            Step::Return => "return",
            Step::RequestExtension => "request_extension",
            Step::DecideExtension => "decide_extension",
            Step::Handle => "handle",
            Step::Verify => "verify",
            Step::RejectResult => "reject_result",
            Step::Close => "close",
            Step::Reopen => "reopen",
            Step::EscalateUp => "escalate_up",
            Step::Supervise => "supervise",
            Step::Merge => "merge",
            Step::DueSoon => "due_soon",
            Step::Overdue => "overdue",
        }
    }
}

/// A step the state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a case that is {from} cannot {}: {}", step.as_str().replace('_', " "), self.hint(Lang::En))]
pub struct InvalidStep {
    pub from: CaseState,
    pub step: Step,
}

impl InvalidStep {
    /// What the state allows instead.
    fn hint(&self, lang: Lang) -> String {
        match (allowed(self.from), lang) {
            (Some(steps), Lang::En) => {
                let names: Vec<_> = steps.iter().map(|s| s.as_str()).collect();
                format!("it allows {}", names.join(", "))
            }
            (Some(steps), Lang::Zh) => {
                let names: Vec<_> = steps.iter().map(|s| s.zh()).collect();
                format!("此时可以{}", names.join("、"))
            }
            (None, Lang::En) => "nothing follows".into(),
            (None, Lang::Zh) => "已无后续步骤".into(),
        }
    }
}

impl Localised for InvalidStep {
    fn zh(&self) -> String {
        format!(
            "{}的案件不能{}：{}",
            self.from.zh(),
            self.step.zh(),
            self.hint(Lang::Zh)
        )
    }
}

/// The state after `step`, or why it cannot be taken from `from`.
///
/// ```
/// use wangge::domain::CaseState;
/// use wangge::workflow::state::{next_state, Step};
/// assert_eq!(next_state(CaseState::Assigned, Step::Return), Ok(CaseState::Returned));
/// assert!(next_state(CaseState::Closed, Step::Assign).is_err());
/// ```
pub fn next_state(from: CaseState, step: Step) -> Result<CaseState, InvalidStep> {
    use CaseState::*;
    let to = match (from, step) {
        (Reported, Step::ResolveOnSite) => ResolvedOnSite,
        (Reported, Step::Escalate) => Escalated,
        (Reported | Escalated, Step::Accept) => Accepted,
        (Accepted | Returned, Step::Assign) => Assigned,
        (Assigned, Step::Acknowledge) => Acknowledged,
        (Assigned | Acknowledged, Step::Return) => Returned,
        (Assigned | Acknowledged, Step::Handle) => Handled,
        (Assigned | Acknowledged, Step::RequestExtension | Step::DecideExtension) => from,
        // A deadline runs for accepting a new report and for handling an assigned one.
        (s, Step::DueSoon | Step::Overdue) if CaseState::ON_THE_CLOCK.contains(&s) => from,
        (Handled, Step::Verify) => Verified,
        (Handled, Step::RejectResult) => Assigned,
        (Verified | Accepted | Returned, Step::Close) => Closed,
        (Closed | ResolvedOnSite, Step::Reopen) => Accepted,
        (s, Step::EscalateUp | Step::Supervise) if !s.is_final() => from,
        (Reported | Escalated | Accepted | Returned, Step::Merge) => Merged,
        _ => {
            return Err(InvalidStep { from, step });
        }
    };
    Ok(to)
}

const EVERY_STEP: [Step; 18] = [
    Step::ResolveOnSite,
    Step::Escalate,
    Step::Accept,
    Step::Assign,
    Step::Acknowledge,
    Step::Return,
    Step::RequestExtension,
    Step::DecideExtension,
    Step::Handle,
    Step::Verify,
    Step::RejectResult,
    Step::Close,
    Step::Reopen,
    Step::EscalateUp,
    Step::Supervise,
    Step::Merge,
    Step::DueSoon,
    Step::Overdue,
];

/// The steps a state allows, if any.
pub fn allowed(from: CaseState) -> Option<Vec<Step>> {
    let steps: Vec<Step> = EVERY_STEP
        .into_iter()
        .filter(|&s| !matches!(s, Step::DueSoon | Step::Overdue))
        .filter(|&s| next_state_unchecked(from, s))
        .collect();
    (!steps.is_empty()).then_some(steps)
}

fn next_state_unchecked(from: CaseState, step: Step) -> bool {
    use CaseState::*;
    matches!(
        (from, step),
        (Reported, Step::ResolveOnSite | Step::Escalate)
            | (Reported | Escalated, Step::Accept)
            | (Accepted | Returned, Step::Assign)
            | (Assigned, Step::Acknowledge)
            | (
                Assigned | Acknowledged,
                Step::Return | Step::Handle | Step::RequestExtension | Step::DecideExtension
            )
            | (Handled, Step::Verify | Step::RejectResult)
            | (Verified | Accepted | Returned, Step::Close)
            | (Closed | ResolvedOnSite, Step::Reopen)
            | (Reported | Escalated | Accepted | Returned, Step::Merge)
    ) || (matches!(step, Step::EscalateUp | Step::Supervise) && !from.is_final())
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseState::*;

    #[test]
    fn the_table_of_transitions() {
        let table: &[(CaseState, Step, Option<CaseState>)] = &[
            (Reported, Step::ResolveOnSite, Some(ResolvedOnSite)),
            (Reported, Step::Escalate, Some(Escalated)),
            (Reported, Step::Accept, Some(Accepted)),
            (Escalated, Step::Accept, Some(Accepted)),
            (Escalated, Step::ResolveOnSite, None),
            (Accepted, Step::Assign, Some(Assigned)),
            (Returned, Step::Assign, Some(Assigned)),
            (Reported, Step::Assign, None),
            (Assigned, Step::Acknowledge, Some(Acknowledged)),
            (Acknowledged, Step::Acknowledge, None),
            (Assigned, Step::Return, Some(Returned)),
            (Acknowledged, Step::Return, Some(Returned)),
            (Handled, Step::Return, None),
            (Acknowledged, Step::RequestExtension, Some(Acknowledged)),
            (Acknowledged, Step::Handle, Some(Handled)),
            (Handled, Step::Verify, Some(Verified)),
            (Handled, Step::RejectResult, Some(Assigned)),
            (Verified, Step::Close, Some(Closed)),
            (Handled, Step::Close, None),
            (Closed, Step::Reopen, Some(Accepted)),
            (ResolvedOnSite, Step::Reopen, Some(Accepted)),
            (Assigned, Step::Reopen, None),
            (Assigned, Step::EscalateUp, Some(Assigned)),
            (Closed, Step::Supervise, None),
            (Reported, Step::Merge, Some(Merged)),
            (Assigned, Step::Merge, None),
            (Merged, Step::Reopen, None),
            (Assigned, Step::Overdue, Some(Assigned)),
            (Handled, Step::Overdue, None),
        ];
        for &(from, step, want) in table {
            assert_eq!(next_state(from, step).ok(), want, "{from} + {step:?}");
        }
    }

    #[test]
    fn allowed_agrees_with_next_state_everywhere() {
        for &from in CaseState::ALL {
            for step in EVERY_STEP {
                if matches!(step, Step::DueSoon | Step::Overdue) {
                    continue;
                }
                assert_eq!(
                    next_state(from, step).is_ok(),
                    next_state_unchecked(from, step),
                    "{from} + {step:?}"
                );
            }
        }
        assert!(allowed(Merged).is_none());
        let e = next_state(Closed, Step::Assign).unwrap_err();
        assert!(e.to_string().contains("reopen"), "{e}");
    }
}
