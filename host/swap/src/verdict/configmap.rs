//! [`ConfigMapVerdicts`]: verdicts in the `data` of a ConfigMap, one JSON entry per candidate
//! ([`VerdictKey::name`] → [`Verdict`]), at most [`MAX_ENTRIES`] of them (the oldest dropped).
//! Written with the ConfigMap's `resourceVersion` (create, or update; a conflict is read
//! again and retried), so an entry is never overwritten.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt as _};

use super::{Recorded, Verdict, VerdictKey, VerdictStore, VerdictStoreError};

/// The most entries the ConfigMap keeps: the most recent ones.
pub const MAX_ENTRIES: usize = 16;

/// Writes tried before giving up when other replicas keep writing the ConfigMap too.
const ATTEMPTS: u32 = 5;

/// Verdicts in the ConfigMap `name` of one namespace.
#[derive(Debug, Clone)]
pub struct ConfigMapVerdicts {
    api: Api<ConfigMap>,
    name: String,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl ConfigMapVerdicts {
    /// The ConfigMap `name` in `namespace`, through `client`, on `runtime`; each request is
    /// given up after `timeout`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            runtime,
            timeout,
        }
    }

    /// Runs `request` to its end on the runtime, within the timeout.
    fn call<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, VerdictStoreError> {
        self.runtime
            // The timer is made on the runtime: the caller may be outside it.
            .block_on(async { tokio::time::timeout(self.timeout, request).await })
            .map_err(|_| VerdictStoreError::Timeout(self.timeout))?
            .map_err(VerdictStoreError::Api)
    }
}

impl VerdictStore for ConfigMapVerdicts {
    fn lookup(&self, key: &VerdictKey) -> Result<Option<Verdict>, VerdictStoreError> {
        let Some(map) = self.call(self.api.get_opt(&self.name))? else {
            return Ok(None);
        };
        entry(&map, &key.name())
    }

    fn record(&self, key: &VerdictKey, verdict: &Verdict) -> Result<Recorded, VerdictStoreError> {
        let name = key.name();
        let value = serde_json::to_string(verdict).map_err(VerdictStoreError::Encode)?;
        for _ in 0..ATTEMPTS {
            let written = match self.call(self.api.get_opt(&self.name))? {
                Some(mut map) => {
                    if let Some(existing) = entry(&map, &name)? {
                        return Ok(Recorded::Existing(existing));
                    }
                    let data = map.data.get_or_insert_with(BTreeMap::new);
                    data.insert(name.clone(), value.clone());
                    prune(data, MAX_ENTRIES);
                    // The resourceVersion read makes a concurrent write a conflict.
                    self.call(self.api.replace(&self.name, &PostParams::default(), &map))
                }
                None => {
                    let map = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(self.name.clone()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/component".to_owned(),
                                "policy-verdicts".to_owned(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([(name.clone(), value.clone())])),
                        ..ConfigMap::default()
                    };
                    self.call(self.api.create(&PostParams::default(), &map))
                }
            };
            match written {
                Ok(map) => {
                    tracing::debug!(configmap = %map.name_any(), key = %name, "verdict written");
                    return Ok(Recorded::Recorded);
                }
                // Written meanwhile (409: a conflict, or created by another replica): read
                // again.
                Err(VerdictStoreError::Api(kube::Error::Api(status))) if status.code == 409 => {}
                Err(error) => return Err(error),
            }
        }
        Err(VerdictStoreError::Contended(ATTEMPTS))
    }
}

/// The verdict of `map` under `key`, if any.
fn entry(map: &ConfigMap, key: &str) -> Result<Option<Verdict>, VerdictStoreError> {
    map.data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|value| {
            serde_json::from_str(value).map_err(|source| VerdictStoreError::Malformed {
                key: key.to_owned(),
                source,
            })
        })
        .transpose()
}

/// Drops the oldest entries of `data` (by their time; unreadable ones first) until at most
/// `max` are left.
fn prune(data: &mut BTreeMap<String, String>, max: usize) {
    while data.len() > max {
        let oldest = data
            .iter()
            .min_by_key(|(_, value)| {
                serde_json::from_str::<Verdict>(value)
                    .ok()
                    .map(|verdict| verdict.at)
            })
            .map(|(key, _)| key.clone());
        match oldest {
            Some(key) => data.remove(&key),
            None => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::super::Decision;
    use super::*;

    fn verdict(second: u32) -> String {
        serde_json::to_string(&Verdict {
            verdict: Decision::Accepted,
            reason: None,
            message: None,
            judged_by: "r".into(),
            at: Utc.with_ymd_and_hms(2026, 12, 5, 13, 0, second).unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn the_map_keeps_the_most_recent_entries() {
        let mut data: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("k{i:02}"), verdict(59 - i)))
            .collect();
        data.insert("garbage".into(), "not json".into());
        prune(&mut data, MAX_ENTRIES);
        assert_eq!(data.len(), MAX_ENTRIES);
        assert!(!data.contains_key("garbage"), "unreadable entries go first");
        // k00 is the most recent (second 59), k19 the oldest.
        assert!(data.contains_key("k00") && data.contains_key("k15"));
        assert!(!data.contains_key("k16") && !data.contains_key("k19"));
    }

    #[test]
    fn entries_read_back_and_an_unreadable_one_is_an_error() {
        let map = ConfigMap {
            data: Some(BTreeMap::from([
                ("good".to_owned(), verdict(1)),
                ("bad".to_owned(), "{".to_owned()),
            ])),
            ..ConfigMap::default()
        };
        let good = entry(&map, "good").unwrap().expect("an entry");
        assert_eq!(good.verdict, Decision::Accepted);
        assert_eq!(good.at.timestamp() % 60, 1);
        assert!(entry(&map, "missing").unwrap().is_none());
        assert!(matches!(
            entry(&map, "bad"),
            Err(VerdictStoreError::Malformed { .. })
        ));
    }
}
