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

    /// Whether `name` matches. Globs work on characters (`?` is one character, however many
    /// bytes it takes in UTF-8); `*` and `?` in a glob are always wildcards, and match those
    /// characters in names like any other.
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
            Pattern::Glob(g) => {
                let p: Vec<char> = g.chars().collect();
                let s: Vec<char> = name.chars().collect();
                glob(&p, &s)
            }
        }
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Exact(s) | Pattern::Glob(s) => s,
        }
    }
}

/// Iterative glob match over characters with backtracking to the last `*` (`O(len(p) *
/// len(s))` at worst). A `*` in the pattern is a wildcard even where the name holds a `*`.
fn glob(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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

    /// `?` is one character, not one byte; a `*` in the name does not stop the pattern's `*`
    /// from matching more.
    #[test]
    fn globs_on_characters_and_literal_stars() {
        let m = |p: &str, s: &str| Pattern::parse(p).matches(s);
        assert!(m("?", "é"));
        assert!(m("l?.w", "lé.w"));
        assert!(m("??", "日本"));
        assert!(!m("?", "日本"));
        assert!(m("a*", "a*b"));
        assert!(m("a*b", "a*b"));
        assert!(m("*.*", "x.*.y"));
        assert!(m("a?c", "a*c"));
        assert!(m("*é*", "xxéyy"));
        assert!(!m("a*", "b*a"));
        // Worst-case backtracking stays fast.
        let name = "a".repeat(2000);
        assert!(!m(&("*a".repeat(50) + "b"), &name));
    }
}
