//! Layer-name patterns: exact names and globs.

/// A layer-name pattern: an exact name, or a glob with `*` (any run) and `?` (one character).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Matches this name only.
    Exact(String),
    /// A glob.
    Glob(String),
}

impl Pattern {
    /// A glob when the text holds `*` or `?`, else an exact name.
    pub fn parse(text: &str) -> Pattern {
        if text.contains(['*', '?']) {
            Pattern::Glob(text.to_string())
        } else {
            Pattern::Exact(text.to_string())
        }
    }

    /// Whether `name` matches.
    ///
    /// ```
    /// use lowbit::scheme::ptq::Pattern;
    /// assert!(Pattern::parse("encoder.layer.*.attention.*").matches("encoder.layer.3.attention.self.query"));
    /// assert!(!Pattern::parse("encoder.layer.?.output").matches("encoder.layer.10.output"));
    /// assert!(Pattern::parse("pooler").matches("pooler"));
    /// ```
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(e) => e == name,
            Pattern::Glob(g) => glob(g.as_bytes(), name.as_bytes()),
        }
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Exact(s) | Pattern::Glob(s) => s,
        }
    }
}

/// Iterative glob match with backtracking to the last `*` (linear in practice).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| Pattern::parse(p).matches(s);
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*.weight", "encoder.layer.0.attention.self.query.weight"));
        assert!(!m("*.weight", "x.bias"));
        assert!(m("l?.w", "l1.w"));
        assert!(!m("l?.w", "l12.w"));
        assert!(m("**x", "abx"));
    }
}
