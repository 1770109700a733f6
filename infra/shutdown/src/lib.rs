//! When a Meridian service stops. Kubernetes (and systemd, and
//! `docker stop`) ask a process to stop with SIGTERM and kill it after a
//! grace period; a terminal sends SIGINT. Every service binary (the regional
//! service, routing, edge-host) waits on [`requested`] and then drains: it
//! stops accepting, finishes the requests in flight and exits 0, so a
//! rolling update or a scale-down loses no request.

/// Waits until the process is asked to stop and names the signal
/// (`"SIGTERM"` or `"SIGINT"`). Where a handler cannot be installed the
/// error says so and the caller decides: the regional service and routing
/// log it and keep serving (the signal's default action still stops
/// them), edge-host exits with it.
pub async fn requested() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("SIGINT")
    }
}
