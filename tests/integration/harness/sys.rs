//! The two libc calls std has no safe equivalent for.

// Each unsafe block is one libc call with checked arguments.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use libc::{SIGCONT, SIGKILL, SIGSTOP, SIGTERM};

/// Sends `sig` to one PID. Errors (already gone) are ignored.
pub fn signal(pid: u32, sig: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if pid > 0 {
        // SAFETY: a plain system call; pid > 0 addresses exactly one process.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Bytes available to us on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is NUL-terminated; st is only read after success.
    let st = unsafe {
        if libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
