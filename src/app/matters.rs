//! The matters list (Art. 10), departments with their staff and webhooks, and the
//! working-day calendar: each change authorised against what is stored and audited
//! where the object's auditors look.

use super::{App, AppError, AppResult, require};
use crate::auth::{Action, Principal};
use crate::domain::MatterStatus;
use crate::domain::{DayKind, Level, RegionCode};
use crate::store::dispatch::{Applied, DirectoryChange};
use crate::store::{Department, MatterVersion, NewAuditEntry, NewMatter};
use crate::workflow::dispatch;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// A department as written: the department, and whether to replace its webhook secret.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DepartmentRequest {
    #[serde(flatten)]
    pub department: Department,
    /// Make a new signing secret even though the webhook URL is unchanged (the old one
    /// stops working at once).
    #[serde(default)]
    pub rotate_webhook_secret: bool,
}

/// A department as stored, with its new signing secret when one was just made.
#[derive(Debug, Serialize, ToSchema)]
pub struct DepartmentAnswer {
    #[serde(flatten)]
    pub department: Department,
    /// The key deliveries are signed with (`X-Wangge-Signature`): shown this once, when
    /// a webhook URL is first set or changed, or on `rotate_webhook_secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl App {
    /// The matters in force on `date` (the public list; no caller needed): every
    /// list's, or with `county` the city's and that county's, which apply there.
    pub async fn matters_on(
        &self,
        date: NaiveDate,
        county: Option<&str>,
    ) -> AppResult<Vec<MatterVersion>> {
        let mut all = dispatch::matters_on(self.store.as_ref(), date).await?;
        if let Some(county) = county {
            all.retain(|m| m.matter.applies_in(county));
        }
        Ok(all)
    }

    /// The version of matter `code` in force on `date`.
    pub async fn matter_in_force(&self, code: &str, date: NaiveDate) -> AppResult<MatterVersion> {
        Ok(dispatch::matter_in_force(self.store.as_ref(), code, date).await?)
    }

    /// The list a matter goes on, as its region code (the city's or a county's), and
    /// the scope its proposals and admissions are authorised and audited under.
    fn list_of(&self, region_code: &str) -> AppResult<String> {
        let city = self.city();
        if region_code.is_empty() || region_code == city {
            return Ok(city);
        }
        let code: RegionCode = region_code.parse().map_err(|_| {
            AppError::invalid_parameter(
                "region_code",
                crate::msg!(
                    "{region_code:?} is no region code",
                    "{region_code:?} 不是区划编码"
                ),
            )
        })?;
        if code.level() != Level::County || self.live.snapshot().region(region_code).is_none() {
            return Err(AppError::invalid_parameter(
                "region_code",
                crate::msg!(
                    "{region_code} is not a county of {city}: matters lists are the city's \
                     and each county's (Art. 10)",
                    "{region_code} 不是 {city} 的县区：事项清单由市和各县区制定（第十条）"
                ),
            ));
        }
        Ok(code.as_str().to_string())
    }

    /// Every version of every matter, proposed and refused ones included (staff who
    /// read cases).
    pub async fn matter_versions(&self, p: &Principal) -> AppResult<Vec<MatterVersion>> {
        if !p.may_somewhere(Action::ReadCases) {
            return Err(AppError::forbidden(crate::msg!(
                "{} may not read the matters list's versions",
                "{} 无权查看事项清单的各版本",
                p.name
            )));
        }
        Ok(self.store.matter_versions(None).await?)
    }

