//! The download archive.

use crate::digest::Listing;
use crate::tree::Node;
use crate::{is_reserved, scan, ConfError, SRM_OWNER, VERSION_FILE};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use tar::{EntryType, Header};

/// Writes the download archive (`.tar.gz`) of the configuration directory
/// `dir` to `out` and returns the digest it recorded.
///
/// The archive holds [`VERSION_FILE`] first (the digest and a newline), then
/// every entry sorted by relative path, without a `./` prefix, directories
/// named `name/`: regular files, directories and symlinks with their modes and
/// mtimes, owned by [`SRM_OWNER`]. Fifos, sockets and devices are left out.
/// The directory is read once, into memory, so that the digest is exactly that
/// of the content that follows it.
pub fn pack(dir: &Path, out: impl Write) -> Result<String, ConfError> {
    let mut listing = Listing::default();
    let mut members = Vec::new();
    for found in scan::walk(dir)? {
        if is_reserved(&found.rel) {
            continue;
        }
        match scan::load(&found)? {
            Some(node) => {
                listing.node(&found.rel, &node);
                members.push((found.mtime(), found.rel, node));
            }
            None => listing.record(b'o', found.permissions(), &found.rel, None),
        }
    }
    let digest = listing.finish();
    write_archive(&digest, &members, out).map_err(|source| ConfError::ArchiveOutput { source })?;
    Ok(digest)
}

fn write_archive(digest: &str, members: &[(u64, Vec<u8>, Node)], out: impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let version = format!("{digest}\n");
    let mut header = srm_header(EntryType::Regular, 0o644, now, version.len() as u64);
    append_member(&mut builder, &mut header, VERSION_FILE.as_bytes(), None, version.as_bytes())?;
    for (mtime, rel, node) in members {
        match node {
            Node::Dir { mode } => {
                let mut name = rel.clone();
                name.push(b'/');
                let mut header = srm_header(EntryType::Directory, *mode, *mtime, 0);
                append_member(&mut builder, &mut header, &name, None, io::empty())?;
            }
            Node::File { mode, content } => {
                let mut header = srm_header(EntryType::Regular, *mode, *mtime, content.len() as u64);
                append_member(&mut builder, &mut header, rel, None, content.as_slice())?;
            }
            Node::Symlink { target } => {
                let mut header = srm_header(EntryType::Symlink, 0o777, *mtime, 0);
                append_member(&mut builder, &mut header, rel, Some(target), io::empty())?;
            }
        }
    }
    let mut out = builder.into_inner()?.finish()?;
    out.flush()
}

fn srm_header(kind: EntryType, mode: u32, mtime: u64, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode & 0o777);
    header.set_uid(SRM_OWNER.0.into());
    header.set_gid(SRM_OWNER.1.into());
    header.set_mtime(mtime);
    header.set_size(size);
    header
}

/// Appends a member whose name and link target are written byte for byte.
///
/// The tar crate's own path setters normalise (they drop a directory's
/// trailing `/`) and refuse `..`; here the names are already exact, and tests
/// need to write hostile ones. A name or target longer than the header's field
/// goes first into a GNU long-name (`L`) or long-link (`K`) record, which GNU
/// tar, Python's tarfile, Go and the tar crate all read. `header` must be a
/// GNU header.
pub(crate) fn append_member<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    let gnu = header.as_gnu_mut().ok_or_else(|| io::Error::other("append_member needs a GNU header"))?;
    if let Some(link) = link {
        put_name(builder, &mut gnu.linkname, link, EntryType::GNULongLink)?;
    }
    put_name(builder, &mut gnu.name, name, EntryType::GNULongName)?;
    header.set_cksum();
    builder.append(header, data)
}

fn put_name<W: Write>(
    builder: &mut tar::Builder<W>,
    field: &mut [u8],
    value: &[u8],
    long: EntryType,
) -> io::Result<()> {
    field.fill(0);
    if value.len() <= field.len() {
        field[..value.len()].copy_from_slice(value);
        return Ok(());
    }
    let mut record = Header::new_gnu();
    let record_name = b"././@LongLink";
    record.as_gnu_mut().expect("a GNU header").name[..record_name.len()].copy_from_slice(record_name);
    record.set_entry_type(long);
    record.set_mode(0o644);
    record.set_mtime(0);
    // NUL-terminated, as GNU tar writes it.
    record.set_size(value.len() as u64 + 1);
    record.set_cksum();
    builder.append(&record, value.chain(&[0u8][..]))?;
    // Readers take the name from the record; the field keeps a prefix.
    field.copy_from_slice(&value[..field.len()]);
    Ok(())
}
