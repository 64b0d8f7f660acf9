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
/// like a scenario record, and for logs), each cause once (see [`error_messages`]).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    error_messages(error).join(": ")
}

/// The messages of an error and of its causes, outermost first, without the causes whose
/// message an earlier one already shows: many errors repeat their source's message in their
/// own (`client error: tcp connect error: Connection refused`, then `tcp connect error:
/// Connection refused`, then `Connection refused`).
pub fn error_messages(error: &dyn std::error::Error) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let message = error.to_string();
        if !messages.iter().any(|shown| shown.contains(&message)) {
            messages.push(message);
        }
        next = error.source();
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn chain(messages: &[&'static str]) -> Layer {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Layer(message, source.map(Box::new)))
            })
            .expect("at least one message")
    }

    #[test]
    fn causes_that_an_earlier_message_shows_are_given_once() {
        let error = chain(&[
            "could not connect to https://10.0.0.1:6443",
            "client error: tcp connect error: Connection refused",
            "tcp connect error: Connection refused",
            "Connection refused",
        ]);
        assert_eq!(
            error_messages(&error),
            [
                "could not connect to https://10.0.0.1:6443",
                "client error: tcp connect error: Connection refused"
            ]
        );
        assert_eq!(
            error_chain(&error),
            "could not connect to https://10.0.0.1:6443: client error: tcp connect error: \
             Connection refused"
        );
        assert_eq!(error_chain(&chain(&["a", "b", "c"])), "a: b: c");
    }
}
