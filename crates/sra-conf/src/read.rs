//! Reading untrusted configuration archives into a validated [`Tree`].
//!
//! An archive is read to its end and checked member by member before anything
//! is written: a refused upload leaves the configuration exactly as it was.
//! The checks are listed in `docs/SRA-CONFIGURATION.md`.

use crate::tree::{Node, Tree};
use crate::{shown, ConfError, Limits, VERSION_FILE};
use flate2::read::MultiGzDecoder;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;
use tar::EntryType;

/// Longest relative path kept (PATH_MAX less its NUL): a longer one could not
/// be created anyway.
const MAX_PATH_BYTES: usize = 4095;
/// Longest component of a path (NAME_MAX).
const MAX_NAME_BYTES: usize = 255;
/// A version file holds a 40-digit digest and maybe some whitespace.
const MAX_VERSION_FILE_BYTES: usize = 1024;
/// Mode of a directory that only the paths below it imply.
const IMPLIED_DIR_MODE: u32 = 0o755;
/// What the uncompressed stream may hold per member besides file content: its
/// header, pax records and GNU long names (paths are at most 4 KiB) and block
/// padding. Bounds the memory and time a gzip bomb can take.
const STREAM_BYTES_PER_MEMBER: u64 = 16 << 10;
/// Symlinks followed while resolving one target, as Linux's MAXSYMLINKS.
const MAX_SYMLINK_HOPS: usize = 40;

/// An upload, read and validated.
#[derive(Debug)]
pub struct Upload {
    /// The digest (lowercase hex) of the configuration the upload was made
    /// from, as its version file recorded it.
    pub base_digest: String,
    /// Everything else in the archive.
    pub tree: Tree,
}

/// Reads an untrusted `.tar.gz` upload fully into memory, validating every
/// member; never touches the filesystem.
///
/// The top-level [`VERSION_FILE`] is required and taken out of the tree as
/// `base_digest` (lowercased). A `sub/sra-configuration-version.txt` is an
/// ordinary file.
pub fn read_upload(gz: impl Read, limits: &Limits) -> Result<Upload, ConfError> {
    let mut tree = read_archive(MultiGzDecoder::new(gz), &[], limits)?;
    let base_digest = take_version(&mut tree)?;
    Ok(Upload { base_digest, tree })
}

/// Reads a plain tar of an image's configuration directory, as the Docker
/// Engine's `GET /containers/{id}/archive?path=/srm/sra/conf` returns it.
///
/// Every member is below `strip` (e.g. `"conf"`), which is removed. Vendor
/// images are semi-trusted, so the checks of [`read_upload`] all apply, except
/// that no version file is expected: a top-level [`VERSION_FILE`] in an image
/// is just a file.
pub fn read_image_tree(tar: impl Read, strip: &str, limits: &Limits) -> Result<Tree, ConfError> {
    let strip: Vec<&[u8]> =
        strip.as_bytes().split(|byte| *byte == b'/').filter(|part| !part.is_empty() && *part != b".").collect();
    read_archive(tar, &strip, limits)
}

fn take_version(tree: &mut Tree) -> Result<String, ConfError> {
    let refuse = |reason: String| ConfError::VersionFile { reason };
    let content = match tree.nodes.get(VERSION_FILE.as_bytes()) {
        Some(Node::File { content, .. }) => content,
        Some(Node::Dir { .. }) => return Err(refuse("it is a directory, not a regular file".into())),
        Some(Node::Symlink { .. }) => return Err(refuse("it is a symlink, not a regular file".into())),
        None => {
            return Err(refuse(
                "the archive does not have it at its top level; upload an archive made from a downloaded \
                 configuration, which records the version it was downloaded at"
                    .into(),
            ))
        }
    };
    if content.len() > MAX_VERSION_FILE_BYTES {
        return Err(refuse(format!(
            "it is {} bytes long, over the {MAX_VERSION_FILE_BYTES} bytes a version file may have",
            content.len()
        )));
    }
    let digest = content.trim_ascii();
    if digest.len() != 40 || !digest.iter().all(u8::is_ascii_hexdigit) {
        let mut held = shown(digest);
        if held.chars().count() > 64 {
            held = held.chars().take(64).collect::<String>() + "...";
        }
        return Err(refuse(format!("it holds {held:?}, not the 40 hexadecimal digits of a SHA-1 digest")));
    }
    let digest = shown(&digest.to_ascii_lowercase());
    tree.nodes.remove(VERSION_FILE.as_bytes());
    Ok(digest)
}

