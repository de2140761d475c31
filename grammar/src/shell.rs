//! Variable expansion and word splitting with docker's rules.
//!
//! This is BuildKit's shell-like lexer, not a POSIX shell: it removes quotes,
//! applies the escape character and expands `$VAR`, `${VAR}` and the `${VAR…}`
//! operators (`:-`, `-`, `:+`, `+`, `:?`, `?`, `#`, `##`, `%`, `%%`, `/`, `//`).
//! Nothing is executed and there is no globbing. The conformance tables in
//! `shared/conformance/buildkit/shell` pin its behaviour down.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where the lexer looks variables up. Implemented for the usual maps and for
/// ordered `(name, value)` lists (later entries win, as with ENV).
pub trait Vars {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Vars for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Vars for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Vars for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Vars for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// Why an expansion failed. The message is the one BuildKit gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process \"{input}\": {reason}")]
pub struct ExpandError {
    pub input: String,
    pub reason: String,
}

/// The outcome of one expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The whole input expanded as one string (quotes removed, no splitting).
    pub result: String,
    /// The input expanded and split into words, as the instructions that split do.
    pub words: Vec<String>,
    /// Variables that were looked up and found.
    pub matched: BTreeSet<String>,
    /// Variables that were looked up and not found.
    pub unmatched: BTreeSet<String>,
}

/// The lexer's options. `ShellLex::new(escape)` gives docker's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLex {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
    /// Treat quotes as ordinary characters.
    pub skip_quotes: bool,
}

impl ShellLex {
    pub fn new(escape: char) -> Self {
        ShellLex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            skip_quotes: false,
        }
    }

    /// Expands `input` to a single string.
    pub fn process_word(&self, input: &str, vars: &dyn Vars) -> Result<String, ExpandError> {
        self.expand(input, vars).map(|e| e.result)
    }

    /// Expands `input` and splits the result into words.
    pub fn process_words(&self, input: &str, vars: &dyn Vars) -> Result<Vec<String>, ExpandError> {
        self.expand(input, vars).map(|e| e.words)
    }

    /// Expands `input`, reporting the words and which variables were used.
    pub fn expand(&self, input: &str, vars: &dyn Vars) -> Result<Expansion, ExpandError> {
        let mut lexer = Lexer {
            opts: *self,
            chars: input.chars().collect(),
            pos: 0,
            vars,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let raw = lexer.raw_escapes;
        match lexer.process_until(None, raw) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: lexer.matched,
                unmatched: lexer.unmatched,
            }),
            Err(reason) => Err(ExpandError {
                input: input.to_string(),
                reason,
            }),
        }
    }
}

struct Lexer<'a> {
    opts: ShellLex,
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Accumulates words: text from expansions splits on whitespace, quoted text
/// does not, and adjacent pieces glue together.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

type LexResult<T> = Result<T, String>;

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> LexResult<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.process_until_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> LexResult<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            if ch == '$' {
                let value = self.process_dollar()?;
                result.push_str(&value);
                words.add_str(&value);
            } else if !self.opts.skip_quotes && (ch == '\'' || ch == '"') {
                let value = if ch == '\'' {
                    self.process_single_quote()?
                } else {
                    self.process_double_quote()?
                };
                result.push_str(&value);
                words.add_raw_str(&value);
            } else {
                self.next();
                if ch == self.opts.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    // An escape at the very end escapes nothing and is dropped.
                    let Some(escaped) = self.next() else { break };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                } else {
                    words.add_char(ch);
                    result.push(ch);
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn process_single_quote(&mut self) -> LexResult<String> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> LexResult<String> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.next();
                    if ch == self.opts.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            // Inside double quotes the escape only escapes these;
                            // before anything else it is kept literally.
                            Some(c) if c == '"' || c == '$' || c == self.opts.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_var(&mut self, name: &str) -> Option<String> {
        match self.vars.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> LexResult<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_var(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let op = self.next();
        match op {
            Some('}') => Ok(match self.get_var(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut op_text = String::new();
                op_text.extend(op);
                let mut null_is_unset = false;
                let mut op = op;
                if op == Some(':') {
                    null_is_unset = true;
                    op = self.next();
                    op_text.extend(op);
                }
                let raw = matches!(op, Some('#' | '%'));
                let word = match self.process_until(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '}'".into()
                        } else {
                            e
                        })
                    }
                };
                let value = self.get_var(&name);
                if self.opts.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{op_text}{word}}}"));
                }
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match op {
                    Some('-') => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if empty { String::new() } else { word }),
                    Some('?') => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    Some(c @ ('#' | '%')) if !null_is_unset => {
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let value = value.unwrap_or_default();
                        let pattern = Pattern::parse(pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        Ok(if c == '#' {
                            pattern.trim_prefix(&value, greedy)
                        } else {
                            pattern.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({op_text}) in substitution")),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_until(Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '/' in ${}".into()
                        } else {
                            e
                        })
                    }
                };
                let replacement = match self.process_until(Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            "syntax error: missing '}'".into()
                        } else {
                            e
                        })
                    }
                };
                let value = self.get_var(&name);
                let Some(value) = value else {
                    if self.opts.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let compiled = Pattern::parse(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(compiled.replace(&value, &replacement, replace_all))
            }
            other => {
                let shown: String = other.into_iter().collect();
                Err(format!("unsupported modifier ({shown}) in substitution"))
            }
        }
    }

    /// A name is letters, digits and `_`; all leading digits form a positional
    /// parameter; a special parameter is one character.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

