//! The `process_*` families every Prometheus client library exports (CPU time, memory, file
//! descriptors, start time), read from Linux's `/proc/self` at each scrape. Elsewhere, or
//! when a file cannot be read, the families it gives are left out.

use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Encodes the `process_*` families of this process.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

/// What `/proc/self/stat` and `/proc/stat` say of this process.
#[derive(Debug, PartialEq)]
struct Stat {
    /// User and system CPU time, in seconds.
    cpu_seconds: f64,
    /// Resident set size, in bytes.
    resident_bytes: f64,
    /// Virtual memory size, in bytes.
    virtual_bytes: f64,
    /// Since the Unix epoch, in seconds.
    start_time_seconds: f64,
}

impl Stat {
    /// Parses `/proc/self/stat`'s `stat`, with the boot time `boot_seconds` (Unix time), clock
    /// ticks per second `ticks` and the page size `page`.
    fn parse(stat: &str, boot_seconds: f64, ticks: f64, page: f64) -> Option<Self> {
        // The command name, in parentheses, may hold spaces and parentheses: fields start
        // after the last `)`, with the state (field 3).
        let (_, fields) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            start_time_seconds: boot_seconds + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
        })
    }

    fn read() -> Option<Self> {
        let boot = fs::read_to_string("/proc/stat").ok()?;
        let boot_seconds = boot
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        // Exact for any realistic tick rate and page size.
        #[expect(clippy::cast_precision_loss)]
        let (ticks, page) = (
            rustix::param::clock_ticks_per_second() as f64,
            rustix::param::page_size() as f64,
        );
        Self::parse(&stat, boot_seconds, ticks, page)
    }
}

/// The soft limit of open files in `/proc/self/limits`'s `limits` (`None`: unlimited).
fn max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stat) = Stat::read() {
            ConstCounter::new(stat.cpu_seconds).encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stat.resident_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stat.virtual_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                stat.start_time_seconds,
            )?;
        }
        if let Ok(fds) = fs::read_dir("/proc/self/fd") {
            // Exact below 2^53 descriptors.
            #[expect(clippy::cast_precision_loss)]
            let open = fds.count() as f64;
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                open,
            )?;
        }
        if let Some(max) = fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| max_fds(&limits))
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 \
                    1000 4096000 300 18446744073709551615";
        let parsed = Stat::parse(stat, 1_700_000_000.0, 100.0, 4096.0).expect("parsed");
        assert_eq!(
            parsed,
            Stat {
                cpu_seconds: 3.0,
                resident_bytes: 300.0 * 4096.0,
                virtual_bytes: 4_096_000.0,
                start_time_seconds: 1_700_000_010.0,
            }
        );
        assert_eq!(Stat::parse("42 (truncated", 0.0, 100.0, 4096.0), None);
    }

    #[test]
    fn the_soft_limit_of_open_files_is_the_maximum() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), Some(1024.0));
        assert_eq!(
            max_fds("Max open files            unlimited            unlimited            files"),
            None
        );
    }
}
