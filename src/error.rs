//! The crate's error type: one variant per area, each carrying its own typed error.

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
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
