//! The sidecar lock file of a SQLite database: named after the database file's
//! canonical path (so that two migrators reaching the same file through different paths
//! or symbolic links contend for one lock), and opened only if it is a regular file of
//! the user's own (or of the database file's owner), never through a symbolic or hard
//! link (which could point Ferry at another file to truncate).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// `<canonical db path>.ferry-lock`. A database file that does not exist yet is named
/// by its folder's canonical path and its file name.
pub fn path_for(db: &Path) -> PathBuf {
    let canonical = db.canonicalize().unwrap_or_else(|_| {
        match (
            db.parent().and_then(|p| {
                let p = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                };
                p.canonicalize().ok()
            }),
            db.file_name(),
        ) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => db.to_path_buf(),
        }
    });
    let mut s = canonical.into_os_string();
    s.push(".ferry-lock");
    PathBuf::from(s)
}

const NOT_A_FILE: &str = "it is not a regular file; remove it (Ferry creates its lock file itself)";

/// Opens the lock file at `path` for reading only, to look at who holds it (`None`: it
/// does not exist). Never follows a symbolic link, and refuses anything but a regular
/// file; nothing is written through it, so a hard link or another owner does no harm.
pub fn open_to_read(path: &Path) -> io::Result<Option<File>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) => io::Error::other(
                    "it is a symbolic link; Ferry does not follow one to a lock file",
                ),
                _ => e,
            })
        }
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(NOT_A_FILE));
    }
    Ok(Some(file))
}

/// Opens (creating it if needed) the lock file of database `db` for reading and
/// writing, refusing a symbolic link, anything but a regular file, a file with other
/// hard links, and a file owned by neither the user nor the database file's owner.
pub fn open(path: &Path, db: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW: a symbolic link in the last component fails with ELOOP.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => {
            io::Error::other("it is a symbolic link; Ferry does not follow one to a lock file")
        }
        Some(libc::EISDIR) => io::Error::other(NOT_A_FILE),
        _ => e,
    })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(NOT_A_FILE));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // A hard link would make Ferry truncate the file it links to.
        if meta.nlink() > 1 {
            return Err(io::Error::other(format!(
                "it has {} hard links; remove it (Ferry creates its lock file itself)",
                meta.nlink()
            )));
        }
        // SAFETY: geteuid has no preconditions and cannot fail. The library's one
        // unsafe block (lib.rs denies unsafe code elsewhere).
        #[allow(unsafe_code)]
        let me = unsafe { libc::geteuid() };
        // The user's own, or the database file's owner's (a repository shared by a
        // group: whoever made the database made the lock file too).
        let db_owner = std::fs::metadata(db).ok().map(|m| m.uid());
        if meta.uid() != me && Some(meta.uid()) != db_owner {
            return Err(io::Error::other(format!(
                "it belongs to user id {}, neither this user ({me}) nor the database file's \
                 owner; remove it or run as its owner",
                meta.uid()
            )));
        }
    }
    Ok(file)
}
