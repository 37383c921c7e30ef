//! The typed Space configuration and its value types.
//!
//! Field names serialize exactly as the README keys are spelled
//! (`colorFrom`, `fullWidth`, the rest snake_case), so the same type reads
//! front matter, JSON from the API and the Kubernetes CRD. Constrained
//! strings are newtypes whose constructors validate, and serde goes through
//! the same constructors (`try_from = "String"`), so a config that came from
//! JSON is held to the same rules as one parsed from YAML. Absent keys stay
//! `None` (not the default) so that a config serializes back to what was
//! written; the `effective_*` methods give the defaults.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Default port a Space's app listens on (gradio, docker).
pub const DEFAULT_APP_PORT: u16 = 7860;
/// Default Python for gradio and streamlit images.
pub const DEFAULT_PYTHON_VERSION: &str = "3.10";
/// Default longest start before a Space is unhealthy: 30 minutes.
pub const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 30 * 60;
/// Default and maximum lifetime of an OAuth token, in minutes.
pub const DEFAULT_OAUTH_EXPIRATION_MINUTES: u32 = 480;
pub const MAX_OAUTH_EXPIRATION_MINUTES: u32 = 43_200;

/// The configuration of a Space, as written in its README front matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpaceConfig {
    /// Display title; the repo name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Card emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// Card gradient start.
    #[serde(default, rename = "colorFrom", skip_serializing_if = "Option::is_none")]
    pub color_from: Option<CardColor>,
    /// Card gradient end.
    #[serde(default, rename = "colorTo", skip_serializing_if = "Option::is_none")]
    pub color_to: Option<CardColor>,
    /// How the Space is built and run.
    pub sdk: Sdk,
    /// gradio / streamlit version pinned in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<SdkVersion>,
    /// Base Python for gradio and streamlit ("3.x" or "3.x.y").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<PythonVersion>,
    /// Entry file, relative to the repo root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_file: Option<RepoPath>,
    /// Port the container listens on (docker SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub app_port: Option<u16>,
    /// Static only: command whose output is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_build_command: Option<String>,
    /// First URL path opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<BasePath>,
    /// Layout of the embedding page.
    #[serde(default, rename = "fullWidth", skip_serializing_if = "Option::is_none")]
    pub full_width: Option<bool>,
    /// Embedding page header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderStyle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Model repos the Space uses; mounted read-only in the HF cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<RepoId>,
    /// Dataset repos the Space uses; mounted read-only in the HF cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<RepoId>,
    /// Repos (or files of them) made available in the HF cache before start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preload_from_hub: Vec<PreloadEntry>,
    /// Hardware flavor hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_hardware: Option<String>,
    /// Persistent storage hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_storage: Option<StorageTier>,
    /// OAuth sign-in for the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf_oauth: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hf_oauth_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 43200))]
    pub hf_oauth_expiration_minutes: Option<u32>,
    /// Organizations whose members may sign in (a string or a list in YAML).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hf_oauth_authorized_org: Vec<String>,
    /// Forbid iframe embedding by other origins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_embedding: Option<bool>,
    /// Longest allowed start, like "30m" or "1h".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_duration_timeout: Option<DurationSpec>,
    /// Cross-origin isolation headers; no other header may be set.
    #[serde(default, skip_serializing_if = "CustomHeaders::is_empty")]
    pub custom_headers: CustomHeaders,
    /// Keys spaceport does not interpret, kept as they were.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl SpaceConfig {
    /// A minimal configuration: only the SDK set.
    pub fn new(sdk: Sdk) -> Self {
        SpaceConfig {
            title: None,
            emoji: None,
            color_from: None,
            color_to: None,
            sdk,
            sdk_version: None,
            python_version: None,
            app_file: None,
            app_port: None,
            app_build_command: None,
            base_path: None,
            full_width: None,
            header: None,
            short_description: None,
            tags: Vec::new(),
            thumbnail: None,
            pinned: None,
            license: None,
            models: Vec::new(),
            datasets: Vec::new(),
            preload_from_hub: Vec::new(),
            suggested_hardware: None,
            suggested_storage: None,
            hf_oauth: None,
            hf_oauth_scopes: Vec::new(),
            hf_oauth_expiration_minutes: None,
            hf_oauth_authorized_org: Vec::new(),
            disable_embedding: None,
            startup_duration_timeout: None,
            custom_headers: CustomHeaders::default(),
            extra: BTreeMap::new(),
        }
    }

    /// The entry file: `app_file`, else `app.py` (`index.html` for static).
    pub fn effective_app_file(&self) -> RepoPath {
        self.app_file.clone().unwrap_or_else(|| {
            RepoPath(match self.sdk {
                Sdk::Static => "index.html".into(),
                _ => "app.py".into(),
            })
        })
    }

    /// The port the app listens on inside its container.
    pub fn effective_app_port(&self) -> u16 {
        match self.sdk {
            Sdk::Docker => self.app_port.unwrap_or(DEFAULT_APP_PORT),
            Sdk::Streamlit => 8501,
            Sdk::Gradio | Sdk::Static => DEFAULT_APP_PORT,
        }
    }

    pub fn effective_python_version(&self) -> PythonVersion {
        self.python_version
            .clone()
            .unwrap_or_else(|| PythonVersion(DEFAULT_PYTHON_VERSION.into()))
    }

    pub fn effective_base_path(&self) -> &str {
        self.base_path.as_ref().map_or("/", |b| b.as_str())
    }

    pub fn effective_startup_timeout_secs(&self) -> u64 {
        self.startup_duration_timeout
            .as_ref()
            .map_or(DEFAULT_STARTUP_TIMEOUT_SECS, DurationSpec::seconds)
    }

    pub fn embedding_disabled(&self) -> bool {
        self.disable_embedding.unwrap_or(false)
    }
}