fn read_archive(input: impl Read, strip: &[&[u8]], limits: &Limits) -> Result<Tree, ConfError> {
    let stream = StreamLimit::new(limits);
    let mut archive =
        tar::Archive::new(CappedReader { inner: input, remaining: stream.cap, over: stream.over.clone() });
    let mut reader = TreeReader {
        strip,
        limits,
        stream: &stream,
        nodes: BTreeMap::new(),
        implied: HashSet::new(),
        members: 0,
        content_bytes: 0,
    };
    let mut last_member = String::new();
    let entries = archive.entries().map_err(|e| stream.failure(e, &last_member, Reading::Header))?;
    for entry in entries {
        let entry = entry.map_err(|e| stream.failure(e, &last_member, Reading::Header))?;
        last_member = shown(&entry.path_bytes());
        reader.add(entry, &last_member)?;
    }
    // Reading on to the end checks the gzip trailer (CRC and length) and any
    // corruption after the tar's end-of-archive blocks.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| stream.failure(e, &last_member, Reading::Trailer))?;
    reader.check_symlink_chains()?;
    Ok(Tree { nodes: reader.nodes })
}

/// What was being read when the stream failed, for the message.
#[derive(Clone, Copy)]
enum Reading {
    Header,
    Content,
    Trailer,
}

/// The most bytes the uncompressed stream may have, and whether it tried to
/// have more.
struct StreamLimit {
    cap: u64,
    limits: Limits,
    over: Rc<Cell<bool>>,
}

impl StreamLimit {
    fn new(limits: &Limits) -> StreamLimit {
        let overhead = limits.max_entries.saturating_add(2).saturating_mul(STREAM_BYTES_PER_MEMBER);
        StreamLimit { cap: limits.max_bytes.saturating_add(overhead), limits: *limits, over: Rc::default() }
    }

    fn failure(&self, error: io::Error, member: &str, reading: Reading) -> ConfError {
        if self.over.get() {
            return ConfError::TooLarge {
                member: member.to_owned(),
                reason: format!(
                    "the uncompressed archive is over {} bytes, the most the limits allow ({} bytes of file \
                     content (max_bytes) and {} KiB of headers per entry for {} entries (max_entries))",
                    self.cap,
                    self.limits.max_bytes,
                    STREAM_BYTES_PER_MEMBER >> 10,
                    self.limits.max_entries
                ),
            };
        }
        let reason = match reading {
            Reading::Header if member.is_empty() => error.to_string(),
            Reading::Header => format!("after member {member:?}: {error}"),
            Reading::Content => format!("reading member {member:?}: {error}"),
            Reading::Trailer => format!("after the end of the tar archive: {error}"),
        };
        ConfError::Corrupt { reason }
    }
}

/// Hands out at most `remaining` bytes, then fails if there are more.
struct CappedReader<R> {
    inner: R,
    remaining: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Exactly at the cap is fine if the stream ends there.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.over.set(true);
            return Err(io::Error::other("the archive is larger than its limits allow"));
        }
        let wanted = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..wanted])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Why a member's path (or a hard link's target path) is refused.
enum PathProblem {
    Empty,
    Nul,
    Absolute,
    DotDot,
    OutsideStrip,
    TooLong(usize),
    NameTooLong(usize),
}

struct TreeReader<'a> {
    /// Components every member path must start with, removed.
    strip: &'a [&'a [u8]],
    limits: &'a Limits,
    stream: &'a StreamLimit,
    nodes: BTreeMap<Vec<u8>, Node>,
    /// Directories that exist only because a path below them named them, and
    /// that an explicit directory member may still describe.
    implied: HashSet<Vec<u8>>,
    members: u64,
    content_bytes: u64,
}

