//! Graceful shutdown: the first SIGTERM or Ctrl-C stops scheduling, lets every step in progress
//! finish and flushes every outbox; a second one exits at once with status 130.
//!
//! Exiting at once loses nothing: an agent commits each action record with its outbox entry in
//! one database transaction before anything is sent, so the next start logs whatever was left
//! unconfirmed.

use tokio_util::sync::CancellationToken;

/// The exit status of a second signal (128 + SIGINT, as shells report an interrupted program).
pub const FORCED_EXIT_STATUS: i32 = 130;

/// A request to shut the service down. Cheap to clone; every clone sees the same request.
///
/// [`Shutdown::new`] is triggered only by [`trigger`](Shutdown::trigger) (tests, embedding
/// programs); [`Shutdown::on_signals`] also by SIGTERM and Ctrl-C.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A shutdown triggered only programmatically.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown also triggered by the process's signals: the first SIGTERM or SIGINT
    /// (Ctrl-C) triggers it; a second one ends the process at once with
    /// [`FORCED_EXIT_STATUS`]. Must be called inside a tokio runtime (it spawns the listener).
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let mut signals = Signals::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            signals.next().await;
            tracing::warn!(
                "shutting down: no new steps; waiting for the steps in progress and flushing the \
                 outboxes (send the signal again to exit at once; nothing recorded is lost)"
            );
            trigger.trigger();
            signals.next().await;
            tracing::warn!(
                "second signal: exiting now; unconfirmed records are logged at the next start"
            );
            std::process::exit(FORCED_EXIT_STATUS);
        });
        shutdown
    }

    /// Requests the shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the shutdown is requested (at once if it already was).
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// A token cancelled with the shutdown, for tasks that take a token (and its children).
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// SIGTERM and SIGINT as one stream of "a signal arrived". Each is a stream registered once,
/// so a second signal arriving while the first is handled is not missed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let catch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "{name} cannot be caught ({e}): it will not shut down gracefully");
                None
            }
        };
        Self {
            term: catch(SignalKind::terminate(), "SIGTERM"),
            int: catch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    #[cfg(not(unix))]
    fn new() -> Self {
        Self {}
    }

    #[cfg(unix)]
    async fn next(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => {}
            _ = recv(&mut self.int) => {}
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) {
        // Without Unix signals only Ctrl-C can be caught; if it cannot, never fire.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_clone_once_and_for_all() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.is_triggered());
        a.trigger();
        a.trigger();
        assert!(b.is_triggered());
        // Completes at once, however often it is awaited.
        b.triggered().await;
        b.triggered().await;
    }
}