/// Generates `FromStr`, `Display`, `as_str` and the list of names for a
/// string enum whose names are exactly its YAML spellings.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// How a Space is built and run.
    Sdk { Gradio => "gradio", Streamlit => "streamlit", Docker => "docker", Static => "static" }
);

string_enum!(
    /// Card colors.
    Color {
        Red => "red", Yellow => "yellow", Green => "green", Blue => "blue",
        Indigo => "indigo", Purple => "purple", Pink => "pink", Gray => "gray",
    }
);

string_enum!(
    /// The header of the embedding page.
    HeaderStyle { Mini => "mini", Default => "default" }
);

string_enum!(
    /// Persistent storage tiers.
    StorageTier { Small => "small", Medium => "medium", Large => "large" }
);

string_enum!(
    /// `cross-origin-embedder-policy` values.
    EmbedderPolicy {
        UnsafeNone => "unsafe-none", RequireCorp => "require-corp", Credentialless => "credentialless",
    }
);

string_enum!(
    /// `cross-origin-opener-policy` values.
    OpenerPolicy {
        UnsafeNone => "unsafe-none", SameOriginAllowPopups => "same-origin-allow-popups",
        SameOrigin => "same-origin", NoopenerAllowPopups => "noopener-allow-popups",
    }
);

string_enum!(
    /// `cross-origin-resource-policy` values.
    ResourcePolicy { SameSite => "same-site", SameOrigin => "same-origin", CrossOrigin => "cross-origin" }
);

/// The only headers a Space may set on its responses (lowercase, as HF spells them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomHeaders {
    #[serde(
        default,
        rename = "cross-origin-embedder-policy",
        skip_serializing_if = "Option::is_none"
    )]
    pub embedder_policy: Option<EmbedderPolicy>,
    #[serde(
        default,
        rename = "cross-origin-opener-policy",
        skip_serializing_if = "Option::is_none"
    )]
    pub opener_policy: Option<OpenerPolicy>,
    #[serde(
        default,
        rename = "cross-origin-resource-policy",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_policy: Option<ResourcePolicy>,
}

impl CustomHeaders {
    pub const NAMES: &'static [&'static str] = &[
        "cross-origin-embedder-policy",
        "cross-origin-opener-policy",
        "cross-origin-resource-policy",
    ];

    pub fn is_empty(&self) -> bool {
        self == &CustomHeaders::default()
    }

    /// The headers as (name, value) pairs, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if let Some(v) = self.embedder_policy {
            out.push((Self::NAMES[0], v.as_str()));
        }
        if let Some(v) = self.opener_policy {
            out.push((Self::NAMES[1], v.as_str()));
        }
        if let Some(v) = self.resource_policy {
            out.push((Self::NAMES[2], v.as_str()));
        }
        out
    }
}

