//! Paths as compose resolves them: joined and cleaned by their text (Go's
//! `filepath.Join`), so a project directory given relatively keeps the
//! paths under it relative.

use serde_json::Value;
use std::path::{Component, Path, PathBuf};

/// `path` with `.` dropped and `..` folded into its parent, by the text.
pub fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// `rel` under `base`, unless it is absolute already.
pub fn join(base: &Path, rel: &str) -> PathBuf {
    if let Some(home) = rel.strip_prefix("~/") {
        if let Some(h) = std::env::var_os("HOME") {
            return clean(&Path::new(&h).join(home));
        }
    }
    clean(&base.join(rel))
}

/// The directory a file sits in (`.` for a bare name).
pub fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether a build context is a remote one (left as written).
fn is_remote(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/")
}

fn text(p: PathBuf) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// The relative paths a service names, made relative to `base` instead:
/// its build context, bind sources, `env_file`s, and its file-based
/// secrets and configs when `top` is a whole model.
pub fn rebase_service(service: &mut Value, base: &Path) {
    let Some(s) = service.as_object_mut() else {
        return;
    };
    match s.get_mut("build") {
        Some(Value::String(c)) if !is_remote(c) => {
            let p = join(base, c);
            s.insert("build".into(), text(p));
        }
        Some(Value::Object(b)) => {
            if let Some(Value::String(c)) = b.get("context") {
                if !is_remote(c) {
                    let p = join(base, c);
                    b.insert("context".into(), text(p));
                }
            }
        }
        _ => {}
    }
    if let Some(v) = s.get_mut("env_file") {
        match v {
            Value::String(f) => *v = text(join(base, f)),
            Value::Array(items) => {
                for i in items {
                    match i {
                        Value::String(f) => *i = text(join(base, f)),
                        Value::Object(m) => {
                            if let Some(Value::String(f)) = m.get("path") {
                                let p = join(base, f);
                                m.insert("path".into(), text(p));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Array(volumes)) = s.get_mut("volumes") {
        for v in volumes {
            match v {
                Value::String(spec) => {
                    if let Some((src, rest)) = spec.split_once(':') {
                        if src.starts_with('.') || src.starts_with('~') {
                            // Still a path, not a volume name, when it stays relative.
                            let p = join(base, src);
                            let p = if p.is_relative() && !p.starts_with(".") {
                                Path::new(".").join(p)
                            } else {
                                p
                            };
                            *v = Value::String(format!("{}:{rest}", p.display()));
                        }
                    }
                }
                Value::Object(m) if m.get("type") == Some(&Value::String("bind".into())) => {
                    if let Some(Value::String(src)) = m.get("source") {
                        let p = join(base, src);
                        m.insert("source".into(), text(p));
                    }
                }
                _ => {}
            }
        }
    }
}

/// File-based secrets and configs of a whole model, under `base`.
pub fn rebase_files(model: &mut Value, base: &Path) {
    for key in ["secrets", "configs"] {
        if let Some(Value::Object(items)) = model.get_mut(key) {
            for item in items.values_mut() {
                if let Some(Value::String(f)) = item.get("file") {
                    let p = join(base, f);
                    item["file"] = text(p);
                }
            }
        }
    }
}
