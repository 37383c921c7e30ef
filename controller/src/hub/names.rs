//! From a hub Space id (`owner/name`) to the name of its `Space` resource,
//! and back.
//!
//! Hub ids allow capitals, `_` and `.`, and may be long; resource names
//! must be RFC 1123 labels, and the Service the controller names after the
//! Space also wants a letter first (RFC 1035). The mapping is
//! `<owner>-<name>` lowercased, every other character a `-`; when that
//! changed anything, or the name is too long, a hash of the exact id is
//! appended, so ids that differ only in spelling do not meet. Names that
//! still meet (`a-b/c` and `a/b-c`) are refused by the annotation check: the
//! resource carries the exact id in [`HUB_SPACE_ANNOTATION`], which is also
//! how a resource leads back to its hub Space.

use spaceport_runtime::plan::SpaceId;

pub use crate::crd::HUB_SPACE_ANNOTATION;

/// Label on everything the hub writes, so it watches only its own.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The value of [`MANAGED_BY_LABEL`] (and the server-side apply field manager).
pub const MANAGER: &str = "spaceport-hub";

/// Longest resource name made: 53, as Helm does for release names, so that
/// the objects the controller names after a Space stay within 63.
pub const MAX_NAME: usize = 53;

/// The name of the `Space` resource of a hub Space.
pub fn resource_name(space: &SpaceId) -> String {
    let raw = format!("{}-{}", space.owner(), space.name());
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    while name.ends_with('-') {
        name.pop();
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "s-");
    }
    if name == raw && name.len() <= MAX_NAME {
        return name;
    }
    let suffix = format!("{:08x}", fnv1a(space.to_string().as_bytes()) as u32);
    name.truncate(MAX_NAME - suffix.len() - 1);
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        return format!("space-{suffix}");
    }
    format!("{name}-{suffix}")
}

/// The Secret holding a Space's secret values.
pub fn secret_name(resource: &str) -> String {
    format!("{resource}-secrets")
}

pub use crate::crd::hub_space as space_of;

/// Whether the hub may write the resource `name` for `space`: yes when it
/// does not exist or stands for this very Space; else why not.
pub fn check_claim(
    name: &str,
    namespace: &str,
    space: &SpaceId,
    existing: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), String> {
    let Some(annotations) = existing else {
        return Ok(());
    };
    match annotations.get(HUB_SPACE_ANNOTATION) {
        Some(v) if *v == space.to_string() => Ok(()),
        Some(v) => Err(format!(
            "the Space resource {namespace}/{name} already stands for the hub Space {v}; rename this Space"
        )),
        None => Err(format!(
            "a Space resource {namespace}/{name} exists that the hub did not make; rename this Space or remove that resource"
        )),
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, which the names
/// must be (a std hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn id(s: &str) -> SpaceId {
        SpaceId::parse(s).unwrap()
    }

    fn is_rfc1035_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn a_plain_id_maps_to_owner_dash_name() {
        assert_eq!(resource_name(&id("alice/demo")), "alice-demo");
        assert_eq!(resource_name(&id("team-a/chat-bot2")), "team-a-chat-bot2");
    }

    #[test]
    fn capitals_dots_and_underscores_become_dashes_plus_a_hash() {
        let n = resource_name(&id("Alice/My_App.v2"));
        assert!(n.starts_with("alice-my-app-v2-"), "{n}");
        assert!(is_rfc1035_label(&n), "{n}");
        assert_ne!(n, resource_name(&id("alice/my-app-v2")));
        assert_ne!(n, resource_name(&id("alice/My-app.v2")));
    }

    #[test]
    fn names_stay_legal_and_short() {
        for s in [
            "1owner/2name",
            "a/b",
            "x/__..__",
            "very-long-owner-name-that-goes-on/and-a-very-long-space-name-that-goes-on-and-on",
            "ABC/DEF",
        ] {
            let Ok(space) = SpaceId::parse(s) else {
                continue;
            };
            let n = resource_name(&space);
            assert!(is_rfc1035_label(&n), "{s} -> {n}");
            assert!(n.len() <= MAX_NAME, "{s} -> {n}");
            assert_eq!(n, resource_name(&space), "stable");
        }
        let n = resource_name(&id("1owner/x"));
        assert!(n.starts_with("s-1owner-x"), "{n}");
    }

    #[test]
    fn the_name_is_stable_across_builds() {
        // The hash must never change: existing resources are found by it.
        assert_eq!(resource_name(&id("Alice/demo")), "alice-demo-f6c1f75f");
    }

    #[test]
    fn the_annotation_leads_back_and_guards_collisions() {
        let ours = id("a-b/c");
        let theirs = id("a/b-c");
        assert_eq!(resource_name(&ours), resource_name(&theirs));
        let name = resource_name(&ours);
        let mut ann = BTreeMap::new();
        ann.insert(HUB_SPACE_ANNOTATION.to_owned(), ours.to_string());
        assert_eq!(space_of(&ann), Some(ours.clone()));
        assert!(check_claim(&name, "ns", &ours, Some(&ann)).is_ok());
        assert!(check_claim(&name, "ns", &ours, None).is_ok());
        let err = check_claim(&name, "ns", &theirs, Some(&ann)).unwrap_err();
        assert!(
            err.contains("already stands for the hub Space a-b/c"),
            "{err}"
        );
        let err = check_claim(&name, "ns", &ours, Some(&BTreeMap::new())).unwrap_err();
        assert!(err.contains("did not make"), "{err}");
        assert_eq!(space_of(&BTreeMap::new()), None);
    }

    #[test]
    fn the_secret_is_named_after_the_resource() {
        assert_eq!(secret_name("alice-demo"), "alice-demo-secrets");
    }
}
