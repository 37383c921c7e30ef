//! The git hooks each repo gets when it is created.
//!
//! `post-receive` does two things. It appends what the push changed
//! (`<old> <new> <ref>`, as git hands it to the hook) to the file named by
//! [`ENV_PUSH_REPORT`], which is how the server learns exactly which refs
//! one push moved, even with other pushes running at once. And, in Space
//! repos only, when `refs/heads/main` moved it prints a short banner, which
//! git relays to the pusher as `remote:` lines.

use super::RepoKind;

/// Set by the server for `git receive-pack`: the file the hook reports to.
pub const ENV_PUSH_REPORT: &str = "SPACEPORT_PUSH_REPORT";
/// The URL of the Space's app, shown to the pusher after a push to main.
pub const ENV_SPACE_URL: &str = "SPACEPORT_SPACE_URL";
/// The URL of the Space's build logs, shown to the pusher after a push to main.
pub const ENV_LOGS_URL: &str = "SPACEPORT_LOGS_URL";
/// The user name of the pusher, as the hub authenticated it.
pub const ENV_PUSHER: &str = "SPACEPORT_PUSHER";

const REPORT: &str = r#"#!/bin/sh
# post-receive, written by spaceport when this repository was created.
# It records what this push changed for the server and, for a Space whose
# main branch moved, tells the pusher that a build is queued.
report="${SPACEPORT_PUSH_REPORT:-}"
main_new=
while read -r old new ref; do
	if [ -n "$report" ]; then
		printf '%s %s %s\n' "$old" "$new" "$ref" >>"$report"
	fi
	if [ "$ref" = refs/heads/main ]; then
		main_new=$new
	fi
done
"#;

const BANNER: &str = r#"
# A deleted branch has an all-zero new id: no banner for that.
case "$main_new" in
*[!0]*)
	echo
	printf 'spaceport: main is now at %s\n' "$main_new"
	echo 'spaceport: build queued'
	if [ -n "${SPACEPORT_LOGS_URL:-}" ]; then
		printf 'spaceport: build logs: %s\n' "$SPACEPORT_LOGS_URL"
	fi
	if [ -n "${SPACEPORT_SPACE_URL:-}" ]; then
		printf 'spaceport: your Space: %s\n' "$SPACEPORT_SPACE_URL"
	fi
	echo
	;;
esac
"#;

/// The text of the `post-receive` hook for a repo of this kind.
pub(crate) fn post_receive(kind: RepoKind) -> String {
    let mut script = REPORT.to_owned();
    if kind == RepoKind::Space {
        script.push_str(BANNER);
    }
    script.push_str("exit 0\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spaces_print_a_banner() {
        assert!(post_receive(RepoKind::Space).contains("build queued"));
        assert!(!post_receive(RepoKind::Model).contains("build queued"));
        assert!(!post_receive(RepoKind::Dataset).contains("build queued"));
        for kind in RepoKind::ALL {
            let script = post_receive(kind);
            assert!(script.starts_with("#!/bin/sh\n"));
            assert!(script.contains(ENV_PUSH_REPORT));
            assert!(script.ends_with("exit 0\n"));
        }
    }
}
