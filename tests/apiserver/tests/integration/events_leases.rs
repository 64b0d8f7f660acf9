//! The events `Recorder` and leases (through `Api<Lease>` and kube-lease-manager).

use std::time::Duration;

use inproc_apiserver::Verb;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;

use crate::common::{TestResult, api_status, server, within};

#[tokio::test]
async fn recorder_publishes_events() -> TestResult {
    let server = server().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let subject = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("subject".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-controller".into(),
            instance: None,
        },
    );
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("all good".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = subject.object_ref(&());
    recorder.publish(&event, &reference).await?;
    // The same event again becomes a series update (a merge patch).
    recorder.publish(&event, &reference).await?;

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1);
    let recorded = &list.items[0];
    assert_eq!(recorded.reason.as_deref(), Some("Reconciled"));
    assert_eq!(recorded.note.as_deref(), Some("all good"));
    assert_eq!(
        recorded.reporting_controller.as_deref(),
        Some("test-controller")
    );
    assert_eq!(
        recorded.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("subject")
    );
    assert_eq!(recorded.series.as_ref().map(|s| s.count), Some(2));

    // The same storage seen through the core v1 Event API.
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let core_events = core
        .list(&ListParams::default().fields("involvedObject.name=subject"))
        .await?;
    assert_eq!(core_events.items.len(), 1);
    assert_eq!(core_events.items[0].message.as_deref(), Some("all good"));
    assert_eq!(
        core_events.items[0].reporting_component.as_deref(),
        Some("test-controller")
    );

    let stats = server.requests();
    assert_eq!(stats.count(Verb::Create, "events.events.k8s.io"), 1);
    assert_eq!(stats.count(Verb::Patch, "events"), 1);
    Ok(())
}

fn lease(holder: &str, now: MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

#[tokio::test]
async fn lease_acquire_and_renew_through_the_api() -> TestResult {
    let server = server().await;
    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    let acquired = leases
        .create(&PostParams::default(), &lease("a", now()))
        .await?;
    // A competing acquirer loses on create...
    let status = api_status(
        leases
            .create(&PostParams::default(), &lease("b", now()))
            .await,
    );
    assert_eq!(status.reason, "AlreadyExists");

    // ...the holder renews with an optimistic-concurrency update...
    let mut renew = acquired.clone();
    if let Some(spec) = renew.spec.as_mut() {
        spec.renew_time = Some(now());
    }
    let renewed = leases
        .replace("leader", &PostParams::default(), &renew)
        .await?;
    assert_ne!(renewed.resource_version(), acquired.resource_version());

    // ...and a competitor holding the old version conflicts.
    let mut steal = acquired.clone();
    if let Some(spec) = steal.spec.as_mut() {
        spec.holder_identity = Some("b".into());
    }
    let status = api_status(
        leases
            .replace("leader", &PostParams::default(), &steal)
            .await,
    );
    assert_eq!(status.code, 409);
    let current = leases.get("leader").await?;
    assert_eq!(
        current.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("a")
    );
    Ok(())
}

#[tokio::test]
async fn kube_lease_manager_acquires_renews_and_hands_over() -> TestResult {
    let server = server().await;
    let client = server.client();
    let a = LeaseManagerBuilder::new(client.clone(), "election")
        .with_namespace("default")
        .with_identity("instance-a")
        .with_duration(4)
        .with_grace(2)
        .build()
        .await?;
    let b = LeaseManagerBuilder::new(client.clone(), "election")
        .with_namespace("default")
        .with_identity("instance-b")
        .with_duration(4)
        .with_grace(2)
        .build()
        .await?;

    assert!(within("a becomes leader", a.changed()).await?);
    let holder = |server: &inproc_apiserver::ApiServer| {
        server
            .store()
            .get::<Lease>(Some("default"), "election")
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    };
    assert_eq!(holder(&server).as_deref(), Some("instance-a"));

    // While `a` keeps renewing, `b` does not take over.
    let renewals_before = server.requests().count(Verb::Patch, "leases");
    let contest = async {
        tokio::select! {
            changed = b.changed() => panic!("b changed state while a held the lease: {changed:?}"),
            result = async {
                for _ in 0..3 {
                    // Each call returns only when a's state changes; run it while b contends.
                    if tokio::time::timeout(Duration::from_millis(1500), a.changed()).await.is_ok() {
                        panic!("a lost the lease while renewing");
                    }
                }
            } => result,
        }
    };
    within("a renews while b waits", contest).await;
    assert!(
        server.requests().count(Verb::Patch, "leases") > renewals_before,
        "renewals are writes"
    );
    assert_eq!(holder(&server).as_deref(), Some("instance-a"));

    // `a` steps down; `b` acquires.
    a.release().await?;
    let handover = tokio::time::timeout(Duration::from_secs(30), b.changed()).await;
    assert!(handover.expect("b becomes leader within 30 s")?);
    assert_eq!(holder(&server).as_deref(), Some("instance-b"));
    Ok(())
}