/// Why a constrained string was refused: a sentence and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub hint: Option<String>,
}

impl Invalid {
    fn new(message: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// A JSON schema of plain string for a type that serializes as one.
macro_rules! string_schema {
    ($name:ident) => {
        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    };
}

/// Defines a validated string newtype that serde builds through `parse`.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        string_schema!($name);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s).map_err(|e| e.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A Python version "3", "3.x" or "3.x.y", kept as written.
    PythonVersion
);

impl PythonVersion {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let parts: Vec<&str> = s.split('.').collect();
        let numeric = parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        if !numeric || parts.len() > 3 {
            return Err(Invalid::new(format!("'{s}' is not a Python version"))
                .hint("write it as 3.x or 3.x.y, e.g. python_version: \"3.10\""));
        }
        if parts[0] != "3" {
            return Err(Invalid::new(format!("Python {s} is not supported"))
                .hint("Spaces run Python 3, e.g. python_version: \"3.10\""));
        }
        Ok(PythonVersion(s.to_owned()))
    }

    /// The minor version, if written.
    pub fn minor(&self) -> Option<u32> {
        self.0.split('.').nth(1).and_then(|m| m.parse().ok())
    }
}

checked_string!(
    /// A card color: one of [`Color`]'s names on Hugging Face, though real
    /// READMEs also carry other color words ("teal"); those are kept, and
    /// shown as gray.
    CardColor
);

impl CardColor {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Invalid::new(format!("'{s}' is not a color name"))
                .hint(format!("use one of {}", Color::NAMES.join(", "))));
        }
        Ok(CardColor(s.to_owned()))
    }

    /// The known color this names, if any.
    pub fn known(&self) -> Option<Color> {
        self.0.parse().ok()
    }
}

checked_string!(
    /// A package version as pip understands it ("4.44.1", "1.32.0rc1").
    /// It goes into a generated Dockerfile, so only version characters pass.
    SdkVersion
);

impl SdkVersion {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_digit())
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-' | b'_' | b'!')
            });
        if !ok {
            return Err(Invalid::new(format!("'{s}' is not a package version"))
                .hint("write a version such as 4.44.1"));
        }
        Ok(SdkVersion(s.to_owned()))
    }
}

checked_string!(
    /// A relative path inside the repository, normalized (no `.` parts, `/` separators).
    /// It can never name anything outside the repository.
    RepoPath
);

impl RepoPath {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::new("the path is empty"));
        }
        if s.chars().any(char::is_control) {
            return Err(Invalid::new("the path contains control characters"));
        }
        if s.starts_with('/') || s.contains('\\') {
            return Err(
                Invalid::new(format!("'{s}' is not a path inside the repository"))
                    .hint("write a path relative to the repository root with '/' separators"),
            );
        }
        let mut parts = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(Invalid::new(format!("'{s}' leads outside the repository"))
                        .hint("paths may not contain '..'"));
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(Invalid::new(format!("'{s}' names no file")));
        }
        Ok(RepoPath(parts.join("/")))
    }

    /// The folder holding the file ("" at the root).
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit_once('/').map_or(self.0.as_str(), |(_, f)| f)
    }
}

checked_string!(
    /// A URL path starting with `/`, opened first. Never a protocol-relative
    /// or absolute URL, so it cannot redirect visitors elsewhere.
    BasePath
);

