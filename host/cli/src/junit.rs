//! JUnit XML, the test report format CI systems read: one `<testsuite>` of `<testcase>`s.

use std::fmt::Write as _;
use std::time::Duration;

/// A test case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Passed,
    /// An expectation did not hold: `message` (one line) and `details`.
    Failure {
        /// What failed, in short.
        message: String,
        /// Everything about it.
        details: String,
    },
    /// It could not run as written (bad input).
    Error {
        /// What is wrong, in short.
        message: String,
        /// Everything about it.
        details: String,
    },
}

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Its class name (here: the scenario's file).
    pub classname: String,
    /// How long it took.
    pub time: Duration,
    /// Its result.
    pub verdict: Verdict,
}

/// The XML document of one test suite named `suite` holding `cases`.
pub fn report(suite: &str, cases: &[Case]) -> String {
    let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
    let failures = count(|v| matches!(v, Verdict::Failure { .. }));
    let errors = count(|v| matches!(v, Verdict::Error { .. }));
    let time: f64 = cases.iter().map(|c| c.time.as_secs_f64()).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = escape(suite);
    let tests = cases.len();
    let _ = writeln!(
        xml,
        "<testsuites name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    for case in cases {
        let _ = write!(
            xml,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(&case.name),
            escape(&case.classname),
            case.time.as_secs_f64()
        );
        let (tag, message, details) = match &case.verdict {
            Verdict::Passed => {
                xml.push_str("/>\n");
                continue;
            }
            Verdict::Failure { message, details } => ("failure", message, details),
            Verdict::Error { message, details } => ("error", message, details),
        };
        let _ = writeln!(
            xml,
            ">\n      <{tag} message=\"{}\">{}</{tag}>\n    </testcase>",
            escape(message),
            escape(details)
        );
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// `text` as XML character data or attribute value: markup characters escaped, characters
/// XML 1.0 cannot hold (most control characters, e.g. a terminal's escape) as `\u{..}`.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\n' => escaped.push_str("&#10;"),
            '\t' | '\r' => {
                let _ = write!(escaped, "&#{};", u32::from(c));
            }
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
            }
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_counts_its_failures_and_errors_and_escapes_its_text() {
        let case = |name: &str, verdict| Case {
            name: name.into(),
            classname: "dir/a.yaml".into(),
            time: Duration::from_millis(1500),
            verdict,
        };
        let xml = report(
            "capt-host test",
            &[
                case("ok", Verdict::Passed),
                case(
                    "a <b> & \"c\"",
                    Verdict::Failure {
                        message: "step 1: x".into(),
                        details: "- a\n+ b\u{1b}".into(),
                    },
                ),
                case(
                    "bad",
                    Verdict::Error {
                        message: "settings".into(),
                        details: String::new(),
                    },
                ),
            ],
        );
        assert!(xml.contains(
            "<testsuite name=\"capt-host test\" tests=\"3\" failures=\"1\" errors=\"1\" time=\"4.500\">"
        ), "{xml}");
        assert!(
            xml.contains("<testcase name=\"ok\" classname=\"dir/a.yaml\" time=\"1.500\"/>"),
            "{xml}"
        );
        assert!(xml.contains(
            "<testcase name=\"a &lt;b&gt; &amp; &quot;c&quot;\" classname=\"dir/a.yaml\" time=\"1.500\">\n      <failure message=\"step 1: x\">- a&#10;+ b\\u{1b}</failure>\n    </testcase>"
        ), "{xml}");
        assert!(
            xml.contains("<error message=\"settings\"></error>"),
            "{xml}"
        );
        assert!(xml.ends_with("  </testsuite>\n</testsuites>\n"), "{xml}");
    }
}
