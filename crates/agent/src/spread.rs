//! Directories on disk whose subdirectories come and go with every container (the
//! writable layers, the pods' logs) are marked as ext4 "top" directories
//! (`FS_TOPDIR_FL`, `chattr +T`).
//!
//! ext4 puts a new inode in its parent directory's block group. An ext4 without a
//! journal (as on the machines this runs on) will not reuse an inode freed in the
//! last 30 s or so, and finds that out one freed inode at a time, reading each one's
//! deletion time. With every container's layer and log directories under one parent,
//! that parent's group fills with recently freed inodes as pods come and go, and
//! every new directory or file (the agent's, and the mount points `runc init` makes
//! in the writable layer) scanned past them: in a 10-pod start, 123 of 2,729 sampled
//! CPU cycles were that scan. A top directory's subdirectories are spread over the
//! groups instead, as directories under `/` are, and the scan went to 2 samples.
//! On other file systems the flag means nothing or is refused; either is fine.

use std::io;
use std::path::Path;

/// Makes `dir` and marks it a top directory; says whether the file system took the
/// mark.
pub fn spread_subdirectories(dir: &Path) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::open(dir)?;
    let Ok(flags) = rustix::fs::ioctl_getflags(&file) else { return Ok(false) };
    if flags.contains(rustix::fs::IFlags::TOPDIR) {
        return Ok(true);
    }
    Ok(rustix::fs::ioctl_setflags(&file, flags | rustix::fs::IFlags::TOPDIR).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EXT4_SUPER_MAGIC` (ext2 and ext3 share it).
    const EXT4_MAGIC: rustix::fs::FsWord = 0xEF53;

    #[test]
    fn a_directory_on_ext4_becomes_a_top_directory() {
        let dir = tempfile::tempdir().unwrap();
        let layers = dir.path().join("containers");
        let marked = spread_subdirectories(&layers).unwrap();
        assert!(layers.is_dir());
        let ext4 = rustix::fs::statfs(&layers).unwrap().f_type == EXT4_MAGIC;
        if ext4 {
            assert!(marked, "ext4 takes the mark (from the directory's owner)");
        }
        if marked {
            let flags = rustix::fs::ioctl_getflags(std::fs::File::open(&layers).unwrap()).unwrap();
            assert!(flags.contains(rustix::fs::IFlags::TOPDIR));
            // Marking again is a no-op.
            assert!(spread_subdirectories(&layers).unwrap());
        }
    }
}
