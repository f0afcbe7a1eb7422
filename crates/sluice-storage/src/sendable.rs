//! Local-file bodies the HTTP listener sends with `sendfile(2)` instead of copying them.
//!
//! Serving a local file through a socket from user space copies every byte twice (page cache
//! into a buffer, buffer into the socket); on a small machine where the client shares the
//! cores, those copies decide how fast a lakehouse read through the S3 gateway is. A body
//! chunk made by [`region`] is a memory mapping of the file's range, registered here by its
//! address. hyper hands body chunks to the connection's writer as they are, so the listener
//! (`sluice-server`'s `serve.rs`) looks each outgoing slice up with [`file_slice`] and, when
//! it is part of a region, has the kernel send the file's pages instead of the mapped bytes.
//!
//! The mapping is what any other consumer reads: correct bytes, through page faults. Sluice
//! only ever replaces warehouse files by rename (object_store stages every write), so a mapped
//! file is never truncated under the mapping by Sluice itself; a file truncated in place by
//! another program would fault such a reader (SIGBUS). That is why only the gateway's
//! GetObject, whose body goes straight to the listener, asks for regions
//! ([`crate::Storage::get_object_to_send`]).

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A part of a registered region: the file and where in it the slice's bytes are.
pub struct FileSlice {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: usize,
}

struct Region {
    len: usize,
    file: Arc<File>,
    offset: u64,
}

/// Regions alive now, so that the listener's check costs one atomic load when there are none.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Live regions by the address of their first byte (mappings never overlap while alive).
static REGIONS: RwLock<BTreeMap<usize, Region>> = RwLock::new(BTreeMap::new());

/// Owns a mapping and unregisters it before it is unmapped.
struct Mapped {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let start = self.map.as_ptr() as usize;
        REGIONS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&start);
        LIVE.fetch_sub(1, Ordering::Release);
    }
}

/// `len` (> 0) bytes of `file` at `offset` as a body chunk the listener can send from the
/// file. Run it on the blocking pool: it also asks the kernel to read the range ahead, so
/// that `sendfile` on the runtime's threads finds the pages cached. (A page still on disk
/// when it is sent makes that thread wait for the disk, as in any server that uses
/// sendfile from its event loop; the read-ahead of the whole region, started before its
/// first byte is sent, shortens such waits. Waiting for it here would mean mapping every
/// page into the process.)
pub(crate) fn region(file: &Arc<File>, offset: u64, len: usize) -> io::Result<Bytes> {
    if !cfg!(target_os = "linux") {
        // The listener sends regions with Linux's sendfile(2) only.
        return Err(io::ErrorKind::Unsupported.into());
    }
    #[cfg(target_os = "linux")]
    if let Some(n) = std::num::NonZeroU64::new(len as u64) {
        // Advice only: a failure changes nothing about what is sent.
        let _ = rustix::fs::fadvise(&**file, offset, Some(n), rustix::fs::Advice::WillNeed);
    }
    // SAFETY: the mapping is private to this module's owner type and read only by consumers
    // other than the listener; see the module comment for why the file is not truncated
    // under it by Sluice.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(&**file)?
    };
    let start = map.as_ptr() as usize;
    REGIONS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            start,
            Region {
                len,
                file: file.clone(),
                offset,
            },
        );
    LIVE.fetch_add(1, Ordering::Release);
    Ok(Bytes::from_owner(Mapped { map }))
}

/// Where `buf`'s bytes are in a local file, when `buf` lies inside a live region.
pub fn file_slice(buf: &[u8]) -> Option<FileSlice> {
    if buf.is_empty() || LIVE.load(Ordering::Acquire) == 0 {
        return None;
    }
    let at = buf.as_ptr() as usize;
    let regions = REGIONS.read().unwrap_or_else(PoisonError::into_inner);
    let (start, r) = regions.range(..=at).next_back()?;
    let skip = at - start;
    (skip + buf.len() <= r.len).then(|| FileSlice {
        file: r.file.clone(),
        offset: r.offset + skip as u64,
        len: buf.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_region_holds_the_files_bytes_and_its_slices_are_found_until_dropped() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let f = Arc::new(f);
        // An offset that is not page-aligned.
        let b = region(&f, 5_000, 12_000).unwrap();
        assert_eq!(&b[..], &data[5_000..17_000]);
        let part = b.slice(100..300);
        let s = file_slice(&part).expect("a slice of a region is found");
        assert_eq!((s.offset, s.len), (5_100, 200));
        // Memory outside any region is not.
        assert!(file_slice(&data[..10]).is_none());
        let whole = file_slice(&b).unwrap();
        assert_eq!((whole.offset, whole.len), (5_000, 12_000));
        drop((b, part));
        let copy = Bytes::copy_from_slice(&data[..100]);
        assert!(file_slice(&copy).is_none());
    }
}