impl BasePath {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if !s.starts_with('/') {
            return Err(Invalid::new(format!("'{s}' does not start with '/'"))
                .hint("write a path such as /docs"));
        }
        if s.starts_with("//") || s.contains('\\') {
            return Err(Invalid::new(format!("'{s}' could lead to another site"))
                .hint("use a path on the Space itself, such as /docs"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(
                Invalid::new("the path contains spaces or control characters")
                    .hint("percent-encode them"),
            );
        }
        if s.split(['/', '?', '#']).any(|p| p == "..") {
            return Err(Invalid::new(format!("'{s}' contains '..'")));
        }
        Ok(BasePath(s.to_owned()))
    }
}

checked_string!(
    /// A hub repository id: `name` or `namespace/name`.
    RepoId
);

impl RepoId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let hint =
            "a repository id looks like 'owner/name' using letters, digits, '-', '_' and '.'";
        let (ns, name) = match s.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, s),
        };
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 96
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !p.contains("--")
                && !p.contains("..")
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        };
        if ns.is_some_and(|n| !part_ok(n)) || !part_ok(name) {
            return Err(Invalid::new(format!("'{s}' is not a valid repository id")).hint(hint));
        }
        Ok(RepoId(s.to_owned()))
    }

    pub fn namespace(&self) -> Option<&str> {
        self.0.split_once('/').map(|(ns, _)| ns)
    }

    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or(self.0.as_str(), |(_, n)| n)
    }
}

checked_string!(
    /// A git revision: a branch, tag or commit.
    Revision
);

impl Revision {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
            && !s.contains("..")
            && !s.starts_with(['/', '-', '.']);
        if !ok {
            return Err(Invalid::new(format!("'{s}' is not a valid revision"))
                .hint("use a branch name, a tag or a commit hash"));
        }
        Ok(Revision(s.to_owned()))
    }
}

checked_string!(
    /// A duration such as "30m", "1h" or "1h30m" (units s, m, h, d).
    DurationSpec
);

impl DurationSpec {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        seconds_of(s).map(|_| DurationSpec(s.to_owned()))
    }

    pub fn seconds(&self) -> u64 {
        seconds_of(&self.0).unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECS)
    }
}

fn seconds_of(s: &str) -> Result<u64, Invalid> {
    let bad = || {
        Invalid::new(format!("'{s}' is not a duration"))
            .hint("write a number with a unit, e.g. 30m, 1h or 1h30m")
    };
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    if total == 0 {
        return Err(Invalid::new(format!("'{s}' is zero")).hint("give the app some time to start"));
    }
    Ok(total)
}

/// One `preload_from_hub` entry: `repo_id [file1,file2] [revision]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PreloadEntry {
    pub repo_id: RepoId,
    /// Files (or glob patterns) to fetch; empty means the whole repo.
    pub files: Vec<String>,
    pub revision: Option<Revision>,
}

impl PreloadEntry {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let tokens: Vec<&str> = s.split_whitespace().collect();
        let hint =
            "write 'owner/model', 'owner/model file1,file2' or 'owner/model file1,file2 revision'";
        if tokens.is_empty() || tokens.len() > 3 {
            return Err(Invalid::new(format!("'{s}' is not a preload entry")).hint(hint));
        }
        let repo_id = RepoId::parse(tokens[0])?;
        let mut files = Vec::new();
        // "*" alone stands for every file, so a revision can follow it.
        if let Some(list) = tokens.get(1).filter(|l| **l != "*") {
            for f in list.split(',').filter(|f| !f.is_empty()) {
                files.push(RepoPath::parse(f)?.0);
            }
        }
        let revision = tokens.get(2).map(|r| Revision::parse(r)).transpose()?;
        Ok(PreloadEntry {
            repo_id,
            files,
            revision,
        })
    }
}

string_schema!(PreloadEntry);

