//! Exec instances: `POST /containers/{id}/exec`, `/exec/{id}/start` and
//! `/exec/{id}/json`.

use serde::{Deserialize, Serialize};

/// The body of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreate {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: Option<String>,
    pub tty: bool,
    /// Rows and columns.
    pub console_size: Option<[u16; 2]>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: Option<String>,
    pub working_dir: Option<String>,
}

/// The body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStart {
    pub detach: bool,
    pub tty: bool,
    pub console_size: Option<[u16; 2]>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecProcessConfig {
    pub arguments: Vec<String>,
    pub entrypoint: String,
    pub privileged: bool,
    pub tty: bool,
    pub user: String,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    pub exit_code: Option<i32>,
    #[serde(rename = "ID")]
    pub id: String,
    pub open_stderr: bool,
    pub open_stdin: bool,
    pub open_stdout: bool,
    pub process_config: ExecProcessConfig,
    pub running: bool,
    pub pid: i32,
}
