//! Conversions between the generated bindings and the [`capt_policy`] model: the only place
//! where both meet.

use crate::bindings::exports::capt::policy::types as wit;
use capt_policy as model;

pub(crate) fn request_to_wit(r: &model::Request) -> wit::Request {
    wit::Request {
        trigger: ref_to_wit(&r.trigger),
        now_epoch_millis: r.now_epoch_millis,
        objects: r
            .objects
            .iter()
            .map(|o| wit::ObservedObject {
                ref_: ref_to_wit(&o.reference),
                manifest: o.manifest.clone(),
            })
            .collect(),
        missing: r.missing.iter().map(ref_to_wit).collect(),
        settings: r.settings.clone(),
    }
}

pub(crate) fn response_from_wit(r: wit::Response) -> model::Response {
    model::Response {
        patches: r
            .patches
            .into_iter()
            .map(|p| model::Patch {
                target: ref_from_wit(p.target),
                subresource: match p.subresource {
                    wit::Subresource::Status => model::Subresource::Status,
                    wit::Subresource::Main => model::Subresource::Main,
                },
                merge_patch: p.merge_patch,
                resource_version: p.resource_version,
            })
            .collect(),
        events: r
            .events
            .into_iter()
            .map(|e| model::Event {
                regarding: ref_from_wit(e.regarding),
                event_type: match e.event_type {
                    wit::EventType::Normal => model::EventType::Normal,
                    wit::EventType::Warning => model::EventType::Warning,
                },
                reason: e.reason,
                message: e.message,
            })
            .collect(),
        requeue_after_millis: r.requeue_after_millis,
        requirements: r.requirements.into_iter().map(ref_from_wit).collect(),
    }
}

pub(crate) fn error_from_wit(e: wit::Error) -> model::Error {
    match e {
        wit::Error::InvalidInput(m) => model::Error::InvalidInput(m),
        wit::Error::UnsupportedKind(m) => model::Error::UnsupportedKind(m),
        wit::Error::Internal(m) => model::Error::Internal(m),
    }
}

pub(crate) fn metadata_from_wit(m: wit::PolicyMetadata) -> model::Metadata {
    model::Metadata {
        name: m.name,
        version: m.version,
        triggers: m.triggers.into_iter().map(kind_from_wit).collect(),
        reads: m.reads.into_iter().map(kind_from_wit).collect(),
        default_settings: m.default_settings,
    }
}

fn kind_from_wit(k: wit::KindRef) -> model::KindRef {
    model::KindRef {
        api_version: k.api_version,
        kind: k.kind,
        namespaced: k.namespaced,
    }
}

fn ref_to_wit(r: &model::ObjectRef) -> wit::ObjectRef {
    wit::ObjectRef {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    }
}

fn ref_from_wit(r: wit::ObjectRef) -> model::ObjectRef {
    model::ObjectRef {
        api_version: r.api_version,
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
    }
}