/// A shell pattern of `${VAR#pat}` and friends: `*`, `?` and literal characters
/// (`\*`, `\?`, `\\` are literals). Like Go's regexp, wildcards never match a
/// newline.
#[derive(Debug, Clone)]
struct Pattern(Vec<Tok>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Star,
    One,
    Lit(char),
}

impl Pattern {
    fn parse(src: &str) -> Result<Pattern, String> {
        let mut toks = Vec::new();
        let mut it = src.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '\\' => {
                    // `\}` and `\/` only protect the character from the `${}` syntax.
                    if matches!(it.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match it.next() {
                        Some(e @ ('*' | '?' | '\\')) => toks.push(Tok::Lit(e)),
                        Some(e) => return Err(format!("invalid escape '\\{e}'")),
                        None => return Err("invalid escape '\\'".into()),
                    }
                }
                other => toks.push(Tok::Lit(other)),
            }
        }
        Ok(Pattern(toks))
    }

    fn reversed(&self) -> Pattern {
        Pattern(self.0.iter().rev().copied().collect())
    }

    /// The end of the match of the pattern anchored at `text[0]`, preferring
    /// long (greedy) or short stars, as a backtracking regex engine would.
    fn match_at(toks: &[Tok], text: &[char], greedy: bool) -> Option<usize> {
        match toks.split_first() {
            None => Some(0),
            Some((Tok::Lit(c), rest)) => (text.first() == Some(c))
                .then(|| Self::match_at(rest, &text[1..], greedy).map(|n| n + 1))
                .flatten(),
            Some((Tok::One, rest)) => match text.first() {
                Some(c) if *c != '\n' => Self::match_at(rest, &text[1..], greedy).map(|n| n + 1),
                _ => None,
            },
            Some((Tok::Star, rest)) => {
                let max = text.iter().position(|c| *c == '\n').unwrap_or(text.len());
                let try_len = |k: usize| Self::match_at(rest, &text[k..], greedy).map(|n| n + k);
                if greedy {
                    (0..=max).rev().find_map(try_len)
                } else {
                    (0..=max).find_map(try_len)
                }
            }
        }
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        match Self::match_at(&self.0, &chars, greedy) {
            Some(end) => chars[end..].iter().collect(),
            None => value.to_string(),
        }
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let rev: String = value.chars().rev().collect();
        self.reversed()
            .trim_prefix(&rev, greedy)
            .chars()
            .rev()
            .collect()
    }

    fn find(&self, text: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=text.len()).find_map(|start| {
            Self::match_at(&self.0, &text[start..], true).map(|n| (start, start + n))
        })
    }

    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        while let Some((start, end)) = self.find(&chars, pos) {
            out.extend(&chars[pos..start]);
            out.push_str(replacement);
            if end == start {
                // An empty match replaces once and steps over one character.
                if start < chars.len() {
                    out.push(chars[start]);
                }
                pos = start + 1;
            } else {
                pos = end;
            }
            if !all || pos > chars.len() {
                break;
            }
        }
        if pos <= chars.len() {
            out.extend(&chars[pos..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_and_splits() {
        let lex = ShellLex::new('\\');
        let vars = env(&[("A", "x y"), ("E", "")]);
        assert_eq!(lex.process_word("$A-${A}", &vars).unwrap(), "x y-x y");
        assert_eq!(
            lex.process_words("pre$A \"q $A\"", &vars).unwrap(),
            vec!["prex", "y", "q x y"]
        );
        assert_eq!(lex.process_word("${E:-d} ${E-d}", &vars).unwrap(), "d ");
    }

    #[test]
    fn backtick_escape() {
        let lex = ShellLex::new('`');
        let vars = env(&[]);
        assert_eq!(
            lex.process_word(r"C:\dir `$X", &vars).unwrap(),
            r"C:\dir $X"
        );
    }

    #[test]
    fn patterns() {
        let lex = ShellLex::new('\\');
        let vars = env(&[("P", "a/b/c.tar.gz")]);
        assert_eq!(lex.process_word("${P#*/}", &vars).unwrap(), "b/c.tar.gz");
        assert_eq!(lex.process_word("${P##*/}", &vars).unwrap(), "c.tar.gz");
        assert_eq!(lex.process_word("${P%.*}", &vars).unwrap(), "a/b/c.tar");
        assert_eq!(lex.process_word("${P%%.*}", &vars).unwrap(), "a/b/c");
        assert_eq!(
            lex.process_word("${P/\\//-}", &vars).unwrap(),
            "a-b/c.tar.gz"
        );
        assert_eq!(
            lex.process_word("${P//\\//-}", &vars).unwrap(),
            "a-b-c.tar.gz"
        );
    }

    #[test]
    fn error_names_the_input() {
        let lex = ShellLex::new('\\');
        let err = lex.process_word("${X:?need X}", &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to process \"${X:?need X}\": X: need X"
        );
    }
}
