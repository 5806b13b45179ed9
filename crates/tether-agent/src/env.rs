//! A command's environment, made as the engine makes an exec's: the
//! container's, then the request's entries over it (`NAME` alone removes
//! the variable), then `HOME` from the user's passwd entry when none is set.

/// `base` is the container's environment as the agent received it;
/// `agent_home` says whether its `HOME` is the container's own (else the
/// runtime added it for the agent, which runs as root, and it is not the
/// command's).
pub fn command_env(
    base: &[(String, String)],
    agent_home: bool,
    overrides: &[String],
    home: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        base.iter().filter(|(name, _)| agent_home || name != "HOME").cloned().collect();
    for entry in overrides {
        match entry.split_once('=') {
            Some((name, value)) => match env.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value.to_owned(),
                None => env.push((name.to_owned(), value.to_owned())),
            },
            None => env.retain(|(name, _)| name != entry),
        }
    }
    if !env.iter().any(|(name, _)| name == "HOME") {
        env.push(("HOME".to_owned(), home.to_owned()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn overrides_apply_in_order_and_home_follows_the_user() {
        let base = pairs(&[("PATH", "/bin"), ("HOME", "/root"), ("A", "1"), ("B", "2")]);
        let overrides = vec!["A=3".to_owned(), "B".to_owned(), "C=4".to_owned()];
        assert_eq!(
            command_env(&base, false, &overrides, "/home/srm"),
            pairs(&[("PATH", "/bin"), ("A", "3"), ("C", "4"), ("HOME", "/home/srm")])
        );
        assert_eq!(command_env(&base, true, &[], "/home/srm")[1], pairs(&[("HOME", "/root")])[0]);
        assert_eq!(command_env(&base, false, &["HOME=/x".to_owned()], "/y").last(), pairs(&[("HOME", "/x")]).last());
    }
}
