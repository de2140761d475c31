//! `COPY --chmod`: an octal mode, or chmod(1)'s symbolic clauses
//! (`u=rwx,go=rx`, `a+X`), which today's BuildKit accepts too and applies to
//! each file's own mode.

use crate::error::StepFailure;

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// The permission bits to set (BuildKit takes the number as a Go
    /// `os.FileMode`, whose setuid/setgid/sticky bits are not 04000, 02000
    /// and 01000, so only 0777 of it reaches `chmod`).
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The `ugo` bits the clause touches (0o7777-style masks).
    who: u32,
    actions: Vec<(char, Perm)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    Bits {
        bits: u32,
        cond_x: bool,
    },
    /// `u`, `g` or `o` on the right: copy that class's current bits.
    Copy(char),
}

impl Chmod {
    pub fn parse(s: &str) -> Result<Chmod, StepFailure> {
        let invalid = || {
            StepFailure(format!(
                "invalid chmod parameter: '{s}'. it should be octal string and between 0 and 07777"
            ))
        };
        if s.chars().all(|c| c.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(|m| Chmod::Octal(m & 0o777))
                .ok_or_else(invalid);
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0;
            while let Some(&c) = chars.peek() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => break,
                };
                chars.next();
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut actions = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(invalid());
                }
                let mut bits = 0;
                let mut cond_x = false;
                let mut copy = None;
                while let Some(&c) = chars.peek() {
                    match c {
                        'r' => bits |= 0o444,
                        'w' => bits |= 0o222,
                        'x' => bits |= 0o111,
                        'X' => cond_x = true,
                        's' => bits |= 0o6000,
                        't' => bits |= 0o1000,
                        'u' | 'g' | 'o' if bits == 0 && !cond_x && copy.is_none() => copy = Some(c),
                        _ => break,
                    }
                    chars.next();
                }
                let perm = match copy {
                    Some(c) => Perm::Copy(c),
                    None => Perm::Bits { bits, cond_x },
                };
                actions.push((op, perm));
            }
            if actions.is_empty() {
                return Err(invalid());
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode a file (or folder) of mode `mode` gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for c in clauses {
                    for (op, perm) in &c.actions {
                        let bits = match perm {
                            Perm::Bits { bits, cond_x } => {
                                let x = if *cond_x && (is_dir || m & 0o111 != 0) {
                                    0o111
                                } else {
                                    0
                                };
                                bits | x
                            }
                            Perm::Copy(class) => {
                                let v = match class {
                                    'u' => (m >> 6) & 7,
                                    'g' => (m >> 3) & 7,
                                    _ => m & 7,
                                };
                                v * 0o111
                            }
                        } & c.who;
                        m = match op {
                            '+' => m | bits,
                            '-' => m & !bits,
                            _ => (m & !(c.who & 0o777)) | bits,
                        };
                    }
                }
                m
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(Chmod::parse("755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("4755").unwrap().apply(0o600, false), 0o755);
        assert!(Chmod::parse("17777").is_err());
        assert!(Chmod::parse("64a")
            .unwrap_err()
            .0
            .contains("invalid chmod parameter: '64a'"));
        let s = Chmod::parse("u=rwx,go=rx").unwrap();
        assert_eq!(s.apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("g+w").unwrap().apply(0o644, false), 0o664);
        assert_eq!(Chmod::parse("a-w").unwrap().apply(0o664, false), 0o444);
        assert_eq!(Chmod::parse("+x").unwrap().apply(0o644, false), 0o755);
        let cx = Chmod::parse("a+X").unwrap();
        assert_eq!(cx.apply(0o644, false), 0o644);
        assert_eq!(cx.apply(0o644, true), 0o755);
        assert_eq!(cx.apply(0o744, false), 0o755);
        assert_eq!(Chmod::parse("go=u").unwrap().apply(0o700, false), 0o777);
        assert!(Chmod::parse("z+x").is_err());
    }
}
