//! The image's `User` (`name`, `uid`, `name:group`, `uid:gid`) resolved against the container's
//! own `/etc/passwd` and `/etc/group`, as Docker resolves it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves `spec` against the files of the current root (the container's, after pivot).
pub fn resolve(spec: &str) -> Result<User, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    resolve_in(spec, &passwd, &group)
}

pub fn resolve_in(spec: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // name:x:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 6)
        .collect();
    let entry = entries
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let uid = match (u.parse::<u32>(), entry) {
        (Ok(n), _) => n,
        (Err(_), Some(f)) => f[2]
            .parse()
            .map_err(|_| format!("user `{u}` has an invalid uid in /etc/passwd"))?,
        (Err(_), None) => return Err(format!("user `{u}` is not in the image's /etc/passwd")),
    };
    let name = entry.map(|f| f[0]).unwrap_or("");
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group `{g}` is not in the image's /etc/group"))?,
        },
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let mut supplementary: Vec<u32> = Vec::new();
    if g.is_none() && !name.is_empty() {
        for f in &groups {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !supplementary.contains(&n) {
                        supplementary.push(n);
                    }
                }
            }
        }
    }
    let mut all = vec![gid];
    all.extend(supplementary);
    Ok(User {
        uid,
        gid,
        groups: all,
        home: entry
            .map(|f| f[5].to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nml:x:1000:1000::/home/ml:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nml:x:1000:\ndata:x:2000:ml,other\n";

    #[test]
    fn names_numbers_and_groups_resolve_as_docker_does() {
        let ml = resolve_in("ml", PASSWD, GROUP).unwrap();
        assert_eq!(
            (ml.uid, ml.gid, ml.groups.clone()),
            (1000, 1000, vec![1000, 2000])
        );
        assert_eq!(ml.home, "/home/ml");
        let root = resolve_in("0", PASSWD, GROUP).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let unknown = resolve_in("4242:4243", PASSWD, GROUP).unwrap();
        assert_eq!(
            (unknown.uid, unknown.gid, unknown.home.as_str()),
            (4242, 4243, "/")
        );
        let named = resolve_in("ml:data", PASSWD, GROUP).unwrap();
        assert_eq!(
            (named.uid, named.gid, named.groups),
            (1000, 2000, vec![2000])
        );
    }

    #[test]
    fn unknown_names_are_errors_that_name_them() {
        let e = resolve_in("nobody", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("`nobody`"), "{e}");
        let e = resolve_in("ml:nogroup", PASSWD, GROUP).unwrap_err();
        assert!(e.contains("`nogroup`"), "{e}");
    }
}
