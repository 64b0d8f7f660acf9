//! `--filter`: a substring, or a glob when it has `*`, `?` or `[...]`, matched against names.

/// A name filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pattern: Vec<char>,
    glob: bool,
}

impl Filter {
    /// The filter `pattern`: a glob (`*` any text, `?` one character, `[abc]` / `[a-z]` /
    /// `[!a]` one of a set) matched against a whole name, else a substring of it.
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.chars().collect(),
            glob: pattern.contains(['*', '?', '[']),
        }
    }

    /// Whether `name` passes.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        if self.glob {
            glob(&self.pattern, &name)
        } else {
            self.pattern.is_empty() || name.windows(self.pattern.len()).any(|w| w == self.pattern)
        }
    }
}

/// Whether `name` matches the glob `pattern`, backtracking on the last `*` only (linear in
/// practice, never exponential).
fn glob(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => set(&pattern[p..], name[n]),
            Some(c) if *c == name[n] => Some(1),
            _ => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((star_p, star_n))) => {
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|c| *c == '*')
}

/// If `pattern` starts with a set (`[...]`) containing `c`, the set's length; `None` when `c`
/// is not in it. A `[` without its `]` is a literal `[`.
fn set(pattern: &[char], c: char) -> Option<usize> {
    let Some(end) = pattern
        .iter()
        .skip(2)
        .position(|x| *x == ']')
        .map(|i| i + 2)
    else {
        return (c == '[').then_some(1);
    };
    let (negated, items) = match &pattern[1..end] {
        ['!' | '^', rest @ ..] => (true, rest),
        items => (false, items),
    };
    let mut found = false;
    let mut i = 0;
    while i < items.len() {
        if i + 2 < items.len() && items[i + 1] == '-' {
            found |= (items[i]..=items[i + 2]).contains(&c);
            i += 3;
        } else {
            found |= items[i] == c;
            i += 1;
        }
    }
    (found != negated).then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::Filter;

    #[test]
    fn plain_text_is_a_substring_and_globs_match_whole_names() {
        let substring = Filter::new("timeout");
        assert!(substring.matches("captcluster/vpc-timeout.yaml"));
        assert!(!substring.matches("captcluster/ready.yaml"));
        let glob = Filter::new("captcluster/*time?ut*.yaml");
        assert!(glob.matches("captcluster/vpc-timeout.yaml"));
        assert!(!glob.matches("controlplane/vpc-timeout.yaml"));
        assert!(!Filter::new("*.yml").matches("a.yaml"));
        assert!(Filter::new("[a-c]*").matches("beta"));
        assert!(!Filter::new("[!a-c]*").matches("beta"));
        assert!(
            Filter::new("a[").matches("a["),
            "an unclosed set is literal"
        );
        assert!(Filter::new("*a*a*a*a*b").matches(&"ab".repeat(20)));
        assert!(!Filter::new("*a*a*a*a*c").matches(&"a".repeat(200)));
    }
}
