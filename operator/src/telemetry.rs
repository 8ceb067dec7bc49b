//! Logging setup of the operator binary: `tracing` to stderr, as text or one JSON object per
//! line, filtered by `RUST_LOG` syntax (`info`, `operator=debug,kube=warn`).
//!
//! The filter can be changed while running ([`LogControl`]): `NicOperatorConfig.spec.logLevel`
//! replaces the default level of the `--log-level`/`RUST_LOG` filter, keeping its per-target
//! directives (`info,kube_runtime=warn` with `logLevel: debug` becomes
//! `debug,kube_runtime=warn`). Deleting the configuration restores the filter given at start.

use crds::operator_config::LogLevel;
use tracing_subscriber::{EnvFilter, Registry, fmt, prelude::*, reload};

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// Why logging could not be set up or changed.
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
    /// The subscriber holding the filter is gone.
    #[error("cannot change the log filter to {filter:?}: {source}")]
    Reload {
        /// The new filter.
        filter: String,
        /// The reload error.
        #[source]
        source: reload::Error,
    },
}

/// Changes the installed filter at run time.
#[derive(Clone, Debug)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    base: String,
}

impl LogControl {
    /// Applies `NicOperatorConfig.spec.logLevel` (`None`: back to the filter given at start).
    pub fn set_level(&self, level: Option<LogLevel>) -> Result<(), Error> {
        let filter = filter_with_level(&self.base, level);
        let env = parse(&filter)?;
        self.handle
            .reload(env)
            .map_err(|source| Error::Reload { filter, source })
    }
}

fn parse(filter: &str) -> Result<EnvFilter, Error> {
    EnvFilter::try_new(filter).map_err(|source| Error::Filter {
        filter: filter.to_owned(),
        source,
    })
}

/// The `RUST_LOG`-syntax name of a level.
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

/// `base` with its default level (the directives without a target) replaced by `level`; the
/// per-target directives (`kube_runtime=warn`) are kept. `None` returns `base`.
pub fn filter_with_level(base: &str, level: Option<LogLevel>) -> String {
    let Some(level) = level else {
        return base.to_owned();
    };
    let mut out = vec![level_name(level)];
    out.extend(
        base.split(',')
            .map(str::trim)
            .filter(|d| d.contains('=') || d.contains('[')),
    );
    out.join(",")
}

/// Whether text logs are coloured: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>); `kubectl logs` must not show escape codes.
pub fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber; the returned handle changes its filter later.
pub fn init(format: LogFormat, filter: &str) -> Result<LogControl, Error> {
    let (env, handle) = reload::Layer::new(parse(filter)?);
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
    .map_err(Error::Init)?;
    Ok(LogControl {
        handle,
        base: filter.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use tracing::level_filters::LevelFilter;

    use super::*;

    #[test]
    fn config_level_replaces_the_default_level_and_keeps_target_directives() {
        let base = "info,kube_runtime=warn";
        assert_eq!(
            filter_with_level(base, Some(LogLevel::Debug)),
            "debug,kube_runtime=warn"
        );
        assert_eq!(filter_with_level(base, None), base);
        assert_eq!(
            filter_with_level("operator=trace", Some(LogLevel::Error)),
            "error,operator=trace"
        );
    }

    #[test]
    fn reload_changes_the_active_filter() {
        let (layer, handle) = reload::Layer::new(parse("info").unwrap());
        let control = LogControl {
            handle,
            base: "info,kube_runtime=warn".into(),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(LevelFilter::current(), LevelFilter::INFO);
            control.set_level(Some(LogLevel::Trace)).unwrap();
            assert!(tracing::enabled!(tracing::Level::TRACE));
            control.set_level(Some(LogLevel::Error)).unwrap();
            assert!(!tracing::enabled!(tracing::Level::WARN));
            control.set_level(None).unwrap();
            assert!(tracing::enabled!(tracing::Level::INFO));
            assert!(!tracing::enabled!(tracing::Level::DEBUG));
        });
    }
}
