//! Where usernames and passwords come from: a `{n}` pattern or a file.

use std::path::Path;

use anyhow::{Context, bail};

/// A pattern such as `user{n}`; `{n}` is replaced by the subscriber number.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    parts: Vec<String>,
}

impl Pattern {
    pub(crate) fn parse(s: &str) -> Self {
        Self {
            parts: s.split("{n}").map(str::to_owned).collect(),
        }
    }

    pub(crate) fn render_into(&self, n: u64, out: &mut String) {
        out.clear();
        let mut first = true;
        for part in &self.parts {
            if !first {
                // Writing to a String cannot fail.
                let _ = std::fmt::Write::write_fmt(out, format_args!("{n}"));
            }
            first = false;
            out.push_str(part);
        }
    }
}

/// The population of subscribers that requests are drawn from.
#[derive(Clone, Debug)]
pub(crate) enum Users {
    Pattern {
        user: Pattern,
        password: Pattern,
        start: u64,
        count: u64,
    },
    List(Vec<(String, String)>),
}

impl Users {
    /// Loads `username password` lines (separated by a tab or spaces; `#` comments and
    /// blank lines are skipped). A line with only a username uses `default_password`.
    pub(crate) fn from_file(path: &Path, default_password: Option<&str>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading users file {}", path.display()))?;
        let mut list = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, pass) = match line.split_once(['\t', ' ']) {
                Some((u, p)) => (u, p.trim_start_matches(['\t', ' '])),
                None => match default_password {
                    Some(p) => (line, p),
                    None => bail!(
                        "{}:{}: no password and no --password given",
                        path.display(),
                        i + 1
                    ),
                },
            };
            list.push((user.to_owned(), pass.to_owned()));
        }
        if list.is_empty() {
            bail!("users file {} has no users", path.display());
        }
        Ok(Self::List(list))
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Pattern { count, .. } => *count,
            Self::List(l) => l.len() as u64,
        }
    }

    /// Writes the `index`-th (modulo the population) username and password.
    pub(crate) fn get(&self, index: u64, user_out: &mut String, pass_out: &mut String) {
        match self {
            Self::Pattern {
                user,
                password,
                start,
                count,
            } => {
                let n = start + index % count;
                user.render_into(n, user_out);
                password.render_into(n, pass_out);
            }
            Self::List(list) => {
                let i = usize::try_from(index % list.len() as u64).unwrap_or(0);
                if let Some((u, p)) = list.get(i) {
                    user_out.clone_from(u);
                    pass_out.clone_from(p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_renders() {
        let mut s = String::new();
        Pattern::parse("user{n}").render_into(42, &mut s);
        assert_eq!(s, "user42");
        Pattern::parse("{n}-x-{n}").render_into(7, &mut s);
        assert_eq!(s, "7-x-7");
        Pattern::parse("fixed").render_into(7, &mut s);
        assert_eq!(s, "fixed");
    }

    #[test]
    fn pattern_population_wraps() {
        let u = Users::Pattern {
            user: Pattern::parse("u{n}"),
            password: Pattern::parse("p{n}"),
            start: 1,
            count: 3,
        };
        let (mut a, mut b) = (String::new(), String::new());
        u.get(0, &mut a, &mut b);
        assert_eq!((a.as_str(), b.as_str()), ("u1", "p1"));
        u.get(5, &mut a, &mut b);
        assert_eq!((a.as_str(), b.as_str()), ("u3", "p3"));
    }

    #[test]
    fn users_file_parses() {
        let dir = std::env::temp_dir().join(format!("radload-users-{}", std::process::id()));
        std::fs::write(&dir, "# comment\nalice\tsecret one\n\nbob  pw2\ncarol\n").unwrap();
        let u = Users::from_file(&dir, Some("dflt")).unwrap();
        let (mut a, mut b) = (String::new(), String::new());
        u.get(0, &mut a, &mut b);
        assert_eq!((a.as_str(), b.as_str()), ("alice", "secret one"));
        u.get(1, &mut a, &mut b);
        assert_eq!((a.as_str(), b.as_str()), ("bob", "pw2"));
        u.get(2, &mut a, &mut b);
        assert_eq!((a.as_str(), b.as_str()), ("carol", "dflt"));
        assert!(Users::from_file(&dir, None).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}
