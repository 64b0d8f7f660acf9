//! Integration tests, in one binary so the heavy crates link once.

mod guests;
mod wasm;
