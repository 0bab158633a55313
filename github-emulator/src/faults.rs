//! Faults injected on demand: each GitHub-route request consumes the next one in the queue.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

/// What the next GitHub-route request suffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and a GitHub-style JSON body) instead of handling the request.
    /// Values outside 400..=599 are answered as 500.
    Status(u16),
    /// Wait this long, then handle the request normally.
    Latency(Duration),
    /// Close the connection after reading the request, without any response.
    DropConnection,
    /// GitHub's primary rate limit: answer `status` (403 or 429; anything else is answered as
    /// 403) with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` `reset_in` from now, in
    /// epoch seconds on the emulator's clock, rounded up. Like GitHub, every GitHub-route request
    /// until the reset is refused the same way (queued faults wait).
    PrimaryRateLimit { status: u16, reset_in: Duration },
    /// A secondary rate limit: answer `status` (403 or 429; anything else is answered as 403)
    /// with GitHub's message and `Retry-After` (whole seconds, at least 1). Every GitHub-route
    /// request until `retry_after` has passed is refused the same way, with what is left.
    SecondaryRateLimit { status: u16, retry_after: Duration },
}

/// The JSON form of a fault on `POST /_emulator/faults`:
/// `{"fault":"status","status":500,"count":3}`, `{"fault":"latency","millis":2000}`,
/// `{"fault":"drop"}`, `{"fault":"primary_rate_limit","reset_in_secs":60,"status":429}`,
/// `{"fault":"secondary_rate_limit","retry_after_secs":60}`. `count` defaults to 1, the
/// rate limits' `status` to 403.
#[derive(Debug, Deserialize)]
pub(crate) struct FaultRequest {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub(crate) enum FaultKind {
    Status {
        status: u16,
    },
    Latency {
        millis: u64,
    },
    Drop,
    PrimaryRateLimit {
        reset_in_secs: u64,
        #[serde(default = "forbidden")]
        status: u16,
    },
    SecondaryRateLimit {
        retry_after_secs: u64,
        #[serde(default = "forbidden")]
        status: u16,
    },
}

fn one() -> u32 {
    1
}

fn forbidden() -> u16 {
    403
}

impl From<FaultKind> for Fault {
    fn from(kind: FaultKind) -> Self {
        match kind {
            FaultKind::Status { status } => Fault::Status(status),
            FaultKind::Latency { millis } => Fault::Latency(Duration::from_millis(millis)),
            FaultKind::Drop => Fault::DropConnection,
            FaultKind::PrimaryRateLimit { reset_in_secs, status } => {
                Fault::PrimaryRateLimit { status, reset_in: Duration::from_secs(reset_in_secs) }
            }
            FaultKind::SecondaryRateLimit { retry_after_secs, status } => {
                Fault::SecondaryRateLimit { status, retry_after: Duration::from_secs(retry_after_secs) }
            }
        }
    }
}

/// Faults in order, each with how many requests it still applies to.
#[derive(Default)]
pub(crate) struct FaultQueue {
    entries: VecDeque<(Fault, u32)>,
}

impl FaultQueue {
    pub fn push(&mut self, fault: Fault, count: u32) {
        if count > 0 {
            self.entries.push_back((fault, count));
        }
    }

    pub fn pop(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.entries.front_mut()?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            self.entries.pop_front();
        }
        Some(fault)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn pending(&self) -> u64 {
        self.entries.iter().map(|(_, n)| u64::from(*n)).sum()
    }
}
