//! The policy settings: defaults, operator overrides, validation.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use capt_policy::duration::{format_millis, parse};

/// A duration written as a Go-style string in settings (`15m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

impl Duration {
    /// The duration in milliseconds.
    pub fn millis(self) -> u64 {
        self.0
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_millis(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = parse(&text).map_err(serde::de::Error::custom)?;
        Ok(Duration(
            u64::try_from(parsed.as_millis()).map_err(serde::de::Error::custom)?,
        ))
    }
}

/// Whether the policy writes the Cluster API Cluster itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterPropagation {
    /// Write `infrastructureReady`, `controlPlaneReady`, failures, failure domains and endpoint.
    Direct,
    /// Leave the Cluster to the Cluster API core controller.
    None,
}

/// The settings of the capt-status policy (see the policy README for their meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// VPC creation / waiting for the infrastructure's VPC.
    pub vpc_ready_timeout: Duration,
    /// Control plane creation.
    pub control_plane_timeout: Duration,
    /// Until the Workspace exists and is Synced.
    pub workspace_ready_timeout: Duration,
    /// From applied until the VPC ID / endpoint is known.
    pub secret_timeout: Duration,
    /// Whether to write the Cluster.
    pub cluster_propagation: ClusterPropagation,
    /// Terminal reasons that recover by themselves when their cause is gone.
    pub auto_recover_reasons: Vec<String>,
    /// The requeue while waiting for something without a nearer deadline.
    pub poll_interval: Duration,
    /// The shortest back-off after a transient error.
    pub min_retry_delay: Duration,
    /// The longest back-off after a transient error.
    pub max_retry_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        const MINUTE: u64 = 60_000;
        Self {
            vpc_ready_timeout: Duration(15 * MINUTE),
            control_plane_timeout: Duration(30 * MINUTE),
            workspace_ready_timeout: Duration(10 * MINUTE),
            secret_timeout: Duration(5 * MINUTE),
            cluster_propagation: ClusterPropagation::Direct,
            auto_recover_reasons: Vec::new(),
            poll_interval: Duration(10_000),
            min_retry_delay: Duration(5_000),
            max_retry_delay: Duration(5 * MINUTE),
        }
    }
}

impl Settings {
    /// Parses the settings JSON of a request. Absent keys take their defaults; unknown keys and
    /// malformed values are errors, so a typo in an operator's settings file is caught.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let settings: Settings = if text.trim().is_empty() {
            Settings::default()
        } else {
            // Read as a document first, then as settings: a key or value the settings refuse is
            // named without a line and column of the JSON the host merged, which the operator
            // never wrote.
            let document: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("settings: {e}"))?;
            serde_json::from_value(document).map_err(|e| format!("settings: {e}"))?
        };
        if settings.min_retry_delay > settings.max_retry_delay {
            return Err("settings: minRetryDelay must not exceed maxRetryDelay".to_owned());
        }
        if settings.poll_interval.millis() == 0 {
            return Err("settings: pollInterval must be positive".to_owned());
        }
        Ok(settings)
    }

    /// The defaults as the JSON object reported by `metadata()`.
    pub fn defaults_json() -> String {
        serde_json::to_string(&Settings::default()).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_take_defaults_and_overrides_apply() {
        let s =
            Settings::from_json(r#"{"clusterPropagation":"none","secretTimeout":"90s"}"#).unwrap();
        assert_eq!(s.cluster_propagation, ClusterPropagation::None);
        assert_eq!(s.secret_timeout, Duration(90_000));
        assert_eq!(s.vpc_ready_timeout, Settings::default().vpc_ready_timeout);
        assert_eq!(Settings::from_json("").unwrap(), Settings::default());
    }

    #[test]
    fn typos_and_bad_values_are_rejected_with_the_key() {
        let e = Settings::from_json(r#"{"vpcReadyTimeot":"1m"}"#).unwrap_err();
        assert!(e.contains("vpcReadyTimeot"), "{e}");
        // No position in the JSON the host merged: the operator never saw it.
        assert!(!e.contains("line"), "{e}");
        let e = Settings::from_json(r#"{"vpcReadyTimeout":"soon"}"#).unwrap_err();
        assert!(e.contains("soon") && !e.contains("line"), "{e}");
        assert!(Settings::from_json(r#"{"minRetryDelay":"10m"}"#).is_err());
        assert!(Settings::from_json(r#"{"clusterPropagation":"sideways"}"#).is_err());
    }

    #[test]
    fn defaults_serialize_as_go_durations() {
        let v: serde_json::Value = serde_json::from_str(&Settings::defaults_json()).unwrap();
        assert_eq!(v["vpcReadyTimeout"], "15m");
        assert_eq!(v["pollInterval"], "10s");
        assert_eq!(v["clusterPropagation"], "direct");
        assert_eq!(
            Settings::from_json(&Settings::defaults_json()).unwrap(),
            Settings::default()
        );
    }
}
