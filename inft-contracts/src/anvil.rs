//! Locate and spawn Foundry's `anvil` (the npm package `@foundry-rs/anvil` ships a native binary).
//!
//! Lookup order for the binary:
//! 1. the `INFT_ANVIL` environment variable (a path to the binary);
//! 2. `node_modules/@foundry-rs/anvil-<platform>/bin/anvil` under a project root given by the
//!    caller, or under `<root>/inft-contracts/` if the root is the workspace;
//! 3. the same under this crate's own directory (`CARGO_MANIFEST_DIR`, where `npm ci` puts it);
//! 4. `anvil` on `PATH`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use alloy::node_bindings::{Anvil, AnvilInstance, NodeError};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;

/// Environment variable naming the anvil binary to use.
pub const ANVIL_ENV: &str = "INFT_ANVIL";

/// Why anvil could not be found or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnvilError {
    /// `INFT_ANVIL` names a file that does not exist.
    #[error("{ANVIL_ENV}={0} does not exist")]
    EnvPathMissing(PathBuf),
    /// No binary in any of the places searched.
    #[error(
        "anvil not found (searched {searched:?}); run `npm ci` in inft-contracts/ or set {ANVIL_ENV}"
    )]
    NotFound {
        /// The paths tried.
        searched: Vec<PathBuf>,
    },
    /// There is no npm anvil package for this platform.
    #[error("no @foundry-rs/anvil binary for {os}-{arch}")]
    UnsupportedPlatform {
        /// `std::env::consts::OS`
        os: &'static str,
        /// `std::env::consts::ARCH`
        arch: &'static str,
    },
    /// The process did not start or did not report its address.
    #[error("anvil failed to start: {0}")]
    Spawn(#[from] NodeError),
    /// anvil started but printed no dev account keys.
    #[error("anvil reported no dev accounts")]
    NoAccounts,
}

fn platform_dir() -> Result<&'static str, AnvilError> {
    use std::env::consts::{ARCH, OS};
    Ok(match (OS, ARCH) {
        ("linux", "x86_64") => "anvil-linux-amd64",
        ("linux", "aarch64") => "anvil-linux-arm64",
        ("macos", "x86_64") => "anvil-darwin-amd64",
        ("macos", "aarch64") => "anvil-darwin-arm64",
        ("windows", "x86_64") => "anvil-win32-amd64",
        (os, arch) => return Err(AnvilError::UnsupportedPlatform { os, arch }),
    })
}

fn npm_binary(dir: &Path) -> Result<PathBuf, AnvilError> {
    let exe = if cfg!(windows) { "anvil.exe" } else { "anvil" };
    Ok(dir
        .join("node_modules")
        .join("@foundry-rs")
        .join(platform_dir()?)
        .join("bin")
        .join(exe))
}

/// Find the anvil binary: `INFT_ANVIL`, then the npm package under `project_root` (the workspace
/// or `inft-contracts/`), then under this crate's directory, then `PATH`.
pub fn anvil_binary(project_root: Option<&Path>) -> Result<PathBuf, AnvilError> {
    if let Some(p) = std::env::var_os(ANVIL_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(AnvilError::EnvPathMissing(p))
        };
    }
    let mut searched = Vec::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(root) = project_root {
        roots.push(root.to_path_buf());
        roots.push(root.join("inft-contracts"));
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for root in roots {
        let candidate = npm_binary(&root)?;
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(candidate);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(if cfg!(windows) { "anvil.exe" } else { "anvil" });
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        searched.push(PathBuf::from("$PATH/anvil"));
    }
    Err(AnvilError::NotFound { searched })
}

/// A running anvil on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct DevChain {
    instance: AnvilInstance,
}

impl DevChain {
    /// The HTTP endpoint, e.g. `http://127.0.0.1:41235`.
    pub fn endpoint(&self) -> String {
        self.instance.endpoint()
    }

    /// The HTTP endpoint as a URL.
    pub fn endpoint_url(&self) -> alloy::transports::http::reqwest::Url {
        self.instance.endpoint_url()
    }

    /// The chain id anvil reported (31337 unless configured).
    pub fn chain_id(&self) -> u64 {
        self.instance.chain_id()
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.instance.port()
    }

    /// The pre-funded dev accounts' addresses.
    pub fn addresses(&self) -> &[alloy::primitives::Address] {
        self.instance.addresses()
    }

    /// A signer for dev account `index` (anvil's well-known test keys: never use them on a real
    /// network). `None` past the last account.
    pub fn signer(&self, index: usize) -> Option<PrivateKeySigner> {
        let key = self.instance.nth_key(index)?;
        let mut signer = PrivateKeySigner::from(key.clone());
        signer.set_chain_id(Some(self.chain_id()));
        Some(signer)
    }

    /// The underlying alloy instance.
    pub fn instance(&self) -> &AnvilInstance {
        &self.instance
    }
}

/// Spawn anvil (see [`anvil_binary`] for where it is looked up) on `127.0.0.1` with an
/// OS-chosen free port. `extra_args` are passed through (e.g. `["--block-time", "1"]`).
///
/// anvil's stdout is drained into `tracing` (target `inft_contracts::anvil`, level trace) by a
/// background thread, so a long run never blocks on a full pipe.
pub fn spawn_anvil(
    project_root: Option<&Path>,
    extra_args: &[&str],
) -> Result<DevChain, AnvilError> {
    spawn_anvil_at(project_root, 0, extra_args)
}

/// Like [`spawn_anvil`], on a given loopback `port` (0 = OS-chosen), e.g. 8545 for a dev chain
/// that other programs connect to.
pub fn spawn_anvil_at(
    project_root: Option<&Path>,
    port: u16,
    extra_args: &[&str],
) -> Result<DevChain, AnvilError> {
    let binary = anvil_binary(project_root)?;
    tracing::debug!(binary = %binary.display(), port, "spawning anvil");
    let mut instance = Anvil::new()
        .path(binary)
        .host("127.0.0.1")
        .port(port)
        .args(extra_args.iter().copied())
        .keep_stdout()
        .try_spawn()?;
    if instance.addresses().is_empty() {
        return Err(AnvilError::NoAccounts);
    }
    if let Some(stdout) = instance.child_mut().stdout.take() {
        std::thread::Builder::new()
            .name("anvil-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    match line {
                        Ok(line) => tracing::trace!(target: "inft_contracts::anvil", "{line}"),
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| AnvilError::Spawn(NodeError::SpawnError(e)))?;
    }
    Ok(DevChain { instance })
}
