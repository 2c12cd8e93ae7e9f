//! Every error leaves as `application/problem+json` (RFC 9457) with a stable `type`
//! (`urn:wangge:problem:<slug>`), a `title`, a human `detail`, and for bad geometry the
//! feature and position.

use crate::auth::AuthError;
use crate::domain::{Lang, Msg};
use crate::io::InputError;
use crate::store::StoreError;
use crate::workflow::plans::PlanError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable kind, e.g. `not-found`.
    pub slug: &'static str,
    pub title: &'static str,
    /// What went wrong, in each language (`Accept-Language` picks one).
    pub detail: Msg,
    /// Extension members (`feature`, `position`, `errors`, …).
    pub extra: Map<String, Value>,
    /// Seconds to wait before trying again (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with no extension members.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: Msg) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail,
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// Says when to try again (whole seconds, at least one).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn bad_request(detail: Msg) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn not_found(detail: Msg) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn forbidden(detail: Msg) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn unauthenticated(detail: Msg) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
    }

    pub fn internal(detail: Msg) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    /// The problem document, its `detail` in `lang`.
    pub fn body(&self, lang: Lang) -> Value {
        let mut doc = json!({
            "type": format!("urn:wangge:problem:{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail.get(lang),
        });
        if let Some(obj) = doc.as_object_mut() {
            obj.extend(self.extra.clone());
        }
        doc
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, detail = %self.detail, "request failed");
        }
        let lang = crate::http::lang::current();
        let mut response = (self.status, axum::Json(self.body(lang))).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        crate::http::lang::mark_language(headers, lang);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wangge\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let detail = Msg::of(&e);
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(detail),
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
            }
            StoreError::Refused(_) => ApiError::new(
                StatusCode::CONFLICT,
                "refused",
                "Not allowed in the current state",
                detail,
            ),
            StoreError::UnsupportedUrl(_)
            | StoreError::Database(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_) => {
                // The database's own words (statements, columns, types) stay in the
                // server's log; the client learns only that the store failed.
                tracing::error!(error = %detail, "store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "The store failed",
                    crate::msg!(
                        "the store could not complete the request; try again later (the \
                         server's log has the cause)",
                        "数据存储暂时无法完成请求，请稍后重试（原因见服务器日志）"
                    ),
                )
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let detail = Msg::of(&e);
        match e {
            AuthError::Unauthenticated(_) | AuthError::BadCredentials => {
                ApiError::unauthenticated(detail)
            }
            AuthError::Forbidden(_) => ApiError::forbidden(detail),
            AuthError::Hashing(_) => ApiError::internal(detail),
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        let detail = Msg::of(&e);
        match e {
            PlanError::Store(e) => e.into(),
            PlanError::NotYetEffective { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "not-yet-effective",
                "The plan is not yet effective",
                detail,
            ),
            PlanError::SamePerson { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "four-eyes",
                "A second person must decide",
                detail,
            ),
            PlanError::UnknownCommunity { grid }
            | PlanError::OutsideScope { grid, .. }
            | PlanError::BadName { grid, .. }
            | PlanError::BadHouseholds { grid, .. }
            | PlanError::NoSuchCommunity { grid, .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-plan",
                "The plan cannot be drafted",
                detail,
            )
            .with("feature", json!(grid)),
            PlanError::BadScope(_)
            | PlanError::Empty
            | PlanError::CodesExhausted(_)
            | PlanError::TooComplex(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-plan",
                "The plan cannot be drafted",
                detail,
            ),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        let detail = Msg::of(&e);
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-geometry",
            "The input was rejected",
            detail,
        );
        if let InputError::Feature {
            feature, position, ..
        } = &e
        {
            err = err.with("feature", json!({"index": feature.index, "id": feature.id}));
            if let Some(p) = position {
                err = err.with("position", json!(p));
            }
        }
        err
    }
}

#[cfg(feature = "proj")]
impl From<crate::io::gdal_files::FileError> for ApiError {
    fn from(e: crate::io::gdal_files::FileError) -> Self {
        use crate::io::gdal_files::FileError;
        let detail = Msg::of(&e);
        let err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-file",
            "The file was rejected",
            detail,
        );
        match e {
            FileError::Feature { feature, .. } | FileError::UndeclaredEncoding { feature, .. } => {
                err.with("feature", json!(feature))
            }
            _ => err,
        }
    }
}

#[cfg(feature = "proj")]
impl From<crate::io::upload_reader::ReadError> for ApiError {
    fn from(e: crate::io::upload_reader::ReadError) -> Self {
        use crate::io::upload::UploadError;
        use crate::io::upload_reader::ReadError;
        let detail = Msg::of(&e);
        let unsupported = || {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-format",
                "The file's format is not accepted",
                detail.clone(),
            )
        };
        match e {
            ReadError::Upload(UploadError::Unsupported(_)) => unsupported(),
            ReadError::File {
                unsupported: true, ..
            } => unsupported(),
            ReadError::Upload(UploadError::TooLarge(_)) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The upload is too large",
                detail,
            ),
            ReadError::File { feature, .. } => {
                let err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad-file",
                    "The file was rejected",
                    detail,
                );
                match feature {
                    Some(f) => err.with("feature", json!(f)),
                    None => err,
                }
            }
            ReadError::ReaderFailed(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable-file",
                "The file could not be read",
                detail,
            ),
            ReadError::Upload(UploadError::Io(_)) | ReadError::Internal(_) => {
                ApiError::internal(detail)
            }
        }
    }
}

impl From<crate::workflow::dispatch::DispatchError> for ApiError {
    fn from(e: crate::workflow::dispatch::DispatchError) -> Self {
        use crate::workflow::dispatch::DispatchError;
        let detail = Msg::of(&e);
        match e {
            DispatchError::Store(e) => e.into(),
            DispatchError::Step(step) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid-transition",
                "The case's state does not allow this step",
                detail,
            )
            .with("state", json!(step.from))
            .with("step", json!(step.step)),
            DispatchError::Forbidden(_) => ApiError::forbidden(detail),
            DispatchError::Invalid(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-case",
                "The request cannot be applied to the case",
                detail,
            ),
            DispatchError::Unroutable(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unroutable",
                "No department is responsible",
                detail,
            ),
            DispatchError::GridMismatch { expected, found } => ApiError::new(
                StatusCode::CONFLICT,
                "grid-mismatch",
                "The point lies in another grid",
                detail,
            )
            .with("grid", json!(expected))
            .with("located", json!(found)),
        }
    }
}

impl From<crate::app::AppError> for ApiError {
    fn from(e: crate::app::AppError) -> Self {
        use crate::app::AppError;
        let detail = Msg::of(&e);
        match e {
            AppError::Store(e) => e.into(),
            AppError::Auth(e) => e.into(),
            AppError::Dispatch(e) => e.into(),
            AppError::Plan(e) => e.into(),
            AppError::Invalid { parameter, .. } => {
                let error = ApiError::bad_request(detail);
                match parameter {
                    Some(p) => error.with("parameter", json!(p)),
                    None => error,
                }
            }
            AppError::NotFound(_) => ApiError::not_found(detail),
            AppError::Refused {
                kind,
                title,
                forbidden,
                ..
            } => ApiError::new(
                if forbidden {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
                kind,
                title,
                detail,
            ),
        }
    }
}