impl<'a> TreeReader<'a> {
    fn add<R: Read>(&mut self, mut entry: tar::Entry<'_, R>, member: &str) -> Result<(), ConfError> {
        let refuse = |reason: String| ConfError::Unsafe { member: member.to_owned(), reason };
        self.members += 1;
        if self.members > self.limits.max_entries {
            return Err(ConfError::TooLarge {
                member: member.to_owned(),
                reason: format!(
                    "it is member number {}, over the limit of {} entries (max_entries)",
                    self.members, self.limits.max_entries
                ),
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Metadata for the whole archive (git archive writes one), not a member.
            return Ok(());
        }
        let raw_path = entry.path_bytes().into_owned();
        let rel = self.member_path(&raw_path).map_err(|problem| member_path_error(member, problem))?;
        // GNU tar's pax sparse format stores a sparse file as a regular one
        // whose content starts with its map; kept as is, it would be garbage.
        let allowed = kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link();
        let refused_kind = if is_pax_sparse(&mut entry) {
            Some("a GNU sparse file".to_owned())
        } else {
            (!allowed).then(|| type_name(kind))
        };
        if let Some(kind_name) = refused_kind {
            return Err(refuse(format!(
                "it is {kind_name}; a configuration holds only regular files, directories, symlinks and hard links"
            )));
        }
        if rel.is_empty() {
            if kind.is_dir() {
                // The configuration directory itself ("./", or "conf/" from the engine).
                return Ok(());
            }
            return Err(refuse("it names the configuration directory itself, but is not a directory".into()));
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|e| ConfError::Corrupt { reason: format!("member {member:?} has a malformed mode: {e}") })?
            & 0o777;
        self.make_room(&rel, kind.is_dir(), member)?;
        let node = if kind.is_dir() {
            Node::Dir { mode }
        } else if kind.is_file() {
            self.read_content(&mut entry, mode, member)?
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().map(Cow::into_owned).unwrap_or_default();
            check_symlink_target(&rel, &target, member)?;
            Node::Symlink { target }
        } else {
            let target = entry.link_name_bytes().map(Cow::into_owned).unwrap_or_default();
            self.hard_link_copy(&target, member)?
        };
        self.insert(rel, node, member)
    }

    /// The member's path relative to the configuration directory: `.`
    /// components and the `strip` prefix removed.
    fn member_path(&self, raw: &[u8]) -> Result<Vec<u8>, PathProblem> {
        if raw.is_empty() {
            return Err(PathProblem::Empty);
        }
        if raw.contains(&0) {
            return Err(PathProblem::Nul);
        }
        if raw.starts_with(b"/") {
            return Err(PathProblem::Absolute);
        }
        let mut parts = Vec::new();
        for part in raw.split(|byte| *byte == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(PathProblem::DotDot),
                _ if part.len() > MAX_NAME_BYTES => return Err(PathProblem::NameTooLong(part.len())),
                _ => parts.push(part),
            }
        }
        let Some(inside) = parts.strip_prefix(self.strip) else { return Err(PathProblem::OutsideStrip) };
        let rel = inside.join(&b'/');
        if rel.len() > MAX_PATH_BYTES {
            return Err(PathProblem::TooLong(rel.len()));
        }
        Ok(rel)
    }

    /// Checks that `rel` can be added: its ancestors are directories (missing
    /// ones are implied), and it is not in the tree yet.
    fn make_room(&mut self, rel: &[u8], is_dir: bool, member: &str) -> Result<(), ConfError> {
        let refuse = |reason: String| ConfError::Unsafe { member: member.to_owned(), reason };
        for (end, _) in rel.iter().enumerate().filter(|(_, byte)| **byte == b'/') {
            let ancestor = &rel[..end];
            match self.nodes.get(ancestor) {
                Some(Node::Dir { .. }) => {}
                Some(Node::File { .. }) => {
                    return Err(refuse(format!("its parent {:?} is a regular file in the archive", shown(ancestor))))
                }
                Some(Node::Symlink { .. }) => {
                    return Err(refuse(format!(
                        "it goes through {:?}, which is a symlink in the archive",
                        shown(ancestor)
                    )))
                }
                None => {
                    self.insert(ancestor.to_vec(), Node::Dir { mode: IMPLIED_DIR_MODE }, member)?;
                    self.implied.insert(ancestor.to_vec());
                }
            }
        }
        if !self.nodes.contains_key(rel) {
            return Ok(());
        }
        // Archives may list a directory after what it holds; its own member
        // then just gives it its mode.
        if self.implied.remove(rel) {
            if is_dir {
                return Ok(());
            }
            return Err(refuse(format!(
                "members below {:?} appear earlier in the archive, so it is a directory",
                shown(rel)
            )));
        }
        Err(refuse(format!("{:?} appears earlier in the archive", shown(rel))))
    }

    fn insert(&mut self, rel: Vec<u8>, node: Node, member: &str) -> Result<(), ConfError> {
        if !self.nodes.contains_key(&rel) && self.nodes.len() as u64 >= self.limits.max_entries {
            return Err(ConfError::TooLarge {
                member: member.to_owned(),
                reason: format!(
                    "the configuration would have more than {} entries, counting directories its paths imply \
                     (max_entries)",
                    self.limits.max_entries
                ),
            });
        }
        self.nodes.insert(rel, node);
        Ok(())
    }

    /// Counts `bytes` more of file content against the limit.
    fn add_content(&mut self, bytes: u64, member: &str) -> Result<(), ConfError> {
        let total = self.content_bytes.saturating_add(bytes);
        if total > self.limits.max_bytes {
            return Err(ConfError::TooLarge {
                member: member.to_owned(),
                reason: format!(
                    "its {bytes} bytes bring the file content to {total} bytes, over the limit of {} bytes \
                     (max_bytes)",
                    self.limits.max_bytes
                ),
            });
        }
        self.content_bytes = total;
        Ok(())
    }

    fn read_content<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        mode: u32,
        member: &str,
    ) -> Result<Node, ConfError> {
        // The header's claim is checked before a byte is read or allocated.
        let size = entry.size();
        self.add_content(size, member)?;
        let mut content = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        // The entry never yields more than `size`; the extra byte of the
        // `take` would only show a reader that does.
        entry
            .by_ref()
            .take(size.saturating_add(1))
            .read_to_end(&mut content)
            .map_err(|e| self.stream.failure(e, member, Reading::Content))?;
        let read = content.len() as u64;
        if read != size {
            return Err(ConfError::Corrupt {
                reason: format!("member {member:?} is cut short: its header says {size} bytes, the archive has {read}"),
            });
        }
        Ok(Node::File { mode, content })
    }

