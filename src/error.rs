//! The crate's error type: one variant per area, each carrying its own typed error, for
//! callers that use several areas at once (the HTTP layer maps the areas' own errors).

/// Anything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boundary or point file was rejected.
    #[error(transparent)]
    Input(#[from] crate::io::InputError),
    /// A coordinate system name was not recognised.
    #[error(transparent)]
    CoordSys(#[from] crate::spatial::crs::UnknownCoordSys),
    /// A PROJ transformation failed.
    #[cfg(feature = "proj")]
    #[error(transparent)]
    Proj(#[from] crate::spatial::crs::proj::ProjError),
    /// A synthetic partition could not be generated.
    #[error(transparent)]
    Synth(#[from] crate::spatial::synth::SynthError),
    /// The store failed or refused a write.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A plan could not be drafted or moved on.
    #[error(transparent)]
    Plan(#[from] crate::workflow::plans::PlanError),
    /// A case could not be filed or moved on.
    #[error(transparent)]
    Dispatch(#[from] crate::workflow::dispatch::DispatchError),
    /// Credentials or a grant did not allow it.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A use case refused or failed (see [`crate::app::AppError`]).
    #[error(transparent)]
    App(#[from] crate::app::AppError),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
