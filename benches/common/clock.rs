//! The benches' clock: wall-clock time, or with `DUMPCRYPT_BENCH_CLOCK=cpu` the CPU time of
//! the benchmark's thread (`CLOCK_THREAD_CPUTIME_ID`), which a machine shared with other jobs
//! does not inflate by the time the thread waits for a processor. scripts/bench-report.sh
//! uses the CPU clock and `openssl speed` without `-elapsed` (its user CPU time), so that both
//! sides of every ratio are measured the same way.
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// Which clock, chosen once from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    cpu: bool,
    origin: Instant,
}

impl Clock {
    pub fn from_env() -> Self {
        Self {
            cpu: std::env::var("DUMPCRYPT_BENCH_CLOCK").is_ok_and(|clock| clock == "cpu"),
            origin: Instant::now(),
        }
    }

    fn now(&self) -> Duration {
        if !self.cpu {
            return self.origin.elapsed();
        }
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `time` is a valid timespec for the call to fill; the clock id is one Linux
        // defines for every thread.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut time) };
        assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
    }
}

impl Measurement for Clock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }

    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Values in nanoseconds, shown as ns/µs/ms/s; throughput in bytes per second.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|value| *value *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_second = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n as f64,
            Throughput::Elements(n) => n as f64,
        };
        let rate = per_second * 1e9 / typical;
        let (factor, unit) = if rate < 1e6 {
            (1e-3, "KB/s")
        } else if rate < 1e9 {
            (1e-6, "MB/s")
        } else {
            (1e-9, "GB/s")
        };
        values
            .iter_mut()
            .for_each(|value| *value = per_second * 1e9 / *value * factor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
