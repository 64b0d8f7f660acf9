//! # capt-host-core: what every `capt:policy` host shares
//!
//! The layer under every host of a policy implementing the WIT world `capt:policy/policy` (see
//! `wit/policy.wit`): it knows the contract, never a policy's kinds or conditions, and it
//! depends on no wasm runtime, no Kubernetes client and no async runtime.
//!
//! ```text
//!  object source ──▶ rounds ──request──▶ Policy (any implementation)
//!  (World, ...)        ▲   ◀─requirements─┘          │
//!       ▲              └──────── final response ◀────┘
//!       └──── patches (resourceVersion-chained) ◀── scenario runner / an operator
//! ```
//!
//! - [`Policy`]: what a host calls, and its errors.
//! - [`rounds`]: the requirement round protocol over an [`rounds::ObjectSource`].
//! - [`world`]: an in-memory API server (merge patches, subresources, versions).
//! - [`scenario`]: the scenario file format, its runner and its matching.
//! - [`settings`]: settings files, checked by the policy, errors at the user's line and column.
//! - [`view`]: requests, responses and objects rendered for people.

mod policy;
pub mod rounds;
pub mod scenario;
pub mod settings;
pub mod text;
pub mod view;
pub mod world;

pub use policy::{BoxError, NativePolicy, Policy, PolicyError, PolicyErrorKind};

/// An error and its causes on one line, joined by `: ` (for messages that outlive the error,
/// like a scenario record).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
