//! What the guest-call benchmarks share: the realistic requests and the statistics.

mod requests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use capt_policy::Request;

pub use self::requests::{final_requests, options};

/// Bytes of JSON text a request carries (its manifests and settings).
pub fn request_bytes(request: &Request) -> usize {
    request
        .objects
        .iter()
        .map(|o| o.manifest.len())
        .sum::<usize>()
        + request.settings.len()
}

/// The median and 99th percentile of `samples`, sorted in place.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// `d` in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `path` as given if absolute, else relative to the workspace root (cargo runs benches in the
/// package's directory).
pub fn from_workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}
