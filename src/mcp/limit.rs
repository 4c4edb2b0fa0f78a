//! How many calls one server runs at once, and how many may wait.
//!
//! A server is a single process or endpoint that the model can flood with
//! parallel tool calls (several per turn, from every request at once); past
//! its limit the excess waits in a bounded queue, first come first served
//! (tokio's semaphore is fair), and beyond the queue a call is refused at
//! once so the model hears "busy" instead of a timeout much later.
//!
//! The limit lives in the server's slot, so it outlives reconnections: calls
//! waiting while the server restarts keep their place.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError};
use tokio::time::Instant;

/// One server's call slots and waiting room.
pub(crate) struct CallLimit {
    slots: Semaphore,
    max_running: usize,
    max_queued: usize,
    queued: AtomicUsize,
}

/// Why a call did not get to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every slot taken and the queue full: the numbers seen at that moment.
    Busy { running: usize, queued: usize },
    /// The call's deadline passed while it waited for a slot.
    TimedOut { running: usize },
    /// The hub is shutting down.
    Closed,
}

/// A queue place, given back when the wait ends or the waiting call is
/// dropped (its client hung up).
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CallLimit {
    /// `max_running` is at least 1 (validated in the settings and the server config).
    pub(crate) fn new(max_running: usize, max_queued: usize) -> Self {
        let max_running = max_running.clamp(1, Semaphore::MAX_PERMITS);
        Self { slots: Semaphore::new(max_running), max_running, max_queued, queued: AtomicUsize::new(0) }
    }

    /// Takes a slot, waiting for one until `deadline` if all are taken. The
    /// slot is held as long as the permit: dropping the call frees it.
    pub(crate) async fn admit(&self, deadline: Instant) -> Result<SemaphorePermit<'_>, Refused> {
        match self.slots.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(Refused::Closed),
            Err(TryAcquireError::NoPermits) => {}
        }
        let entered =
            self.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q < self.max_queued).then_some(q + 1));
        if let Err(queued) = entered {
            return Err(Refused::Busy { running: self.running(), queued });
        }
        let _place = QueuePlace(&self.queued);
        match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Refused::Closed),
            Err(_) => Err(Refused::TimedOut { running: self.running() }),
        }
    }

    /// Calls holding a slot now.
    pub(crate) fn running(&self) -> usize {
        self.max_running.saturating_sub(self.slots.available_permits())
    }

    /// Calls waiting for a slot now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub(crate) fn max_running(&self) -> usize {
        self.max_running
    }

    /// Fails every waiting call and every later one with [`Refused::Closed`].
    pub(crate) fn close(&self) {
        self.slots.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_places_come_back() {
        let limit = CallLimit::new(1, 1);
        let running = limit.admit(soon()).await.unwrap_or_else(|e| panic!("{e:?}"));
        let waiting = limit.admit(soon());
        tokio::pin!(waiting);
        assert!((&mut waiting).now_or_never().is_none());
        assert_eq!((limit.running(), limit.queued()), (1, 1));
        assert_eq!(limit.admit(soon()).await.err(), Some(Refused::Busy { running: 1, queued: 1 }));
        drop(running);
        let second = waiting.await.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((limit.running(), limit.queued()), (1, 0));
        drop(second);
        assert_eq!(limit.running(), 0);
    }

    #[tokio::test]
    async fn a_dropped_waiter_gives_back_its_place() {
        let limit = CallLimit::new(1, 1);
        let _running = limit.admit(soon()).await.unwrap_or_else(|e| panic!("{e:?}"));
        {
            let waiting = limit.admit(soon());
            tokio::pin!(waiting);
            assert!((&mut waiting).now_or_never().is_none());
            assert_eq!(limit.queued(), 1);
        }
        assert_eq!(limit.queued(), 0);
        let expired = limit.admit(Instant::now() + Duration::from_millis(10)).await;
        assert_eq!(expired.err(), Some(Refused::TimedOut { running: 1 }));
        limit.close();
        assert_eq!(limit.admit(soon()).await.err(), Some(Refused::Closed));
    }
}
