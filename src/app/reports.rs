//! Residents' reports (the public form and Open311): intake without an account, and
//! the public view of their own reports. Grid members' uploads and hotline records stay
//! internal, and are answered exactly as missing ones.

use super::{App, AppResult};
use crate::domain::{CaseSource, TimeLimit};
use crate::store::{CaseEvent, CaseQuery, CaseRecord, IdempotencyKey, StoreError};
use crate::workflow::dispatch::{Report, Reporter};
use chrono::{DateTime, Utc};

/// Only residents' own reports are public.
const PUBLIC_SOURCES: [CaseSource; 2] = [CaseSource::Resident, CaseSource::Open311];

/// A public report with its timeline and its matter's name.
#[derive(Debug)]
pub struct PublicRecord {
    pub case: CaseRecord,
    pub events: Vec<CaseEvent>,
    pub matter_name: Option<String>,
    /// The time limit of the matter the case was classified under.
    pub time_limit: Option<TimeLimit>,
}

/// Which public reports to list.
#[derive(Debug, Default)]
pub struct PublicQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub matter: Option<String>,
}

impl App {
    /// Stores a resident's report (`open311`: through the Open311 API), durably
    /// before it returns; with an idempotency key a retry returns the same case.
    pub async fn report_publicly(
        &self,
        report: &Report,
        open311: bool,
        key: Option<&IdempotencyKey>,
    ) -> AppResult<(CaseRecord, bool)> {
        self.intake(report, Reporter::Public { open311 }, key).await
    }

    async fn public_record(&self, case: CaseRecord) -> AppResult<PublicRecord> {
        let events = self.store.case_events(case.id).await?;
        let matter = match case.matter_version {
            Some(v) => Some(self.store.matter_version(v).await?.matter),
            None => None,
        };
        Ok(PublicRecord {
            case,
            events,
            matter_name: matter.as_ref().map(|m| m.name.clone()),
            time_limit: matter.map(|m| m.time_limit),
        })
    }

    /// A public report, or `None` alike for an internal case and for no case at all
    /// (ids are sequential: two answers would count the internal ones).
    pub async fn public_report(&self, id: i64) -> AppResult<Option<PublicRecord>> {
        let case = match self.store.case(id).await {
            Ok(case) => case,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !PUBLIC_SOURCES.contains(&case.source) {
            return Ok(None);
        }
        Ok(Some(self.public_record(case).await?))
    }

    /// Public reports made in `[from, to)`, oldest first, kept by `keep`, `skip`ped
    /// and cut to `take`.
    pub async fn public_reports(
        &self,
        q: PublicQuery,
        keep: impl Fn(&CaseRecord) -> bool,
        skip: usize,
        take: usize,
    ) -> AppResult<Vec<PublicRecord>> {
        let all = self
            .store
            .cases(&CaseQuery {
                reported_from: Some(q.from),
                reported_to: Some(q.to),
                matter: q.matter,
                sources: PUBLIC_SOURCES.to_vec(),
                limit: 100_000,
                ..CaseQuery::default()
            })
            .await?;
        let mut out = Vec::new();
        for case in all.into_iter().filter(|c| keep(c)).skip(skip).take(take) {
            out.push(self.public_record(case).await?);
        }
        Ok(out)
    }
}
