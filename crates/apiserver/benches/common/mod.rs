//! The one timer the apiserver's bench binaries share.

use std::time::Instant;

/// Runs `op` `iterations` times and prints operations per second and the time of
/// one. Names given on the command line (`cargo bench -p apiserver --bench X --
/// update`) run only the cases whose name contains one of them.
pub fn time(name: &str, iterations: u32, mut op: impl FnMut()) {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    let elapsed = start.elapsed();
    let per_second = f64::from(iterations) / elapsed.as_secs_f64();
    let each = elapsed / iterations;
    println!("{name:<44} {iterations} in {elapsed:>10.2?}  {per_second:>12.0} ops/s  {each:>9.2?} each");
}
