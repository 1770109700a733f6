//! When a Meridian service stops. Kubernetes (and systemd, and
//! `docker stop`) ask a process to stop with SIGTERM and kill it after a
//! grace period; a terminal sends SIGINT. Every service binary (the regional
//! service, routing, edge-host) calls [`listen`] before it serves, waits on
//! [`Signals::requested`], and then drains: it stops accepting, finishes the
//! requests in flight and exits 0, so a rolling update or a scale-down
//! loses no request.

/// The stop signals, listened for from the moment [`listen`] returns (a
/// signal before then takes its default action: the process dies).
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

/// Installs the handlers now, inside a tokio runtime. Where one cannot be
/// installed the error says so and the caller decides: the regional
/// service and routing log it and keep serving (the signal's default
/// action still stops them), edge-host exits with it.
pub fn listen() -> std::io::Result<Signals> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
    #[cfg(not(unix))]
    {
        Ok(Signals {})
    }
}

impl Signals {
    /// Waits until the process is asked to stop and names the signal
    /// (`"SIGTERM"` or `"SIGINT"`).
    pub async fn requested(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
