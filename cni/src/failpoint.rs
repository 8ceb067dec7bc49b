//! Crash points for fault injection. Compiled in only with the `failpoints` feature, which the
//! test harness turns on; a release build has none of this.
//!
//! `SMARTNIC_CNI_FAILPOINT=<step>` makes the process abort right after journaling that step, as
//! a `kill -9` would. In-process tests use [`set`] instead, which panics at the step (the test
//! catches the unwind and then runs DEL, as a runtime would after a crash).

#[cfg(feature = "failpoints")]
mod imp {
    use std::{cell::RefCell, sync::OnceLock};

    thread_local! {
        static ARMED: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    fn from_env() -> Option<&'static str> {
        static ENV: OnceLock<Option<String>> = OnceLock::new();
        ENV.get_or_init(|| std::env::var("SMARTNIC_CNI_FAILPOINT").ok())
            .as_deref()
    }

    /// Arms (or, with `None`, disarms) a panicking failpoint on this thread.
    pub fn set(step: Option<&str>) {
        ARMED.with(|a| *a.borrow_mut() = step.map(String::from));
    }

    /// Called after each journaled step.
    pub fn hit(step: &str) {
        if from_env() == Some(step) {
            std::process::abort();
        }
        let armed = ARMED.with(|a| a.borrow().as_deref() == Some(step));
        if armed {
            set(None);
            panic!("failpoint {step}");
        }
    }
}

#[cfg(not(feature = "failpoints"))]
mod imp {
    /// No failpoints in this build.
    #[inline(always)]
    pub fn hit(_step: &str) {}
}

pub use imp::*;
