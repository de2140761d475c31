//! The variables instructions are expanded with: ARGs in scope and ENV,
//! ENV winning over an ARG of the same name, as docker does.

use berth_grammar::shell::{ExpandError, ShellLex};
/// Variables in the order they were first set (BuildKit lists build args
/// in declaration order); setting one again changes its value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    entries: Vec<(String, String)>,
}

impl Vars {
    pub fn set(&mut self, k: &str, v: &str) {
        match self.entries.iter_mut().find(|(name, _)| name == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.entries.push((k.to_string(), v.to_string())),
        }
    }

    pub fn unset(&mut self, k: &str) {
        self.entries.retain(|(name, _)| name != k);
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Variables from `KEY=VALUE` lines (an image's Env).
    pub fn from_env(env: &[String]) -> Vars {
        let mut v = Vars::default();
        for e in env {
            match e.split_once('=') {
                Some((k, val)) => v.set(k, val),
                None => v.set(e, ""),
            }
        }
        v
    }

    /// `self` overlaid with `over` (entries of `over` win).
    pub fn overlaid(&self, over: &Vars) -> Vars {
        let mut out = self.clone();
        for (k, v) in over.iter() {
            out.set(k, v);
        }
        out
    }
}

impl berth_grammar::shell::Vars for Vars {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// Expands one word (quotes removed, no splitting).
pub fn expand_word(lex: &ShellLex, word: &str, vars: &Vars) -> Result<String, ExpandError> {
    lex.process_word(word, vars)
}

/// The proxy ARGs docker accepts without a declaration; they reach RUN steps
/// but never the image's history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The platform ARGs BuildKit defines for the native platform.
pub fn predefined_args() -> Vec<(String, String)> {
    let (os, arch, variant) = berth_store::image::host_platform();
    let platform = match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    let variant = variant.unwrap_or("").to_string();
    let mut out = Vec::new();
    for prefix in ["TARGET", "BUILD"] {
        out.push((format!("{prefix}PLATFORM"), platform.clone()));
        out.push((format!("{prefix}OS"), os.to_string()));
        out.push((format!("{prefix}ARCH"), arch.to_string()));
        out.push((format!("{prefix}VARIANT"), variant.clone()));
    }
    out
}

/// True for the ARGs that exist without a value from the user.
pub fn is_predefined(name: &str) -> bool {
    PROXY_ARGS.contains(&name) || predefined_args().iter().any(|(k, _)| k == name)
}
