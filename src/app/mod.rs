//! The application layer: the only way in for HTTP handlers (and the CLI's plan steps).
//!
//! [`App`] holds the store, the live snapshot, the matters catalogue and the settings.
//! Each use case is a method that takes the caller's [`Principal`] and a typed command,
//! loads what it touches, authorises against the **stored** objects (`auth::POLICY`
//! through [`Principal::may`], and the object rules in `workflow`), applies the change
//! and records the audit row. The store itself is private to this module: a handler
//! cannot reach it, so it cannot skip the rules.
//!
//! ```no_run
//! # async fn demo(app: &wangge::app::App, me: &wangge::auth::Principal) -> Result<(), wangge::app::AppError> {
//! let plans = app.plans(me, Some("371602"), None).await?; // only what `me` may read
//! # Ok(()) }
//! ```

mod access;
mod cases;
mod matters;
mod plans;
mod reports;

pub use access::{AuditParams, LoginOutcome, MemberView, NewMemberRequest};
pub use cases::{
    CaseView, CentreList, FedEvent, ListRequest, SharedEvent, StreamStart, mask_event_for,
};
pub use matters::{DepartmentAnswer, DepartmentRequest};
pub use plans::{PlanStep, PlanSteps, RepairOutcome, RepairRequest, StepRequest, StepTaken};
pub use reports::{PublicQuery, PublicRecord};

use crate::auth::{Action, AuthError, Principal};
use crate::domain::{Localised, Msg};
use crate::msg;
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::workflow::audit;
use crate::workflow::dispatch::{DispatchError, MatterCatalog};
use crate::workflow::live::LiveGrids;
use crate::workflow::plans::PlanError;
use serde_json::Value;
use std::sync::Arc;

/// Why a use case was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The command is malformed; `parameter` names the field at fault.
    #[error("{detail}")]
    Invalid {
        detail: Msg,
        parameter: Option<&'static str>,
    },
    /// Nothing by that name (or nothing the caller may know of).
    #[error("{0}")]
    NotFound(Msg),
    /// A rule about the object refuses it: a stable `kind` (`four-eyes`, `bad-staff`…),
    /// whether it is the caller who is refused (403) or the request (422).
    #[error("{detail}")]
    Refused {
        kind: &'static str,
        title: &'static str,
        detail: Msg,
        forbidden: bool,
    },
}

impl Localised for AppError {
    fn zh(&self) -> String {
        match self {
            AppError::Store(e) => e.zh(),
            AppError::Auth(e) => e.zh(),
            AppError::Dispatch(e) => e.zh(),
            AppError::Plan(e) => e.zh(),
            AppError::Invalid { detail, .. } | AppError::Refused { detail, .. } => {
                detail.zh().to_string()
            }
            AppError::NotFound(m) => m.zh().to_string(),
        }
    }
}

/// `Result` of a use case.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    fn invalid(detail: Msg) -> Self {
        AppError::Invalid {
            detail,
            parameter: None,
        }
    }

    fn invalid_parameter(parameter: &'static str, detail: Msg) -> Self {
        AppError::Invalid {
            detail,
            parameter: Some(parameter),
        }
    }

    fn forbidden(detail: Msg) -> Self {
        AppError::Auth(AuthError::Forbidden(detail))
    }
}

/// Refuses unless `p` may take `action` on something in `code` (the one policy table).
pub fn require(p: &Principal, action: Action, code: &str) -> AppResult<()> {
    if p.may(action, code) {
        Ok(())
    } else {
        let (who, act, act_zh) = (&p.name, action.as_str().replace('_', " "), action.zh());
        Err(AppError::forbidden(msg!(
            "{who} may not {act} in {code}",
            "{who} 无权在 {code} {act_zh}"
        )))
    }
}

/// The application: every use case of the service.
pub struct App {
    store: Arc<dyn Store>,
    live: Arc<LiveGrids>,
    matters: Arc<MatterCatalog>,
    settings: Arc<Settings>,
}

impl App {
    /// The application over an opened store and a loaded snapshot.
    pub fn new(store: Arc<dyn Store>, live: Arc<LiveGrids>, settings: Arc<Settings>) -> Self {
        App {
            store,
            live,
            matters: Arc::default(),
            settings,
        }
    }

    /// The store's backend name (`postgis` or `sqlite`), for health answers.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The store answers; the grids' version it holds.
    pub async fn ready(&self) -> AppResult<i64> {
        Ok(self.store.grids_version().await?)
    }

    /// The city's code: where city-wide things (the calendar) are authorised and
    /// audited.
    pub fn city(&self) -> String {
        let snapshot = self.live.snapshot();
        audit::city_of(snapshot.regions.iter().map(|r| r.code.as_str()))
    }

    /// The principal a bearer token stands for while it is live, and when it expires.
    pub async fn token_holder(
        &self,
        token: &str,
    ) -> AppResult<(Principal, chrono::DateTime<chrono::Utc>)> {
        Ok(crate::auth::live_token(self.store.as_ref(), token).await?)
    }

    /// The grid version at a point on a past date (the stored history, not the
    /// snapshot).
    pub async fn grid_on(
        &self,
        at: geo_types::Coord<f64>,
        date: chrono::NaiveDate,
        layer: crate::domain::Layer,
    ) -> AppResult<Option<crate::store::GridVersion>> {
        Ok(self.store.grid_at(at, date, layer).await?)
    }

    /// Every grid version of `validity` (OGC API reads of a past date or an interval).
    pub async fn grid_versions(
        &self,
        validity: crate::store::Validity,
    ) -> AppResult<Vec<crate::store::GridVersion>> {
        Ok(self.store.grids(validity, None, None).await?)
    }

    /// Every grid in force on a past date (for map tiles of that date).
    pub async fn past_grids(
        &self,
        date: chrono::NaiveDate,
    ) -> AppResult<crate::workflow::tiles::PastGrids> {
        Ok(crate::workflow::tiles::PastGrids::load(self.store.as_ref(), date).await?)
    }

    /// Appends one audit row; the use case fails if it cannot be written (nothing
    /// personal leaves, nothing is changed, without its trace).
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        resource: String,
        scope_code: &str,
        detail: Value,
    ) -> AppResult<()> {
        audit::record(
            self.store.as_ref(),
            actor,
            action,
            resource,
            scope_code,
            detail,
        )
        .await?;
        Ok(())
    }
}
