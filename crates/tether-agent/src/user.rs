//! Who a command runs as, resolved from the container's own `/etc/passwd`
//! and `/etc/group` by the rules the engine's runtime (runc) follows for an
//! exec's `--user`: `name|uid[:group|gid]`, an empty user being uid 0; a
//! name must be in passwd, a number need not be; supplementary groups are
//! the user's memberships in `/etc/group`, and only when no group is given,
//! after the primary group (as the engine sets them).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// `HOME` when the environment has none.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || fields.len() < 6 {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0],
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields[5],
        })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || fields.len() < 3 {
            return None;
        }
        let members = fields.get(3).map(|m| m.split(',').filter(|m| !m.is_empty()).collect()).unwrap_or_default();
        Some(GroupEntry { name: fields[0], gid: fields[2].parse().ok()?, members })
    })
}

/// `spec` against the container's passwd and group files (empty when absent).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let uid_arg: Option<u32> = if user_arg.is_empty() { Some(0) } else { user_arg.parse().ok() };
    let matched = passwd_entries(passwd).find(|e| e.name == user_arg || uid_arg == Some(e.uid));
    let mut identity = match (&matched, uid_arg) {
        (Some(entry), _) => Identity { uid: entry.uid, gid: entry.gid, groups: vec![], home: entry.home.to_owned() },
        (None, Some(uid)) => Identity { uid, gid: 0, groups: vec![], home: "/".to_owned() },
        (None, None) => return Err(format!("unable to find user {user_arg}: no matching entries in passwd file")),
    };
    match group_arg {
        Some(group_arg) => {
            let gid_arg: Option<u32> = group_arg.parse().ok();
            identity.gid = match group_entries(group).find(|g| g.name == group_arg || gid_arg == Some(g.gid)) {
                Some(found) => found.gid,
                None => gid_arg
                    .ok_or_else(|| format!("unable to find group {group_arg}: no matching entries in group file"))?,
            };
        }
        None => {
            if let Some(entry) = &matched {
                identity.groups =
                    group_entries(group).filter(|g| g.members.contains(&entry.name)).map(|g| g.gid).collect();
            }
        }
    }
    // The engine lists the primary group among the supplementary ones, first.
    identity.groups.insert(0, identity.gid);
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\nsrm:x:660:661:SRA:/home/srm:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,srm\nsrm:x:661:\nextra:x:700:srm\n";

    fn id(uid: u32, gid: u32, groups: &[u32], home: &str) -> Identity {
        Identity { uid, gid, groups: groups.to_vec(), home: home.to_owned() }
    }

    #[test]
    fn users_resolve_as_the_runtime_resolves_them() {
        assert_eq!(resolve("", PASSWD, GROUP), Ok(id(0, 0, &[0, 10], "/root")));
        assert_eq!(resolve("srm", PASSWD, GROUP), Ok(id(660, 661, &[661, 10, 700], "/home/srm")));
        assert_eq!(resolve("660", PASSWD, GROUP), Ok(id(660, 661, &[661, 10, 700], "/home/srm")));
        assert_eq!(resolve("660:660", PASSWD, GROUP), Ok(id(660, 660, &[660], "/home/srm")));
        assert_eq!(resolve("srm:wheel", PASSWD, GROUP), Ok(id(660, 10, &[10], "/home/srm")));
        assert_eq!(resolve("1234", PASSWD, GROUP), Ok(id(1234, 0, &[0], "/")));
        assert_eq!(resolve("1234:5", "", ""), Ok(id(1234, 5, &[5], "/")));
        assert!(resolve("nobody", PASSWD, GROUP).unwrap_err().contains("unable to find user nobody"));
        assert!(resolve("srm:nogroup", PASSWD, GROUP).unwrap_err().contains("unable to find group nogroup"));
    }
}