    /// A proposal: a new matter or a new version of one for the city's list or a
    /// county's (`region_code`), entering it only when admitted. Proposed by those who
    /// may propose matters in that list's region; a code stays on the list it was
    /// first proposed for. Audited under the list's region.
    pub async fn propose_matter(
        &self,
        p: &Principal,
        mut matter: NewMatter,
    ) -> AppResult<MatterVersion> {
        let list = self.list_of(&matter.region_code)?;
        require(p, Action::ProposeMatter, &list)?;
        dispatch::check_matter(&matter, crate::domain::today_in_china())
            .map_err(|e| AppError::invalid(crate::domain::Msg::of(&e)))?;
        matter.region_code = list.clone();
        // A code is bound to a list by its admitted and pending versions; refused ones
        // bind nothing.
        if let Some(other) = self
            .store
            .matter_versions(Some(&matter.code))
            .await?
            .into_iter()
            .filter(|v| v.status != MatterStatus::Refused)
            .find(|v| v.matter.county() != matter.county())
        {
            let code = &matter.code;
            let owner = if other.matter.region_code.is_empty() {
                self.city()
            } else {
                other.matter.region_code
            };
            return Err(AppError::Refused {
                kind: "other-list",
                title: "The matter is on another list",
                detail: crate::msg!(
                    "matter {code} is on the list of {owner}; propose another code for {list}",
                    "事项 {code} 已在 {owner} 的清单上；请为 {list} 另拟编码"
                ),
                forbidden: false,
            });
        }
        matter.proposed_by = p.name.clone();
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: "matter_propose".into(),
            resource: "matters/{id}".into(),
            scope_code: list.clone(),
            detail: json!({"code": matter.code, "list": list}),
        };
        match self
            .store
            .apply_audited(&[DirectoryChange::ProposeMatter(matter)], &[audit])
            .await?
            .pop()
        {
            Some(Applied::Matter(stored)) => Ok(*stored),
            _ => Err(AppError::NotFound(crate::msg!(
                "the proposal was not stored",
                "提议未能保存"
            ))),
        }
    }

    /// Admits (or refuses) a proposed version: a list is admitted by those who manage
    /// matters for its region (the city's by the city, a county's by that county or
    /// the city), and never by the one who proposed it.
    pub async fn decide_matter(
        &self,
        p: &Principal,
        id: i64,
        admit: bool,
    ) -> AppResult<MatterVersion> {
        let proposal = self.store.matter_version(id).await?;
        let list = match proposal.matter.county() {
            Some(county) => county.to_string(),
            None => self.city(),
        };
        require(p, Action::ManageMatters, &list)?;
        if self.settings.four_eyes && proposal.matter.proposed_by == p.name {
            return Err(AppError::Refused {
                kind: "four-eyes",
                title: "A second person must decide",
                detail: crate::msg!(
                    "{} proposed matter version {id}; another person must admit or refuse \
                     it (four-eyes rule)",
                    "{} 提议了事项版本 {id}；须由另一人同意或驳回（双人审核规则）",
                    p.name
                ),
                forbidden: true,
            });
        }
        if admit {
            // An admission never rewrites the list backwards: it starts today or later,
            // after every version already admitted.
            let today = crate::domain::today_in_china();
            let starts = proposal.matter.valid_from;
            if starts < today {
                return Err(AppError::Refused {
                    kind: "stale-proposal",
                    title: "The proposal's start has passed",
                    detail: crate::msg!(
                        "matter version {id} starts on {starts}, before today ({today}): \
                         refuse it and propose it again from a date to come",
                        "事项版本 {id} 自 {starts} 起，早于今天（{today}）：请驳回，并从今后的日期重新提议"
                    ),
                    forbidden: false,
                });
            }
            if let Some(later) = self
                .store
                .matter_versions(Some(&proposal.matter.code))
                .await?
                .into_iter()
                .find(|v| v.status == MatterStatus::Admitted && v.matter.valid_from >= starts)
            {
                return Err(AppError::Refused {
                    kind: "stale-proposal",
                    title: "A later version is admitted",
                    detail: crate::msg!(
                        "version {} of {} is admitted from {}; version {} would start on or \
                         before it",
                        "{1} 的第 {0} 版自 {2} 起施行；第 {3} 版的开始日期不能在此之前或同日",
                        later.version,
                        later.matter.code,
                        later.matter.valid_from,
                        proposal.version
                    ),
                    forbidden: false,
                });
            }
        }
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: if admit {
                "matter_admit"
            } else {
                "matter_refuse"
            }
            .into(),
            resource: format!("matters/{id}"),
            scope_code: list.clone(),
            detail: json!({"code": proposal.matter.code, "version": proposal.version, "list": list}),
        };
        let change = DirectoryChange::DecideMatter {
            id,
            admit,
            actor: p.name.clone(),
            at: crate::domain::now(),
        };
        let decided = match self.store.apply_audited(&[change], &[audit]).await?.pop() {
            Some(Applied::Matter(decided)) => *decided,
            _ => {
                return Err(AppError::NotFound(crate::msg!(
                    "no matter version {id}",
                    "没有事项版本 {id}"
                )));
            }
        };
        self.matters.invalidate();
        Ok(decided)
    }

    /// Every department; where a department's notices go is shown only to those who
    /// manage it.
    pub async fn departments(&self, p: &Principal) -> AppResult<Vec<Department>> {
        let mut all = self.store.departments().await?;
        for d in &mut all {
            if !p.may(Action::ManageMatters, &d.region_code) {
                d.webhook_url = None;
            }
        }
        Ok(all)
    }

    async fn stored_department(&self, code: &str) -> AppResult<Option<Department>> {
        Ok(self
            .store
            .departments()
            .await?
            .into_iter()
            .find(|x| x.code == code))
    }

    /// Creates or replaces department `code`. Authorised against what is stored, not
    /// only against what the request claims: a department is changed by those who
    /// manage the region it serves now, and only the city moves one to another
    /// county. Setting or changing the webhook URL makes a new signing secret,
    /// answered once.
    pub async fn put_department(
        &self,
        p: &Principal,
        code: String,
        req: DepartmentRequest,
    ) -> AppResult<DepartmentAnswer> {
        let mut d = req.department;
        let stored = self.stored_department(&code).await?;
        require(p, Action::ManageMatters, &d.region_code)?;
        if let Some(old) = &stored {
            require(p, Action::ManageMatters, &old.region_code)?;
            let at = |c: &str, level: Level| c.parse::<RegionCode>().ok().and_then(|c| c.at(level));
            if at(&old.region_code, Level::County) != at(&d.region_code, Level::County) {
                let city = at(&old.region_code, Level::City)
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default();
                require(p, Action::ManageMatters, &city)?;
            }
        }
        d.code = code;
        dispatch::check_department(&d, stored.is_none())?;
        if self.live.snapshot().region(&d.region_code).is_none() {
            return Err(AppError::invalid_parameter(
                "region_code",
                crate::msg!("no region {} is loaded", "未加载区划 {}", d.region_code),
            ));
        }
        if let Some(url) = &d.webhook_url {
            let policy = crate::workflow::webhooks::WebhookPolicy::from_settings(&self.settings);
            match policy.normalise(url).await {
                Ok(normal) => d.webhook_url = Some(normal),
                Err(why) => return Err(AppError::invalid_parameter("webhook_url", why)),
            }
        }
        let moved = stored.as_ref().filter(|o| o.region_code != d.region_code);
        if moved.is_some() {
            // Its cases belong to the area it served, open or closed: they would follow
            // it, and the new area's people would read and handle them. (The store
            // checks again under the department's row lock, against a racing step.)
            if let Some(case) = self.store.department_held_case(&d.code).await? {
                return Err(AppError::Refused {
                    kind: "department-busy",
                    title: "The department has held cases",
                    detail: crate::msg!(
                        "{} has held cases (case {case} among them), which stay with the area \
                         it served: create a department for the new area instead",
                        "{} 已有经办案件（其中包括案件 {case}），这些案件仍属于它原先服务的区域：请为新区域另建部门",
                        d.code
                    ),
                    forbidden: false,
                });
            }
        }
        let url_changed =
            stored.as_ref().and_then(|o| o.webhook_url.as_ref()) != d.webhook_url.as_ref();
        let webhook_secret = match &d.webhook_url {
            Some(_)
                if url_changed
                    || req.rotate_webhook_secret
                    || !self.store.has_webhook_secret(&d.code).await? =>
            {
                Some(crate::auth::webhook_secret())
            }
            _ => None,
        };
        let mut changes = vec![DirectoryChange::PutDepartment(d.clone())];
        if d.webhook_url.is_none() || webhook_secret.is_some() {
            changes.push(DirectoryChange::SetWebhookSecret {
                department: d.code.clone(),
                secret: webhook_secret.clone(),
            });
        }
        let row = |action: &str, resource: String, scope: &str, detail| NewAuditEntry {
            actor: p.name.clone(),
            action: action.into(),
            resource,
            scope_code: scope.to_string(),
            detail,
        };
        let mut audit = Vec::new();
        // A move: staff who do not belong to the new area stop acting for it (they
        // would read the new area's cases), each audited where the department was; the
        // move is also audited where it goes, so the new area's auditors see it arrive.
        if let Some(old) = moved {
            let mut dismissed = Vec::new();
            for name in self.store.department_staff(&d.code).await? {
                let grants = self
                    .store
                    .user(&name)
                    .await?
                    .map(|u| u.grants)
                    .unwrap_or_default();
                if !dispatch::fits_department(&grants, &d.region_code) {
                    changes.push(DirectoryChange::RemoveStaff {
                        user: name.clone(),
                        department: d.code.clone(),
                    });
                    audit.push(row(
                        "staff_remove",
                        format!("departments/{}/staff/{name}", d.code),
                        &old.region_code,
                        json!({"reason": "department moved", "region_code": d.region_code}),
                    ));
                    dismissed.push(name);
                }
            }
            audit.push(row(
                "department_put",
                format!("departments/{}", d.code),
                &d.region_code,
                json!({"kind": d.kind, "region_code": d.region_code,
                    "previous_region_code": old.region_code, "webhook_url": d.webhook_url,
                    "staff_dismissed": dismissed}),
            ));
        }
        // Audited where the department was, so that region's auditors see it leave.
        let audited_under = stored.as_ref().map_or(&d.region_code, |o| &o.region_code);
        audit.push(row(
            "department_put",
            format!("departments/{}", d.code),
            audited_under,
            json!({"kind": d.kind, "webhook": d.webhook_url.is_some(), "region_code": d.region_code,
                "previous_region_code": stored.as_ref().map(|o| &o.region_code),
                // Where case data will go, for the auditors who cannot list the URL.
                "webhook_url": d.webhook_url, "previous_webhook_url": stored.as_ref().map(|o| &o.webhook_url),
                "new_webhook_secret": webhook_secret.is_some()}),
        ));
        // The department, its secret, its dismissed staff and the rows: all or nothing.
        self.store.apply_audited(&changes, &audit).await?;
        Ok(DepartmentAnswer {
            department: d,
            webhook_secret,
        })
    }

    /// Makes `user` staff of department `code`. Staff come from the department's own
    /// area: a handler granted over its region, a region under it, or a region above
    /// it. A county cannot enlist another county's people (whose own auditors would
    /// never see the enlistment).
    pub async fn add_staff(&self, p: &Principal, code: &str, user: &str) -> AppResult<()> {
        let d = self.stored_department(code).await?.ok_or_else(|| {
            AppError::NotFound(crate::msg!("no department {code:?}", "没有部门 {code:?}"))
        })?;
        require(p, Action::ManageMatters, &d.region_code)?;
        // One answer for "no such account" and "not a handler here": a county cannot
        // probe which names another county's people have.
        let fits = self
            .store
            .user(user)
            .await?
            .is_some_and(|account| dispatch::fits_department(&account.grants, &d.region_code));
        if !fits {
            return Err(AppError::Refused {
                kind: "bad-staff",
                title: "Not a handler of this department's area",
                detail: crate::msg!(
                    "{} is no account holding a department_handler grant in or above {}: \
                     grant one first",
                    "{0} 不是在 {1} 或其上级持有 department_handler 授权的账号：请先授权",
                    crate::io::upload::quote(user),
                    d.region_code
                ),
                forbidden: false,
            });
        }
        let change = DirectoryChange::AddStaff {
            user: user.to_string(),
            department: code.to_string(),
        };
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: "staff_add".into(),
            resource: format!("departments/{code}/staff/{user}"),
            scope_code: d.region_code.clone(),
            detail: json!({}),
        };
        self.store.apply_audited(&[change], &[audit]).await?;
        Ok(())
    }

    /// Every calendar exception (public).
    pub async fn calendar(&self) -> AppResult<Vec<(NaiveDate, DayKind, String)>> {
        Ok(self.store.calendar_days().await?)
    }

    /// Sets (`Some`) or clears (`None`) a holiday or make-up working day. The calendar
    /// is the city's: changed by those who manage matters for the whole city, and
    /// audited under the city.
    pub async fn set_calendar_day(
        &self,
        p: &Principal,
        date: NaiveDate,
        kind: Option<DayKind>,
        note: &str,
    ) -> AppResult<()> {
        let city = self.city();
        require(p, Action::ManageMatters, &city)?;
        crate::domain::text::check_text(
            "note",
            note,
            200,
            true,
            crate::domain::text::TextKind::Name,
        )
        .map_err(|why| AppError::invalid_parameter("note", why))?;
        let (action, detail) = match kind {
            Some(kind) => ("calendar_set", json!({"kind": kind, "note": note})),
            None => ("calendar_clear", json!({})),
        };
        let change = DirectoryChange::SetCalendarDay {
            date,
            kind,
            note: note.to_string(),
        };
        let audit = NewAuditEntry {
            actor: p.name.clone(),
            action: action.into(),
            resource: format!("calendar/{date}"),
            scope_code: city,
            detail,
        };
        self.store.apply_audited(&[change], &[audit]).await?;
        // Intake's copy of the calendar (deadlines of new reports) follows at once.
        self.matters.invalidate();
        Ok(())
    }
}