    /// A hard link is kept as a copy of the regular file it names, which must
    /// be earlier in the archive.
    fn hard_link_copy(&mut self, raw_target: &[u8], member: &str) -> Result<Node, ConfError> {
        let refuse = |reason: String| ConfError::Unsafe { member: member.to_owned(), reason };
        let target = self.member_path(raw_target).map_err(|problem| hard_link_error(member, raw_target, problem))?;
        let (mode, content) = match self.nodes.get(&target) {
            Some(Node::File { mode, content }) if !target.is_empty() => (*mode, content.clone()),
            _ => {
                return Err(refuse(format!(
                    "it is a hard link to {:?}, which is not a regular file earlier in the archive",
                    shown(raw_target)
                )))
            }
        };
        // The copy is written out in full, so it counts like any file.
        self.add_content(content.len() as u64, member)?;
        Ok(Node::File { mode, content })
    }

    /// Follows every symlink through the tree's other symlinks, the way the
    /// kernel would, to find targets that leave the configuration only by way
    /// of another link (`x -> .` with `y -> x/..`).
    fn check_symlink_chains(&self) -> Result<(), ConfError> {
        let mut resolver = Resolver::new(&self.nodes);
        for (id, (path, node)) in self.nodes.iter().enumerate() {
            let Node::Symlink { target } = node else { continue };
            let reason = match resolver.follow(id, 0) {
                Ok(_) => continue,
                Err(Escape::Outside) => {
                    "which, following the archive's other symlinks, leads outside the \
                                         configuration directory"
                }
                Err(Escape::Loop) => "which loops back to itself through the archive's symlinks",
                Err(Escape::TooDeep) => "which takes more than 40 symlinks of the archive to resolve",
            };
            let member = shown(path);
            return Err(ConfError::Unsafe {
                reason: format!("it is a symlink to {:?}, {reason}", shown(target)),
                member,
            });
        }
        Ok(())
    }
}

