//! "Did you mean ...?" for misspelt instructions and flags.

/// The candidate closest to `word` (case-insensitive), if it is close enough
/// to be a likely typo.
pub(crate) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = match lower.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn finds_typos() {
        let kws = ["FROM", "RUN", "ENTRYPOINT", "COPY"];
        assert_eq!(nearest("FROMM", &kws), Some("FROM"));
        assert_eq!(nearest("entrypiont", &kws), Some("ENTRYPOINT"));
        assert_eq!(nearest("XYZZY", &kws), None);
    }
}
