//! CPU-bound work: N iterations of an integer mixing function, spread over threads. Each
//! iteration's result depends only on its number and the sum wraps, so the checksum is the
//! same for any thread count and on every architecture: compare it across riscv64, arm64 and
//! amd64.

use std::thread;
use std::time::Instant;

use svckit::expo::Registry;

const ROUNDS: u32 = 256;

/// Iteration `i`: ROUNDS rounds of splitmix64's finalizer, chained.
pub fn iteration(i: u64) -> u64 {
    let mut x = i;
    for _ in 0..ROUNDS {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= z ^ (z >> 31);
    }
    x
}

#[derive(Debug)]
pub struct Report {
    pub iterations: u64,
    pub threads: u64,
    pub checksum: u64,
    pub seconds: f64,
}

pub fn run(iterations: u64, threads: u64) -> Report {
    let started = Instant::now();
    let threads = threads.clamp(1, iterations.max(1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            // Thread t takes iterations t, t + threads, t + 2·threads, …
            thread::spawn(move || (t..iterations).step_by(threads as usize).fold(0u64, |sum, i| sum.wrapping_add(iteration(i))))
        })
        .collect();
    let checksum = workers.into_iter().fold(0u64, |sum, w| sum.wrapping_add(w.join().expect("cpu worker")));
    Report { iterations, threads, checksum, seconds: started.elapsed().as_secs_f64() }
}

impl Report {
    pub fn metrics(&self, r: &mut Registry) {
        r.counter("workload_cpu_iterations_total", "Iterations of the mixing function done.", &[], self.iterations as f64);
        r.gauge("workload_cpu_threads", "Threads the iterations were spread over.", &[], self.threads as f64);
        r.gauge("workload_cpu_seconds", "Wall time of the CPU work.", &[], self.seconds);
        let rate = if self.seconds > 0.0 { self.iterations as f64 / self.seconds } else { f64::NAN };
        r.gauge("workload_cpu_iterations_per_second", "Iterations per second of wall time.", &[], rate);
        let checksum = format!("{:016x}", self.checksum);
        r.gauge("workload_cpu_checksum_info", "The iterations' checksum (the same on every architecture).",
                &[("checksum", &checksum)], 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_does_not_depend_on_threads() {
        let one = run(1000, 1);
        let four = run(1000, 4);
        assert_eq!(one.checksum, four.checksum);
        assert_eq!((four.threads, run(3, 8).threads, run(0, 2).threads), (4, 3, 1));
        assert_eq!(run(0, 1).checksum, 0);
    }
}
