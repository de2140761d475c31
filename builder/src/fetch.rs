//! ADD of an http(s) URL: the file is downloaded (never unpacked), checked
//! against `--checksum=sha256:...` when given, stored with mode 0600 and the
//! server's `Last-Modified` time, as docker does.

use crate::error::StepFailure;
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A downloaded file.
pub struct Download {
    pub path: PathBuf,
    /// `sha256:<hex>` of the content.
    pub digest: String,
}

/// The file name a URL stands for: its path's last segment.
pub fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(no_query);
    let path = path.split_once('/').map(|(_, p)| p).unwrap_or("");
    match path.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => "index.html".to_string(),
    }
}

/// Checks a `--checksum` value's form: `sha256:` and 64 hex digits.
pub fn parse_checksum(c: &str) -> Result<String, StepFailure> {
    match c.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
        }
        _ => Err(StepFailure(format!(
            "invalid checksum {c:?}: expected sha256:<64 hex digits>"
        ))),
    }
}

fn http_date(s: &str) -> Option<SystemTime> {
    // RFC 7231 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(s.trim(), &f).ok()?;
    let unix = t.assume_utc().unix_timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).ok()?))
}

/// Downloads `url` into `dir`, verifying `checksum` when given.
pub fn download(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Download, StepFailure> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        .http_status_as_error(false)
        .build();
    let agent: ureq::Agent = config.into();
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| StepFailure(format!("failed to load {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(StepFailure(format!(
            "failed to load {url}: invalid response status {}",
            status.as_u16()
        )));
    }
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(http_date);
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("download-{}", crate::run::scratch_name("url")));
    let mut file = std::fs::File::create(&path)?;
    let mut hasher = Sha256::new();
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| StepFailure(format!("failed to download {url}: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(want) = checksum {
        if want != digest {
            let _ = std::fs::remove_file(&path);
            return Err(StepFailure(format!(
                "digest mismatch for {url}: expected {want}, got {digest}"
            )));
        }
    }
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    if let Some(t) = modified {
        file.set_modified(t)?;
    }
    Ok(Download { path, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(
            url_file_name("https://example.com/a/b/tool.tar.gz?x=1"),
            "tool.tar.gz"
        );
        assert_eq!(url_file_name("http://example.com/"), "index.html");
        assert_eq!(url_file_name("http://example.com"), "index.html");
        let t = http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            784111777
        );
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum(&format!("sha256:{}", "A".repeat(64))).is_ok());
    }
}
