//! Logging setup of the device plugin binary: `tracing` to stderr, as text or one JSON object per
//! line, filtered by `RUST_LOG` syntax (`info`, `operator=debug,kube=warn`).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The filter does not parse.
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// The parse error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Init(#[source] tracing_subscriber::util::TryInitError),
}

/// Whether text logs are coloured: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>); `kubectl logs` must not show escape codes.
pub fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, filter: &str) -> Result<(), Error> {
    let env = EnvFilter::try_new(filter).map_err(|source| Error::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let registry = tracing_subscriber::registry().with(env);
    match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(colour(
                        std::io::IsTerminal::is_terminal(&std::io::stderr()),
                        std::env::var_os("NO_COLOR"),
                    ))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_ansi(false)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    }
    .map_err(Error::Init)
}
