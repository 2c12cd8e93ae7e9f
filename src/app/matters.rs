//! The matters list (Art. 10), departments with their staff and webhooks, and the
//! working-day calendar: each change authorised against what is stored and audited
//! where the object's auditors look.

use super::{App, AppError, AppResult, require};
use crate::auth::{Action, Principal};
use crate::domain::{DayKind, Level, RegionCode};
use crate::store::{Department, MatterVersion, NewMatter};
use crate::workflow::dispatch;
use chrono::{NaiveDate, Utc};
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
            AppError::invalid_parameter("region_code", format!("{region_code:?} is no region code"))
        })?;
        if code.level() != Level::County || self.live.snapshot().region(region_code).is_none() {
            return Err(AppError::invalid_parameter(
                "region_code",
                format!(
                    "{region_code} is not a county of {city}: matters lists are the city's \
                     and each county's (Art. 10)"
                ),
            ));
        }
        Ok(code.as_str().to_string())
    }

    /// Every version of every matter, proposed and refused ones included (staff who
    /// read cases).
    pub async fn matter_versions(&self, p: &Principal) -> AppResult<Vec<MatterVersion>> {
        if !p.may_somewhere(Action::ReadCases) {
            return Err(AppError::forbidden(format!(
                "{} may not read the matters list's versions",
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
        if matter.code.trim().is_empty() || matter.name.trim().is_empty() {
            return Err(AppError::invalid("a matter needs a code and a name"));
        }
        if matter.time_limit.amount == 0 {
            return Err(AppError::invalid("a time limit is at least 1"));
        }
        if matter.valid_to.is_some_and(|end| end <= matter.valid_from) {
            return Err(AppError::invalid("valid_to must be after valid_from"));
        }
        matter.region_code = list.clone();
        if let Some(other) = self
            .store
            .matter_versions(Some(&matter.code))
            .await?
            .into_iter()
            .find(|v| v.matter.county() != matter.county())
        {
            return Err(AppError::Refused {
                kind: "other-list",
                title: "The matter is on another list",
                detail: format!(
                    "matter {} is on the list of {}; propose another code for {list}",
                    matter.code,
                    if other.matter.region_code.is_empty() {
                        self.city()
                    } else {
                        other.matter.region_code
                    }
                ),
                forbidden: false,
            });
        }
        matter.proposed_by = p.name.clone();
        let stored = self.store.propose_matter(&matter).await?;
        self.audit(
            &p.name,
            "matter_propose",
            format!("matters/{}", stored.id),
            &list,
            json!({"code": stored.matter.code, "version": stored.version, "list": list}),
        )
        .await?;
        Ok(stored)
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
                detail: format!(
                    "{} proposed matter version {id}; another person must admit or refuse \
                     it (four-eyes rule)",
                    p.name
                ),
                forbidden: true,
            });
        }
        let decided = self
            .store
            .decide_matter(id, admit, &p.name, Utc::now())
            .await?;
        self.matters.invalidate();
        self.audit(
            &p.name,
            if admit {
                "matter_admit"
            } else {
                "matter_refuse"
            },
            format!("matters/{id}"),
            &list,
            json!({"code": decided.matter.code, "version": decided.version, "list": list}),
        )
        .await?;
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
        if let Some(url) = &d.webhook_url {
            let policy = crate::workflow::webhooks::WebhookPolicy::from_settings(&self.settings);
            match policy.normalise(url).await {
                Ok(normal) => d.webhook_url = Some(normal),
                Err(why) => return Err(AppError::invalid_parameter("webhook_url", why)),
            }
        }
        self.store.upsert_department(&d).await?;
        let url_changed =
            stored.as_ref().and_then(|o| o.webhook_url.as_ref()) != d.webhook_url.as_ref();
        let webhook_secret = match &d.webhook_url {
            None => {
                self.store.set_webhook_secret(&d.code, None).await?;
                None
            }
            Some(_)
                if url_changed
                    || req.rotate_webhook_secret
                    || !self.store.has_webhook_secret(&d.code).await? =>
            {
                let secret = crate::auth::webhook_secret();
                self.store
                    .set_webhook_secret(&d.code, Some(&secret))
                    .await?;
                Some(secret)
            }
            Some(_) => None,
        };
        // A move: staff who do not belong to the new area stop acting for it (they
        // would read the new area's cases), each audited where the department was; the
        // move is also audited where it goes, so the new area's auditors see it arrive.
        if let Some(old) = stored.as_ref().filter(|o| o.region_code != d.region_code) {
            let mut dismissed = Vec::new();
            for name in self.store.department_staff(&d.code).await? {
                let grants = self
                    .store
                    .user(&name)
                    .await?
                    .map(|u| u.grants)
                    .unwrap_or_default();
                if !dispatch::fits_department(&grants, &d.region_code) {
                    self.store.remove_staff(&name, &d.code).await?;
                    self.audit(
                        &p.name,
                        "staff_remove",
                        format!("departments/{}/staff/{name}", d.code),
                        &old.region_code,
                        json!({"reason": "department moved", "region_code": d.region_code}),
                    )
                    .await?;
                    dismissed.push(name);
                }
            }
            self.audit(
                &p.name,
                "department_put",
                format!("departments/{}", d.code),
                &d.region_code,
                json!({"kind": d.kind, "region_code": d.region_code,
                    "previous_region_code": old.region_code, "webhook_url": d.webhook_url,
                    "staff_dismissed": dismissed}),
            )
            .await?;
        }
        // Audited where the department was, so that region's auditors see it leave.
        let audited_under = stored.as_ref().map_or(&d.region_code, |o| &o.region_code);
        self.audit(
            &p.name,
            "department_put",
            format!("departments/{}", d.code),
            audited_under,
            json!({"kind": d.kind, "webhook": d.webhook_url.is_some(), "region_code": d.region_code,
                "previous_region_code": stored.as_ref().map(|o| &o.region_code),
                // Where case data will go, for the auditors who cannot list the URL.
                "webhook_url": d.webhook_url, "previous_webhook_url": stored.as_ref().map(|o| &o.webhook_url),
                "new_webhook_secret": webhook_secret.is_some()}),
        )
        .await?;
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
        let d = self
            .stored_department(code)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no department {code:?}")))?;
        require(p, Action::ManageMatters, &d.region_code)?;
        let account = self
            .store
            .user(user)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no user {user:?}")))?;
        if !dispatch::fits_department(&account.grants, &d.region_code) {
            return Err(AppError::Refused {
                kind: "bad-staff",
                title: "Not a handler of this department's area",
                detail: format!(
                    "{} holds no department_handler grant in or above {}: grant one first",
                    account.name, d.region_code
                ),
                forbidden: false,
            });
        }
        self.store.add_staff(user, code).await?;
        self.audit(
            &p.name,
            "staff_add",
            format!("departments/{code}/staff/{user}"),
            &d.region_code,
            json!({}),
        )
        .await
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
        self.store.set_calendar_day(date, kind, note).await?;
        let (action, detail) = match kind {
            Some(kind) => ("calendar_set", json!({"kind": kind})),
            None => ("calendar_clear", json!({})),
        };
        self.audit(&p.name, action, format!("calendar/{date}"), &city, detail)
            .await
    }
}