fn member_path_error(member: &str, problem: PathProblem) -> ConfError {
    let reason = match problem {
        PathProblem::Empty => "its name is empty".to_owned(),
        PathProblem::Nul => "its name contains a NUL byte".to_owned(),
        PathProblem::Absolute => "its path is absolute".to_owned(),
        PathProblem::DotDot => "it has a `..` component".to_owned(),
        PathProblem::OutsideStrip => "it is outside the directory the archive was asked for".to_owned(),
        PathProblem::TooLong(len) => return too_long(member, format!("its path is {len} bytes long"), MAX_PATH_BYTES),
        PathProblem::NameTooLong(len) => {
            return too_long(member, format!("a component of its path is {len} bytes long"), MAX_NAME_BYTES)
        }
    };
    ConfError::Unsafe { member: member.to_owned(), reason }
}

fn hard_link_error(member: &str, target: &[u8], problem: PathProblem) -> ConfError {
    let target = shown(target);
    let reason = match problem {
        PathProblem::Empty => "it is a hard link without a target".to_owned(),
        PathProblem::Nul => format!("it is a hard link to {target:?}, which contains a NUL byte"),
        PathProblem::Absolute => format!("it is a hard link to the absolute path {target:?}"),
        PathProblem::DotDot => format!("it is a hard link to {target:?}, which has a `..` component"),
        PathProblem::OutsideStrip => {
            format!("it is a hard link to {target:?}, which is outside the directory the archive was asked for")
        }
        PathProblem::TooLong(len) => {
            return too_long(member, format!("its hard-link target is {len} bytes long"), MAX_PATH_BYTES)
        }
        PathProblem::NameTooLong(len) => {
            return too_long(member, format!("a component of its hard-link target is {len} bytes long"), MAX_NAME_BYTES)
        }
    };
    ConfError::Unsafe { member: member.to_owned(), reason }
}

fn too_long(member: &str, what: String, limit: usize) -> ConfError {
    ConfError::TooLarge {
        member: member.to_owned(),
        reason: format!("{what}, over the limit of {limit} bytes, so it could not be written"),
    }
}

fn check_symlink_target(rel: &[u8], target: &[u8], member: &str) -> Result<(), ConfError> {
    let refuse = |reason: String| ConfError::Unsafe { member: member.to_owned(), reason };
    let shown_target = shown(target);
    if target.is_empty() {
        return Err(refuse("it is a symlink with an empty target".into()));
    }
    if target.contains(&0) {
        return Err(refuse(format!("it is a symlink to {shown_target:?}, which contains a NUL byte")));
    }
    if target.len() > MAX_PATH_BYTES {
        return Err(too_long(member, format!("its symlink target is {} bytes long", target.len()), MAX_PATH_BYTES));
    }
    if target.starts_with(b"/") {
        return Err(refuse(format!(
            "it is a symlink to the absolute path {shown_target:?}; only relative targets inside the configuration \
             directory are allowed"
        )));
    }
    // Lexically, from the link's own directory: one level per '/' in its path.
    let mut depth = rel.iter().filter(|byte| **byte == b'/').count();
    for part in target.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." if depth == 0 => {
                return Err(refuse(format!(
                    "it is a symlink to {shown_target:?}, which leads outside the configuration directory"
                )))
            }
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    Ok(())
}

fn is_pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> bool {
    let Ok(Some(mut records)) = entry.pax_extensions() else { return false };
    records.any(|record| record.is_ok_and(|record| record.key_bytes().starts_with(b"GNU.sparse.")))
}