impl TryFrom<String> for PreloadEntry {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PreloadEntry::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<PreloadEntry> for String {
    fn from(p: PreloadEntry) -> String {
        p.to_string()
    }
}

impl fmt::Display for PreloadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.repo_id.as_str())?;
        if !self.files.is_empty() || self.revision.is_some() {
            // A revision needs a file list before it; "*" means every file.
            let files = if self.files.is_empty() {
                "*".to_owned()
            } else {
                self.files.join(",")
            };
            write!(f, " {files}")?;
        }
        if let Some(r) = &self.revision {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_versions() {
        assert!(PythonVersion::parse("3.10").is_ok());
        assert!(PythonVersion::parse("3.9.13").is_ok());
        assert!(PythonVersion::parse("3").is_ok());
        assert_eq!(PythonVersion::parse("3.10").unwrap().minor(), Some(10));
        assert!(PythonVersion::parse("2.7").is_err());
        assert!(PythonVersion::parse("3.10-slim").is_err());
        assert!(PythonVersion::parse("3..1").is_err());
        assert!(PythonVersion::parse("3.1.2.3").is_err());
    }

    #[test]
    fn sdk_versions_cannot_inject() {
        assert!(SdkVersion::parse("4.44.1").is_ok());
        assert!(SdkVersion::parse("1.32.0rc1").is_ok());
        for bad in ["", "latest", "4.0 && curl x", "4.0\nRUN x", "4;rm", ">=4"] {
            assert!(SdkVersion::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repo_paths_stay_inside() {
        assert_eq!(
            RepoPath::parse("./src//app.py").unwrap().as_str(),
            "src/app.py"
        );
        assert_eq!(RepoPath::parse("src/app.py").unwrap().parent(), "src");
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a\\b",
            "",
            ".",
            "a\nb",
            "a/..",
        ] {
            assert!(RepoPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn base_paths_cannot_leave_the_space() {
        assert!(BasePath::parse("/docs").is_ok());
        assert!(BasePath::parse("/?__theme=dark").is_ok());
        for bad in [
            "docs",
            "//evil.example",
            "/\\evil",
            "/a b",
            "/../x",
            "http://x",
        ] {
            assert!(BasePath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repo_ids() {
        for good in [
            "gpt2",
            "openai/whisper-large-v3",
            "a_b/c.d-e",
            "stabilityai/sd-2.1",
        ] {
            assert!(RepoId::parse(good).is_ok(), "{good} refused");
        }
        for bad in [
            "",
            "a/b/c",
            "../x",
            "a--b",
            "-a",
            "a.",
            "a b",
            "https://x.co/y",
            "a/",
        ] {
            assert!(RepoId::parse(bad).is_err(), "{bad:?} accepted");
        }
        let id = RepoId::parse("org/model").unwrap();
        assert_eq!((id.namespace(), id.name()), (Some("org"), "model"));
    }

    #[test]
    fn durations() {
        assert_eq!(DurationSpec::parse("30m").unwrap().seconds(), 1800);
        assert_eq!(DurationSpec::parse("1h30m").unwrap().seconds(), 5400);
        assert_eq!(DurationSpec::parse("90s").unwrap().seconds(), 90);
        for bad in ["", "30", "1x", "m", "0m", "99999999999999999999d", "1.5h"] {
            assert!(DurationSpec::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn preload_entries_round_trip() {
        let e = PreloadEntry::parse("org/m a.bin,sub/b.json v1.0").unwrap();
        assert_eq!(e.files, ["a.bin", "sub/b.json"]);
        assert_eq!(e.revision.as_ref().unwrap().as_str(), "v1.0");
        assert_eq!(PreloadEntry::parse(&e.to_string()).unwrap(), e);
        let whole = PreloadEntry::parse("openai/whisper-large-v3").unwrap();
        assert!(whole.files.is_empty());
        assert_eq!(whole.to_string(), "openai/whisper-large-v3");
        assert!(PreloadEntry::parse("org/m ../x").is_err());
        assert!(PreloadEntry::parse("a b c d").is_err());
    }

    #[test]
    fn serde_applies_the_same_rules() {
        let ok: Result<SpaceConfig, _> =
            serde_json::from_str(r#"{"sdk":"gradio","app_file":"../../x"}"#);
        assert!(ok.is_err());
        let cfg: SpaceConfig =
            serde_json::from_str(r#"{"sdk":"docker","app_port":8080,"colorFrom":"red","x":1}"#)
                .unwrap();
        assert_eq!(cfg.effective_app_port(), 8080);
        assert_eq!(cfg.extra["x"], serde_json::json!(1));
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn the_json_schema_names_every_readme_key() {
        let schema = serde_json::to_value(schemars::schema_for!(SpaceConfig)).unwrap();
        let props = schema["properties"].as_object().expect("properties");
        for key in crate::config::decode::KNOWN_KEYS {
            assert!(props.contains_key(*key), "{key} missing from the schema");
        }
        assert_eq!(schema["required"], serde_json::json!(["sdk"]));
        assert_eq!(
            props["python_version"]["type"],
            serde_json::json!(["string", "null"])
        );
        assert_eq!(props["preload_from_hub"]["items"]["type"], "string");
    }
}
