//! The task supervisor: every background loop of a server is started here, stops when the server
//! stops, and is waited for (with a grace period) so that a SIGTERM lets running writes finish
//! instead of tearing the runtime down under them. Periodic jobs that must run once per deployment
//! (however many servers share the database) hold a named lease while they run.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Db;
use crate::db::lease::Lease;

/// Told when the server stops. Cheap to clone; each task holds one.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the server is stopping.
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }

    /// Sleeps for `d`; `false` if the server began to stop meanwhile.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.is_stopped(),
            _ = self.stopped() => false,
        }
    }
}

pub struct Tasks {
    stop: watch::Sender<bool>,
    running: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            stop: watch::channel(false).0,
            running: Mutex::new(vec![]),
        }
    }
}

/// A periodic job held by a lease: on each tick, the server that holds (or takes) the lease runs
/// it, the others skip that tick.
pub struct Leased {
    pub db: Db,
    /// The lease's name, shared by every server of the deployment.
    pub lease: &'static str,
    /// This server, as the lease's owner.
    pub owner: String,
}

impl Tasks {
    pub fn stop_signal(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Runs `f` until it returns; it is given a [`Stop`] and should return soon after it fires.
    pub fn spawn_until_stopped<F, Fut>(&self, name: &'static str, f: F)
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(f(self.stop_signal()));
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|(_, h)| !h.is_finished());
        running.push((name, handle));
    }

    /// Runs `job` every `period` until the server stops — the first time at once with
    /// `at_start`, else after one period. With `leased`,
    /// only the holder of the lease runs it: once per period across the deployment. The lease
    /// lasts three periods, so the holder keeps it from tick to tick even when a run or a busy
    /// machine delays its next tick, and another server takes over once the holder has been gone
    /// that long.
    pub fn every<F, Fut>(
        &self,
        name: &'static str,
        period: Duration,
        at_start: bool,
        leased: Option<Leased>,
        mut job: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn_until_stopped(name, move |mut stop| async move {
            let lease_ms = (period.as_millis() as u64).saturating_mul(3);
            let mut first = at_start;
            while std::mem::take(&mut first) || stop.sleep(period).await {
                if let Some(l) = &leased {
                    match Lease::acquire_ms(&l.db, l.lease, &l.owner, lease_ms.max(1)).await {
                        Ok(Ok(_held)) => {}
                        Ok(Err(_other)) => continue,
                        Err(e) => {
                            tracing::error!(error = %e, task = name, "cannot take the lease");
                            continue;
                        }
                    }
                }
                job().await;
            }
        });
    }

    /// Signals every task to stop and waits up to `grace` for them to finish; those still running
    /// then are aborted (their work is in transactions, which roll back).
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let running: Vec<_> = {
            let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *r)
        };
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut h) in running {
            match tokio::time::timeout_at(deadline, &mut h).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(task = name, "did not stop within the grace period; aborted");
                    h.abort();
                }
            }
        }
    }
}