fn type_name(kind: EntryType) -> String {
    match kind {
        EntryType::Char => "a character device".into(),
        EntryType::Block => "a block device".into(),
        EntryType::Fifo => "a fifo".into(),
        EntryType::Continuous => "a contiguous file".into(),
        EntryType::GNUSparse => "a GNU sparse file".into(),
        EntryType::XHeader => "a pax extended header outside a ustar archive".into(),
        EntryType::GNULongName | EntryType::GNULongLink => "a GNU long-name record outside a GNU archive".into(),
        other => format!("an entry of type {:?}", char::from(other.as_byte())),
    }
}

/// Why a symlink cannot stay.
enum Escape {
    Outside,
    Loop,
    TooDeep,
}

/// Where a resolution has got to: a directory of the tree, and how many
/// levels below it it went into names that are not directories of the tree
/// (missing, or a file), which are then treated lexically.
#[derive(Clone, Copy)]
struct Position {
    dir: usize,
    below: usize,
}

#[derive(Clone, Copy)]
enum Resolution {
    Unvisited,
    InProgress,
    Done(Position),
}

/// Resolves symlinks inside a tree. Nodes are numbered in the tree's order;
/// the root is number `nodes.len()`. Each symlink is resolved once, so the
/// work is linear in the size of the targets whatever the archive does.
struct Resolver<'t> {
    nodes: Vec<&'t Node>,
    parent: Vec<usize>,
    children: HashMap<(usize, &'t [u8]), usize>,
    resolutions: Vec<Resolution>,
}

impl<'t> Resolver<'t> {
    fn new(tree: &'t BTreeMap<Vec<u8>, Node>) -> Resolver<'t> {
        let root = tree.len();
        let ids: HashMap<&[u8], usize> = tree.keys().enumerate().map(|(id, path)| (path.as_slice(), id)).collect();
        let mut parent = Vec::with_capacity(tree.len());
        let mut children = HashMap::with_capacity(tree.len());
        for (id, path) in tree.keys().enumerate() {
            let (parent_id, name) = match path.iter().rposition(|byte| *byte == b'/') {
                // A tree's parents are in it (the reader implies missing ones).
                Some(slash) => (ids.get(&path[..slash]).copied().unwrap_or(root), &path[slash + 1..]),
                None => (root, path.as_slice()),
            };
            parent.push(parent_id);
            children.insert((parent_id, name), id);
        }
        Resolver { nodes: tree.values().collect(), parent, children, resolutions: vec![Resolution::Unvisited; root] }
    }

    fn root(&self) -> usize {
        self.nodes.len()
    }

    /// Where the symlink numbered `link` leads.
    fn follow(&mut self, link: usize, hops: usize) -> Result<Position, Escape> {
        match self.resolutions[link] {
            Resolution::Done(position) => return Ok(position),
            Resolution::InProgress => return Err(Escape::Loop),
            Resolution::Unvisited => {}
        }
        if hops >= MAX_SYMLINK_HOPS {
            return Err(Escape::TooDeep);
        }
        let Node::Symlink { target } = self.nodes[link] else {
            unreachable!("follow is only called for symlinks");
        };
        self.resolutions[link] = Resolution::InProgress;
        let mut at = Position { dir: self.parent[link], below: 0 };
        for part in target.split(|byte| *byte == b'/') {
            match part {
                b"" | b"." => {}
                b".." if at.below > 0 => at.below -= 1,
                b".." if at.dir == self.root() => return Err(Escape::Outside),
                b".." => at.dir = self.parent[at.dir],
                _ if at.below > 0 => at.below += 1,
                name => match self.children.get(&(at.dir, name)).copied() {
                    Some(child) => match self.nodes[child] {
                        Node::Dir { .. } => at.dir = child,
                        Node::File { .. } => at.below = 1,
                        Node::Symlink { .. } => at = self.follow(child, hops + 1)?,
                    },
                    None => at.below = 1,
                },
            }
        }
        self.resolutions[link] = Resolution::Done(at);
        Ok(at)
    }
}
