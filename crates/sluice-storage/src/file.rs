//! Local-file warehouses: `object_store`'s local filesystem for object I/O, and listing and
//! prefix deletion on the filesystem itself, so symlinks are never followed out of the
//! warehouse. Clients reach the files directly, so nothing is vended or signed.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::backend::{Backend, Resolved};
use crate::credential::StorageCredential;
use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{Result, StorageError};
use crate::profile::{FileProfile, StorageProfile};
use crate::settings::StorageSettings;

/// `LocalFileSystem` rooted at "/", so object keys are absolute paths minus the leading '/'.
pub(crate) struct FileBackend {
    store: Arc<dyn ObjectStore>,
}

impl FileBackend {
    /// Creates the root directory if missing. File storage takes no credential and no
    /// settings.
    pub(crate) fn open(
        profile: &FileProfile,
        _cred: Option<&StorageCredential>,
        _settings: &StorageSettings,
    ) -> Result<Self> {
        let root = profile.root_trimmed();
        if !root.starts_with('/') || root == "/" {
            return Err(StorageError::Invalid(format!(
                "file root '{}' must be an absolute directory other than '/'",
                profile.root
            )));
        }
        std::fs::create_dir_all(root)
            .map_err(|e| StorageError::Io(format!("cannot create file root '{root}': {e}")))?;
        Ok(FileBackend {
            store: Arc::new(LocalFileSystem::new()),
        })
    }
}

/// The local path of a canonical `file:///abs/path` location.
fn fs_path(at: &Resolved) -> PathBuf {
    PathBuf::from(at.url.get("file://".len()..).unwrap_or(""))
}

#[async_trait::async_trait]
impl Backend for FileBackend {
    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn key_of<'a>(&self, canonical: &'a str) -> &'a str {
        canonical
            .get("file://".len()..)
            .unwrap_or("")
            .trim_start_matches('/')
    }

    fn location_of(&self, key: &Path) -> String {
        format!("file:///{key}")
    }

    async fn list_prefix(&self, at: &Resolved) -> Result<Vec<String>> {
        let dir = fs_path(at);
        let url = at.url.clone();
        Ok(tokio::task::spawn_blocking(move || list_tree(&dir))
            .await
            .map_err(|e| StorageError::Io(format!("list {url}/: {e}")))?
            .map_err(|e| StorageError::Io(format!("list {url}/: {e}")))?
            .into_iter()
            .map(|p| format!("file://{}", p.to_string_lossy()))
            .collect())
    }

    async fn list_children(&self, at: &Resolved) -> Result<Vec<String>> {
        let dir = fs_path(at);
        let mut names = Vec::new();
        let mut rd = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| StorageError::Io(format!("list {}/: {e}", at.url)))?;
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| StorageError::Io(format!("list {}/: {e}", at.url)))?
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    /// Also removes the emptied directories, `at` itself included; symlinks are removed,
    /// never followed, so a link cannot lead the deletion outside the warehouse.
    async fn delete_prefix(&self, at: &Resolved) -> Result<u64> {
        let dir = fs_path(at);
        let url = at.url.clone();
        tokio::task::spawn_blocking(move || delete_tree(&dir))
            .await
            .map_err(|e| StorageError::Io(format!("delete {url}/: {e}")))?
            .map_err(|e| StorageError::Io(format!("delete {url}/: {e}")))
    }

    async fn vend(&self, _: &str, _: AccessLevel, _: &str) -> Result<TableCredentials> {
        Err(StorageError::Invalid(format!(
            "cannot vend credentials: {}",
            StorageProfile::FILE_VENDING_UNAVAILABLE
        )))
    }
}

/// Files (and symlinks) below `dir`, without following symlinks. A missing `dir`, or one
/// that is a file, has nothing below it.
fn list_tree(dir: &FsPath) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if is_symlink(dir) {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Removes everything below `dir` and then `dir` itself, without following symlinks.
/// Returns the number of non-directory entries removed. Concurrent writers may leave a
/// directory non-empty; it is then kept rather than failing the whole deletion.
fn delete_tree(dir: &FsPath) -> std::io::Result<u64> {
    if is_symlink(dir) {
        return Ok(0);
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if is_gone(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut count = 0;
    for entry in rd {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count += delete_tree(&entry.path())?;
        } else {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => count += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(count),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(count)
        }
        Err(e) => Err(e),
    }
}

/// A prefix that is itself a symlink is not descended into: its target may lie outside
/// the warehouse.
fn is_symlink(p: &FsPath) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// `read_dir` on a missing path or on a file: nothing is below it.
fn is_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}
