//! Identification of the llama.cpp build, recorded with every generation so a replay can be
//! run on a matching build (float results depend on the ggml version and the CPU code paths).

use std::ffi::{CStr, c_char};

/// Version of the `llama-cpp-2` bindings this crate is built against (kept in step with the
/// workspace pin; a unit test checks it against Cargo.lock).
pub const LLAMA_CPP_2_VERSION: &str = "0.1.160";

fn c_str(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return "unknown".to_owned();
    }
    // SAFETY: non-null pointers returned by the ggml/llama info functions point to
    // NUL-terminated strings with static storage (string literals or static buffers).
    #[allow(unsafe_code)]
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_string_lossy().trim().to_owned()
}

/// `"llama-cpp-2 0.1.160; ggml 0.x.y (commit …); cuda=off; CPU : SSE3 = 1 | AVX = 1 | …"`.
///
/// Call after the backend is initialized (the system info lists the registered backends).
pub(crate) fn llama_build() -> String {
    // SAFETY: these functions take no arguments, have no preconditions beyond a loaded
    // library, and return pointers to static strings (see `c_str`).
    #[allow(unsafe_code)]
    let (version, commit, system) = unsafe {
        (
            llama_cpp_sys_2::ggml_version(),
            llama_cpp_sys_2::ggml_commit(),
            llama_cpp_sys_2::llama_print_system_info(),
        )
    };
    let cuda = if cfg!(feature = "cuda") { "on" } else { "off" };
    format!(
        "llama-cpp-2 {LLAMA_CPP_2_VERSION}; ggml {} (commit {}); cuda={cuda}; {}",
        c_str(version),
        c_str(commit),
        c_str(system)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_constant_matches_lockfile() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("workspace Cargo.lock");
        let entry = format!(
            "name = \"llama-cpp-2\"\nversion = \"{}\"",
            super::LLAMA_CPP_2_VERSION
        );
        assert!(
            lock.contains(&entry),
            "update LLAMA_CPP_2_VERSION to the locked llama-cpp-2"
        );
    }
}
