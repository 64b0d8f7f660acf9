//! The bound on every message the policy writes (policy README, "Messages"): at most
//! [`MAX_MESSAGE_BYTES`] bytes of UTF-8, so a Terraform error of any size still fits the CRDs.

use std::borrow::Cow;

/// The longest message the policy writes, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// What a cut message ends with.
const TRUNCATED: &str = "… (truncated)";

/// `message` as written: unchanged when it fits, else cut at a character boundary so that,
/// with [`TRUNCATED`] appended, it is at most [`MAX_MESSAGE_BYTES`] bytes.
pub fn bounded(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_MESSAGE_BYTES {
        return Cow::Borrowed(message);
    }
    let mut end = MAX_MESSAGE_BYTES - TRUNCATED.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + TRUNCATED.len());
    cut.push_str(&message[..end]);
    cut.push_str(TRUNCATED);
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_and_long_ones_cut_at_a_character() {
        assert_eq!(bounded("fine"), "fine");
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(bounded(&exact), exact);
        let long = "é".repeat(40_000);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with("… (truncated)"));
        assert!(cut.len() > MAX_MESSAGE_BYTES - 3 - TRUNCATED.len());
        assert!(cut.starts_with("éé"));
    }
}
