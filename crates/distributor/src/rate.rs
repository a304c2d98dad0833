//! Per-tenant token buckets on encoded request bytes (`ingestion.rate_limit_bytes`,
//! `ingestion.burst_size_bytes`, strategy `local`).

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use vivace_common::TenantId;

#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Why a push was refused by the rate limiter; the messages are Tempo's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RateRefusal {
    BatchTooLarge,
    RateExceeded,
}

impl RateLimiter {
    pub(crate) fn take(
        &self,
        tenant: &TenantId,
        rate: u64,
        burst: u64,
        n: u64,
        now: Instant,
    ) -> Result<(), RateRefusal> {
        if rate == 0 {
            return Ok(());
        }
        let burst = burst.max(1) as f64;
        if n as f64 > burst {
            return Err(RateRefusal::BatchTooLarge);
        }
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate as f64).min(burst);
        b.last = now;
        if b.tokens < n as f64 {
            return Err(RateRefusal::RateExceeded);
        }
        b.tokens -= n as f64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_rate_up_to_burst() {
        let r = RateLimiter::default();
        let t = TenantId::single();
        let now = Instant::now();
        assert_eq!(
            r.take(&t, 100, 200, 201, now),
            Err(RateRefusal::BatchTooLarge)
        );
        assert!(r.take(&t, 100, 200, 150, now).is_ok());
        assert_eq!(
            r.take(&t, 100, 200, 100, now),
            Err(RateRefusal::RateExceeded)
        );
        assert!(
            r.take(&t, 100, 200, 100, now + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            r.take(&t, 100, 200, 200, now + Duration::from_secs(100))
                .is_ok()
        );
        assert!(r.take(&t, 0, 0, 1 << 40, now).is_ok(), "rate 0 = unlimited");
    }
}
