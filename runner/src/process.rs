//! What a helper process that is forked, not executed, needs to be taken
//! for an executed one: a command line of its own in `/proc` (so `ps` and
//! whoever looks for it see what it is), the signal dispositions an exec
//! would have left, and the knowledge that this process may fork at all.

use std::ffi::OsStr;

/// Whether this process is one thread, besides the cgroup warm-up's
/// (which holds nothing a child could need). A child forked from a process
/// with other threads could find a lock one of them held taken forever.
pub fn single_threaded() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.count() <= 1 + crate::cgroup::warm_up_threads()
}

/// The command line `/proc/PID/cmdline` (and so `ps`) shows for a forked
/// helper: the one its exec'd twin has.
pub struct ProcessTitle {
    text: Vec<u8>,
}

impl ProcessTitle {
    /// `parts` joined by spaces.
    pub fn new<'a>(parts: impl IntoIterator<Item = &'a OsStr>) -> ProcessTitle {
        use std::os::unix::ffi::OsStrExt;
        let mut text = Vec::new();
        for p in parts {
            if !text.is_empty() {
                text.push(b' ');
            }
            text.extend_from_slice(p.as_bytes());
        }
        ProcessTitle { text }
    }

    /// setproctitle's way: the new text over the argument strings and,
    /// past them, over the environment's, which move to the heap first.
    /// The kernel reads a command line whose last argument byte is not
    /// zero as one string up to its first zero byte. Call it while this
    /// process is one thread: nothing may read the environment meanwhile.
    pub fn apply(self) {
        let Some([arg_start, arg_end, env_start, env_end]) = memory_areas() else {
            return;
        };
        let end = if env_start == arg_end {
            env_end
        } else {
            arg_end
        };
        let room = end.saturating_sub(arg_start);
        if room < 2 {
            return;
        }
        extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        // SAFETY: one thread; the environment's strings are copied before
        // their bytes are written over, and both areas are this process's.
        unsafe {
            let mut copies: Vec<*mut libc::c_char> = Vec::new();
            let mut p = environ;
            while !p.is_null() && !(*p).is_null() {
                copies.push(libc::strdup(*p));
                p = p.add(1);
            }
            copies.push(std::ptr::null_mut());
            environ = copies.leak().as_mut_ptr();
            let n = self.text.len().min(room - 1);
            let area = std::slice::from_raw_parts_mut(arg_start as *mut u8, room);
            area.fill(0);
            area[..n].copy_from_slice(&self.text[..n]);
        }
    }
}

/// This process's argument and environment areas (`/proc/self/stat`'s
/// fields 48 to 51).
fn memory_areas() -> Option<[usize; 4]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<usize>().ok();
    Some([field(48)?, field(49)?, field(50)?, field(51)?])
}

/// The signal state an exec leaves to a new program, as std's spawn gives
/// it: every handled signal back to its default, SIGPIPE too (std ignores
/// it), the others still ignored, none blocked.
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in Signal::iterator() {
        if matches!(s, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installs the default disposition; no handler runs.
        unsafe {
            if let Ok(old) = sigaction(s, &default) {
                if old.handler() == SigHandler::SigIgn && s != Signal::SIGPIPE {
                    let _ = sigaction(s, &old);
                }
            }
        }
    }
    let _ = SigSet::empty().thread_set_mask();
}
