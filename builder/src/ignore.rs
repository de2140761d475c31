//! `.dockerignore` with docker's rules (moby's patternmatcher and ignorefile).
//!
//! Each pattern becomes a regular expression the way patternmatcher builds
//! it (`*` and `?` stop at `/`, `**` spans any number of segments, regex
//! metacharacters that `filepath.Match` does not know are literal), after the
//! syntax check Go's `filepath.Match` would make. A path is excluded when it
//! or one of its parent directories matches; later patterns override earlier
//! ones and `!` patterns re-include. The conformance table in
//! `shared/conformance/dockerignore-cases.tsv` pins this down.

use regex::Regex;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {why}")]
pub struct IgnoreError {
    pub pattern: String,
    pub why: String,
}

#[derive(Debug)]
struct Pattern {
    text: String,
    exclusion: bool,
    regex: OnceLock<Result<Regex, String>>,
}

/// A compiled list of patterns.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn bad(pattern: &str, why: &str) -> IgnoreError {
    IgnoreError {
        pattern: pattern.to_string(),
        why: why.to_string(),
    }
}

/// One class element of a `[...]`, as Go's `getEsc` reads it.
fn class_char(chars: &[char], i: &mut usize) -> Result<(), ()> {
    match chars.get(*i) {
        None | Some('-') | Some(']') => return Err(()),
        Some('\\') => {
            *i += 1;
            if *i >= chars.len() {
                return Err(());
            }
        }
        _ => {}
    }
    *i += 1;
    // Go refuses a class that ends right after an element.
    if *i >= chars.len() {
        return Err(());
    }
    Ok(())
}

/// The syntax check of Go's `filepath.Match`: bad classes and a trailing `\`.
fn check_syntax(p: &str) -> Result<(), IgnoreError> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(bad(p, "trailing backslash"));
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut n = 0;
                loop {
                    if chars.get(i) == Some(&']') && n > 0 {
                        i += 1;
                        break;
                    }
                    class_char(&chars, &mut i).map_err(|()| bad(p, "syntax error in pattern"))?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&chars, &mut i)
                            .map_err(|()| bad(p, "syntax error in pattern"))?;
                    }
                    n += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// patternmatcher's translation of a cleaned pattern to a regex.
fn to_regex(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => {
                re.push('\\');
                if let Some(n) = chars.get(i) {
                    re.push(*n);
                    i += 1;
                }
            }
            other => re.push(other),
        }
    }
    re.push('$');
    re
}

impl Pattern {
    fn matches(&self, path: &str) -> Result<bool, IgnoreError> {
        let compiled = self
            .regex
            .get_or_init(|| Regex::new(&to_regex(&self.text)).map_err(|e| e.to_string()));
        match compiled {
            Ok(r) => Ok(r.is_match(path)),
            Err(e) => Err(bad(&self.text, e)),
        }
    }
}

impl Ignore {
    /// Reads a `.dockerignore` file's text (moby's ignorefile rules).
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            // Only a `#` in the first column starts a comment.
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim();
            }
            let mut p = if p.is_empty() {
                String::new()
            } else {
                clean(p)
            };
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
            patterns.push(if invert { format!("!{p}") } else { p });
        }
        Ignore::new(&patterns)
    }

    /// Builds the matcher from patterns (trimmed, cleaned; `!` re-includes).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Ignore, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, text) = match p.strip_prefix('!') {
                Some("") => return Err(bad("!", "illegal exclusion pattern: \"!\"")),
                Some(rest) => (true, rest.to_string()),
                None => (false, p),
            };
            check_syntax(&text)?;
            out.push(Pattern {
                text,
                exclusion,
                regex: OnceLock::new(),
            });
        }
        Ok(Ignore { patterns: out })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when `path` or one of its parent directories is excluded.
    pub fn matches(&self, path: &str) -> Result<bool, IgnoreError> {
        if self.patterns.is_empty() {
            return Ok(false);
        }
        let path = clean(path);
        if path == "." {
            return Ok(false);
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // An exception only matters after a match; a match only before.
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&path)?;
            if !m {
                for i in 0..parents.len() {
                    if p.matches(&parents[..=i].join("/")).unwrap_or(false) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether something below the excluded directory `dir` may be included
    /// again by an exception, so a walker must look inside it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.text.starts_with("**")
                    || p.text.starts_with(&format!("{dir}/"))
                    || p.text.split('/').next().is_some_and(|first| {
                        first.contains(['*', '?', '[', '\\'])
                            || dir.split('/').next() == Some(first)
                    }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<String> {
        Ignore::parse(text)
            .unwrap()
            .patterns
            .iter()
            .map(|p| {
                if p.exclusion {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn the_file_reader_follows_moby() {
        assert_eq!(
            parsed("\u{feff}# comment\n  #not a comment\n/a/file/here\n! /inverted/abs/path\n\n docs/ \n"),
            vec!["#not a comment", "a/file/here", "!inverted/abs/path", "docs"]
        );
        assert!(Ignore::parse("!\n").is_err());
        assert!(Ignore::parse("! \n").is_err());
    }

    #[test]
    fn exceptions_and_parents() {
        let i = Ignore::parse("secret\n*.log\n!keep.log\n").unwrap();
        assert!(i.matches("secret/key").unwrap());
        assert!(i.matches("debug.log").unwrap());
        assert!(!i.matches("keep.log").unwrap());
        assert!(!i.matches("src/main.rs").unwrap());
        assert!(!i.may_include_below("logs"));
        assert!(Ignore::parse("logs\n!**/keep.log\n")
            .unwrap()
            .may_include_below("logs"));
        let j = Ignore::parse("node_modules\n").unwrap();
        assert!(!j.may_include_below("node_modules"));
        let k = Ignore::parse("build\n!build/keep\n").unwrap();
        assert!(k.may_include_below("build"));
        assert!(!k.may_include_below("other"));
    }

    #[test]
    fn bad_classes_are_refused_at_build_time() {
        for p in ["[", "[]a]", "[-]", "[x-]", "[a-b-c]", "a\\"] {
            assert!(Ignore::new(&[p]).is_err(), "{p}");
        }
        assert!(Ignore::new(&["[a-c]x", "[^a]", "\\*"]).is_ok());
    }
}
