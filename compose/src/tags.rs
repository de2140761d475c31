//! compose's `!reset` and `!override` tags. A file's tagged values are
//! taken out of its tree ([`Tags::take`]), then the paths they were at are
//! removed from what the file is merged over ([`Tags::clear`]): a reset
//! value leaves nothing, an overriding one is merged over nothing, which
//! is to say it replaces.

use crate::yaml::{OVERRIDE, RESET};
use serde_json::Value;

/// The paths a file tagged, each a list of mapping keys (or item indexes).
#[derive(Debug, Default, Clone)]
pub struct Tags {
    paths: Vec<Vec<String>>,
}

enum Mark {
    Reset,
    Override(Value),
}

fn mark(v: &mut Value) -> Option<Mark> {
    let Value::Object(m) = v else { return None };
    if m.len() != 1 {
        return None;
    }
    if let Some(inner) = m.get_mut(OVERRIDE) {
        return Some(Mark::Override(std::mem::take(inner)));
    }
    m.contains_key(RESET).then_some(Mark::Reset)
}

impl Tags {
    /// Takes the tags out of `tree`: reset values are removed, overriding
    /// ones unwrapped.
    pub fn take(tree: &mut Value) -> Tags {
        let mut tags = Tags::default();
        if let Some(m) = mark(tree) {
            *tree = match m {
                Mark::Reset => Value::Null,
                Mark::Override(v) => v,
            };
        }
        take_at(tree, &mut Vec::new(), &mut tags);
        tags
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Removes the tagged paths from `base`.
    pub fn clear(&self, base: &mut Value) {
        for p in &self.paths {
            remove(base, p);
        }
    }
}

fn take_at(v: &mut Value, path: &mut Vec<String>, tags: &mut Tags) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let Some(child) = m.get_mut(&k) else { continue };
                path.push(k.clone());
                match mark(child) {
                    Some(Mark::Reset) => {
                        tags.paths.push(path.clone());
                        m.shift_remove(&k);
                    }
                    Some(Mark::Override(inner)) => {
                        tags.paths.push(path.clone());
                        *child = inner;
                        take_at(child, path, tags);
                    }
                    None => take_at(child, path, tags),
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let mut i = 0;
            let mut index = 0;
            while i < items.len() {
                path.push(index.to_string());
                match mark(&mut items[i]) {
                    Some(Mark::Reset) => {
                        items.remove(i);
                    }
                    Some(Mark::Override(inner)) => {
                        items[i] = inner;
                        take_at(&mut items[i], path, tags);
                        i += 1;
                    }
                    None => {
                        take_at(&mut items[i], path, tags);
                        i += 1;
                    }
                }
                index += 1;
                path.pop();
            }
        }
        _ => {}
    }
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = v;
    for p in parents {
        at = match at {
            Value::Object(m) => match m.get_mut(p) {
                Some(c) => c,
                None => return,
            },
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(c) => c,
                None => return,
            },
            _ => return,
        };
    }
    match at {
        Value::Object(m) => {
            m.shift_remove(last);
        }
        Value::Array(a) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}
