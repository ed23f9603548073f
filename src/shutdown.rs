//! SIGTERM with draining. Pingora stops accepting at once and then waits a fixed grace period
//! before it tears the runtimes down, cancelling whatever is still running. A fixed period
//! is wrong both ways for LLM traffic: too short and a long stream is cut mid-answer, too
//! long and every idle pod takes the whole period to stop. So the grace period is the
//! longest a stream may take (`proxy.shutdown_grace_seconds`), and memgate exits as soon as
//! no request is in flight, each request counting until its turn is in the outbox, and the
//! ingest worker has emptied the outbox of what is due. A sidecar's embedded store goes
//! with its pod, so its turns must be ingested before the exit; and no turn stays leased by
//! a process that is gone. Rows waiting for a retry are left to the next process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch};

/// A connection accepted just before the signal may not have its request yet; it gets this
/// long to show up before "nothing in flight" is believed.
const SETTLE: Duration = Duration::from_millis(250);
const POLL: Duration = Duration::from_millis(20);

/// What the process is still doing: requests on the proxy listener, and outbox rows the
/// ingest worker has claimed.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    requests: Arc<AtomicUsize>,
    ingesting: Arc<AtomicUsize>,
    draining: Arc<AtomicBool>,
    /// Draining, no request left, and nothing due in the outbox: the worker stops claiming.
    settled: Arc<AtomicBool>,
}

impl Drain {
    /// Counts a request until its context is dropped, after its outbox write.
    pub fn request(&self) -> InFlightGuard {
        self.requests.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.requests.clone())
    }

    /// Leave for the worker to claim rows, held until it has processed them; none once the
    /// drain has settled.
    pub fn ingestion(&self) -> Option<InFlightGuard> {
        // Counted before the flag is read: the drain either sees this count or the worker
        // sees the flag.
        self.ingesting.fetch_add(1, Ordering::SeqCst);
        let guard = InFlightGuard(self.ingesting.clone());
        (!self.settled.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Told by the worker when a claim found nothing due.
    pub fn outbox_empty(&self) {
        if self.draining.load(Ordering::SeqCst) && self.requests() == 0 {
            self.settled.store(true, Ordering::SeqCst);
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn busy(&self) -> bool {
        !self.settled.load(Ordering::SeqCst)
            || self.requests() > 0
            || self.ingesting.load(Ordering::SeqCst) > 0
    }
}

/// Dropped when the request or the claimed batch is done.
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Pingora's signal handling (SIGTERM drains, SIGINT stops at once, SIGQUIT hands the
/// listeners to a new process), plus an early exit once a SIGTERM has drained the requests.
pub struct DrainOnTerm {
    pub drain: Drain,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnTerm {
    async fn recv(&self) -> ShutdownSignal {
        let signal = UnixShutdownSignalWatch.recv().await;
        if matches!(signal, ShutdownSignal::GracefulTerminate) {
            let drain = self.drain.clone();
            drain.begin();
            // A thread of its own: Pingora's runtimes are being shut down around it.
            std::thread::Builder::new()
                .name("memgate-drain".into())
                .spawn(move || exit_once_drained(&drain))
                .expect("spawn the drain watcher");
        }
        signal
    }
}

fn exit_once_drained(drain: &Drain) {
    let signalled = Instant::now();
    tracing::info!(requests = drain.requests(), "SIGTERM: draining");
    std::thread::sleep(SETTLE);
    while drain.busy() {
        std::thread::sleep(POLL);
    }
    tracing::info!(
        after_ms = signalled.elapsed().as_millis() as u64,
        "drained, exiting"
    );
    crate::telemetry::shutdown();
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_only_when_draining_with_no_request_and_an_empty_outbox() {
        let drain = Drain::default();
        drain.outbox_empty();
        assert!(drain.ingestion().is_some(), "not draining yet");

        let request = drain.request();
        drain.begin();
        drain.outbox_empty();
        assert!(drain.busy(), "a request is in flight");
        assert!(drain.ingestion().is_some());

        drop(request);
        let claimed = drain.ingestion().expect("still claiming");
        assert!(drain.busy(), "rows are being ingested");
        drop(claimed);
        assert!(drain.busy(), "the outbox has not been seen empty since");
        drain.outbox_empty();
        assert!(!drain.busy());
        assert!(
            drain.ingestion().is_none(),
            "nothing is claimed once settled"
        );
    }
}
