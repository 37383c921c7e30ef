//! Reading a YAML tree into a [`SpaceConfig`], collecting every problem.
//!
//! Each key is read on its own, so one bad value never hides another: the
//! decoder keeps going and reports all errors and warnings with the position
//! of the offending key or value. Values are read the way Hugging Face reads
//! them: numbers may be quoted, any scalar is text where text is expected,
//! a single string stands for a one-item list, empty values mean "not set".
//! Unknown keys are kept (as JSON values) with a warning, never an error.

use super::diagnostic::{Code, Diagnostic, Position, did_you_mean};
use super::model::*;
use super::yaml::{Kind, Node, Scalar, Style};
use std::str::FromStr;

/// Every key spaceport reads, as spelled in a README.
pub const KNOWN_KEYS: &[&str] = &[
    "title",
    "emoji",
    "colorFrom",
    "colorTo",
    "sdk",
    "sdk_version",
    "python_version",
    "app_file",
    "app_port",
    "app_build_command",
    "base_path",
    "fullWidth",
    "header",
    "short_description",
    "tags",
    "thumbnail",
    "pinned",
    "license",
    "models",
    "datasets",
    "preload_from_hub",
    "suggested_hardware",
    "suggested_storage",
    "hf_oauth",
    "hf_oauth_scopes",
    "hf_oauth_expiration_minutes",
    "hf_oauth_authorized_org",
    "disable_embedding",
    "startup_duration_timeout",
    "custom_headers",
];

/// OAuth scopes Hugging Face documents; others are passed on with a warning.
pub const KNOWN_OAUTH_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "read-repos",
    "write-repos",
    "manage-repos",
    "inference-api",
    "read-billing",
    "write-discussions",
    "jobs",
    "webhooks",
    "read-mcp",
];

/// Reads the document root. `open` is where the block starts, for errors
/// that belong to no key (a missing `sdk`). Returns the configuration only
/// when no error was found; diagnostics are sorted by position.
pub fn decode(root: Option<&Node>, open: Position) -> (Option<SpaceConfig>, Vec<Diagnostic>) {
    let mut d = Decoder { diags: Vec::new() };
    let config = root.and_then(|root| d.root(root, open));
    let config = match (root, config) {
        (None, _) => {
            d.push(missing_sdk(open));
            None
        }
        (Some(_), c) => c,
    };
    let mut diags = d.diags;
    diags.sort_by_key(|x| (x.position, x.severity));
    let config = config.filter(|_| !diags.iter().any(Diagnostic::is_error));
    (config, diags)
}

fn missing_sdk(at: Position) -> Diagnostic {
    Diagnostic::error(
        Code::MissingSdk,
        at,
        "the configuration does not say which sdk to use",
    )
    .with_key("sdk")
    .with_hint("add a line 'sdk: gradio' (or streamlit, docker, static)")
}

struct Decoder {
    diags: Vec<Diagnostic>,
}

impl Decoder {
    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn error(&mut self, code: Code, node: &Node, key: &str, message: impl Into<String>) {
        self.push(Diagnostic::error(code, node.pos, message).with_key(key));
    }

    fn invalid(&mut self, code: Code, node: &Node, key: &str, why: Invalid) {
        let mut d =
            Diagnostic::error(code, node.pos, format!("{key}: {}", why.message)).with_key(key);
        d.hint = why.hint;
        self.push(d);
    }

    fn wrong_shape(&mut self, node: &Node, key: &str, wanted: &str) {
        self.error(
            Code::InvalidType,
            node,
            key,
            format!("{key} must be {wanted}, not {}", node.shape()),
        );
    }

    /// A scalar's text; `None` for a null. Lists and mappings are errors.
    fn scalar<'n>(&mut self, key: &str, node: &'n Node, wanted: &str) -> Option<&'n Scalar> {
        match &node.kind {
            Kind::Scalar(s) if s.is_null() => None,
            Kind::Scalar(s) => Some(s),
            _ => {
                self.wrong_shape(node, key, wanted);
                None
            }
        }
    }

    /// Text where text is expected; empty text counts as not set.
    fn text(&mut self, key: &str, node: &Node) -> Option<String> {
        let s = self.scalar(key, node, "a single value")?;
        let t = s.text.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    fn bool(&mut self, key: &str, node: &Node) -> Option<bool> {
        let s = self.scalar(key, node, "true or false")?;
        match s.text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            // YAML 1.1 spellings, which PyYAML-written READMEs contain.
            "yes" | "on" => Some(true),
            "no" | "off" => Some(false),
            _ => {
                self.error(
                    Code::InvalidValue,
                    node,
                    key,
                    format!("{key} must be true or false, not '{}'", s.text),
                );
                None
            }
        }
    }

    /// An integer in `min..=max`; a quoted number is accepted as HF does.
    fn int(&mut self, key: &str, node: &Node, min: u64, max: u64) -> Option<u64> {
        let s = self.scalar(key, node, "a whole number")?;
        let t = s.text.trim();
        let Ok(n) = t.parse::<u64>() else {
            let d = Diagnostic::error(
                Code::InvalidValue,
                node.pos,
                format!("{key} must be a whole number, not '{t}'"),
            )
            .with_key(key);
            let hint = if t.starts_with('-') {
                format!("use a number from {min} to {max}")
            } else {
                format!(
                    "write digits only, e.g. {key}: {}",
                    example_number(key, min)
                )
            };
            self.push(d.with_hint(hint));
            return None;
        };
        if n < min || n > max {
            self.push(
                Diagnostic::error(
                    Code::OutOfRange,
                    node.pos,
                    format!("{key} is {n}, outside {min} to {max}"),
                )
                .with_key(key)
                .with_hint(format!("use a number from {min} to {max}")),
            );
            return None;
        }
        Some(n)
    }

    fn choice<T: FromStr>(&mut self, key: &str, node: &Node, names: &[&str]) -> Option<T> {
        let t = self.text(key, node)?;
        if let Ok(v) = t.parse() {
            return Some(v);
        }
        let mut d = Diagnostic::error(
            Code::InvalidValue,
            node.pos,
            format!("{key} must be one of {}, not '{t}'", names.join(", ")),
        )
        .with_key(key);
        if let Some(m) = did_you_mean(&t, names) {
            d = d.with_hint(format!("did you mean '{m}'?"));
        }
        self.push(d);
        None
    }

    /// Text checked by a value type's constructor.
    fn checked<T>(
        &mut self,
        key: &str,
        node: &Node,
        code: Code,
        parse: impl Fn(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        let t = self.text(key, node)?;
        match parse(&t) {
            Ok(v) => Some(v),
            Err(why) => {
                self.invalid(code, node, key, why);
                None
            }
        }
    }

    /// A list of scalars (a single scalar counts as a one-item list).
    fn list<'n>(&mut self, key: &str, node: &'n Node) -> Vec<(String, &'n Node)> {
        let items: Vec<&Node> = match &node.kind {
            Kind::Seq(items) => items.iter().collect(),
            Kind::Scalar(s) if s.is_null() => Vec::new(),
            Kind::Scalar(_) => vec![node],
            Kind::Map(_) => {
                self.wrong_shape(node, key, "a list");
                return Vec::new();
            }
        };
        items
            .into_iter()
            .filter_map(|item| self.text(key, item).map(|t| (t, item)))
            .collect()
    }

    fn checked_list<T>(
        &mut self,
        key: &str,
        node: &Node,
        code: Code,
        parse: impl Fn(&str) -> Result<T, Invalid>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (text, item) in self.list(key, node) {
            match parse(&text) {
                Ok(v) => out.push(v),
                Err(why) => self.invalid(code, item, key, why),
            }
        }
        out
    }

    fn custom_headers(&mut self, node: &Node) -> CustomHeaders {
        let key = "custom_headers";
        let mut headers = CustomHeaders::default();
        let entries = match &node.kind {
            Kind::Map(entries) => entries,
            Kind::Scalar(s) if s.is_null() => return headers,
            _ => {
                self.wrong_shape(node, key, "a mapping of header names to values");
                return headers;
            }
        };
        for (k, v) in entries {
            let Some(name) = k.as_scalar().map(|s| s.text.clone()) else {
                self.wrong_shape(k, key, "a header name");
                continue;
            };
            let full = format!("{key}.{name}");
            match name.as_str() {
                "cross-origin-embedder-policy" => {
                    headers.embedder_policy = self.choice(&full, v, EmbedderPolicy::NAMES);
                }
                "cross-origin-opener-policy" => {
                    headers.opener_policy = self.choice(&full, v, OpenerPolicy::NAMES);
                }
                "cross-origin-resource-policy" => {
                    headers.resource_policy = self.choice(&full, v, ResourcePolicy::NAMES);
                }
                other => {
                    let lower = other.to_ascii_lowercase();
                    let hint = if CustomHeaders::NAMES.contains(&lower.as_str()) {
                        format!("write the header name in lowercase: {lower}")
                    } else {
                        format!("only {} may be set", CustomHeaders::NAMES.join(", "))
                    };
                    self.push(
                        Diagnostic::error(
                            Code::HeaderNotAllowed,
                            k.pos,
                            format!("custom_headers may not set '{other}'"),
                        )
                        .with_key(key)
                        .with_hint(hint),
                    );
                }
            }
        }
        headers
    }

    fn root(&mut self, root: &Node, open: Position) -> Option<SpaceConfig> {
        let Kind::Map(entries) = &root.kind else {
            self.push(
                Diagnostic::error(
                    Code::NotAMapping,
                    root.pos,
                    format!(
                        "the configuration must be a mapping of keys to values, not {}",
                        root.shape()
                    ),
                )
                .with_hint("write one 'key: value' per line, e.g. sdk: gradio"),
            );
            return None;
        };
        // Real headers have a few dozen keys: a list beats a hash map here.
        let mut seen: Vec<(&str, Position)> = Vec::with_capacity(entries.len());
        let mut sdk: Option<Sdk> = None;
        let mut sdk_node: Option<&Node> = None;
        let mut sdk_version: Option<&Node> = None;
        let mut cfg = SpaceConfig::new(Sdk::Gradio);
        for (k, v) in entries {
            let key: &str = match k.as_scalar() {
                Some(s) if is_key_like(s) => &s.text,
                _ => {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidType,
                            k.pos,
                            format!("a key must be a plain word, not {}", k.shape()),
                        )
                        .with_hint("write one 'key: value' per line"),
                    );
                    continue;
                }
            };
            if let Some((_, first)) = seen.iter().find(|(seen_key, _)| *seen_key == key) {
                self.push(
                    Diagnostic::error(Code::DuplicateKey, k.pos, format!("'{key}' is set twice"))
                        .with_key(key)
                        .with_hint(format!("it was first set on line {}; keep one", first.line)),
                );
                continue;
            }
            seen.push((key, k.pos));
            match key {
                "title" => cfg.title = self.text(key, v),
                "emoji" => cfg.emoji = self.text(key, v),
                "colorFrom" => cfg.color_from = self.color(key, v),
                "colorTo" => cfg.color_to = self.color(key, v),
                "sdk" => {
                    sdk_node = Some(v);
                    sdk = self.choice(key, v, Sdk::NAMES);
                    if sdk.is_none() && v.is_null() {
                        // An empty value has no position of its own; its key does.
                        self.push(missing_sdk(k.pos));
                    }
                }
                "sdk_version" => sdk_version = Some(v),
                "python_version" => {
                    cfg.python_version =
                        self.checked(key, v, Code::InvalidValue, PythonVersion::parse)
                }
                "app_file" => {
                    cfg.app_file = self.checked(key, v, Code::InvalidPath, RepoPath::parse)
                }
                "app_port" => cfg.app_port = self.int(key, v, 1, 65_535).map(|n| n as u16),
                "app_build_command" => cfg.app_build_command = self.text(key, v),
                "base_path" => {
                    cfg.base_path = self.checked(key, v, Code::InvalidValue, BasePath::parse)
                }
                "fullWidth" => cfg.full_width = self.bool(key, v),
                "header" => cfg.header = self.choice(key, v, HeaderStyle::NAMES),
                "short_description" => cfg.short_description = self.text(key, v),
                "tags" => cfg.tags = self.list(key, v).into_iter().map(|(t, _)| t).collect(),
                "thumbnail" => cfg.thumbnail = self.text(key, v),
                "pinned" => cfg.pinned = self.bool(key, v),
                "license" => cfg.license = self.text(key, v),
                "models" => {
                    cfg.models = self.checked_list(key, v, Code::InvalidRepoId, RepoId::parse)
                }
                "datasets" => {
                    cfg.datasets = self.checked_list(key, v, Code::InvalidRepoId, RepoId::parse)
                }
                "preload_from_hub" => cfg.preload_from_hub = self.preload(key, v),
                "suggested_hardware" => {
                    cfg.suggested_hardware = self.checked(key, v, Code::InvalidValue, flavor_name)
                }
                "suggested_storage" => {
                    cfg.suggested_storage = self.choice(key, v, StorageTier::NAMES)
                }
                "hf_oauth" => cfg.hf_oauth = self.bool(key, v),
                "hf_oauth_scopes" => {
                    cfg.hf_oauth_scopes = self.oauth_scopes(key, v);
                }
                "hf_oauth_expiration_minutes" => {
                    cfg.hf_oauth_expiration_minutes = self
                        .int(key, v, 1, u64::from(MAX_OAUTH_EXPIRATION_MINUTES))
                        .map(|n| n as u32)
                }
                "hf_oauth_authorized_org" => {
                    cfg.hf_oauth_authorized_org =
                        self.list(key, v).into_iter().map(|(t, _)| t).collect()
                }
                "disable_embedding" => cfg.disable_embedding = self.bool(key, v),
                "startup_duration_timeout" => {
                    cfg.startup_duration_timeout =
                        self.checked(key, v, Code::InvalidValue, DurationSpec::parse)
                }
                "custom_headers" => cfg.custom_headers = self.custom_headers(v),
                _ => {
                    let mut w = Diagnostic::warning(
                        Code::UnknownKey,
                        k.pos,
                        format!(
                            "'{key}' is not a key spaceport knows; it is kept but has no effect"
                        ),
                    )
                    .with_key(key);
                    if let Some(m) = did_you_mean(key, KNOWN_KEYS) {
                        w = w.with_hint(format!("did you mean '{m}'?"));
                    }
                    self.push(w);
                    cfg.extra.insert(key.to_owned(), to_json(v));
                }
            }
        }
        let Some(sdk) = sdk else {
            if sdk_node.is_none() {
                self.push(missing_sdk(open));
            }
            return None;
        };
        cfg.sdk = sdk;
        if let Some(v) = sdk_version {
            cfg.sdk_version = self.sdk_version(sdk, v);
        }
        self.sdk_warnings(&cfg, entries);
        Some(cfg)
    }

    fn color(&mut self, key: &str, node: &Node) -> Option<CardColor> {
        let color = self.checked(key, node, Code::InvalidValue, CardColor::parse)?;
        if color.known().is_none() {
            let mut w = Diagnostic::warning(
                Code::InvalidValue,
                node.pos,
                format!(
                    "{key} '{color}' is not one of {}; it is shown as gray",
                    Color::NAMES.join(", ")
                ),
            )
            .with_key(key);
            if let Some(m) = did_you_mean(color.as_str(), Color::NAMES) {
                w = w.with_hint(format!("did you mean '{m}'?"));
            }
            self.push(w);
        }
        Some(color)
    }

    /// The SDK version is pinned into gradio and streamlit images and must be
    /// a real version there; docker and static Spaces ignore it, so a value
    /// like "latest" only earns a warning (given with the ignored keys).
    fn sdk_version(&mut self, sdk: Sdk, node: &Node) -> Option<SdkVersion> {
        let key = "sdk_version";
        if matches!(sdk, Sdk::Gradio | Sdk::Streamlit) {
            return self.checked(key, node, Code::InvalidValue, SdkVersion::parse);
        }
        let text = self.text(key, node)?;
        SdkVersion::parse(&text).ok()
    }

    /// `preload_from_hub` items are strings ("repo [files] [revision]"); a
    /// mapping with repo_id, filename or files, and revision is read too.
    fn preload(&mut self, key: &str, node: &Node) -> Vec<PreloadEntry> {
        let items: Vec<&Node> = match &node.kind {
            Kind::Seq(items) => items.iter().collect(),
            Kind::Scalar(s) if s.is_null() => Vec::new(),
            Kind::Scalar(_) | Kind::Map(_) => vec![node],
        };
        let mut out = Vec::new();
        for item in items {
            let parsed = match &item.kind {
                Kind::Map(fields) => self.preload_map(key, item, fields),
                _ => self
                    .text(key, item)
                    .map(|t| PreloadEntry::parse(&t).map_err(|why| (item, why))),
            };
            match parsed {
                Some(Ok(entry)) => out.push(entry),
                Some(Err((at, why))) => self.invalid(Code::InvalidValue, at, key, why),
                None => {}
            }
        }
        out
    }

    fn preload_map<'n>(
        &mut self,
        key: &str,
        item: &'n Node,
        fields: &'n [(Node, Node)],
    ) -> Option<Result<PreloadEntry, (&'n Node, Invalid)>> {
        let mut repo: Option<&Node> = None;
        let mut files: Vec<(String, &Node)> = Vec::new();
        let mut revision: Option<&Node> = None;
        for (k, v) in fields {
            match k.as_scalar().map(|s| s.text.as_str()) {
                Some("repo_id") => repo = Some(v),
                Some("filename" | "files" | "allow_patterns") => files.extend(self.list(key, v)),
                Some("revision") => revision = Some(v),
                _ => {
                    let name = k.as_scalar().map_or("?", |s| s.text.as_str()).to_owned();
                    self.push(
                        Diagnostic::error(
                            Code::InvalidValue,
                            k.pos,
                            format!("preload_from_hub entries have no field '{name}'"),
                        )
                        .with_key(key)
                        .with_hint("use repo_id, filename (or files) and revision"),
                    );
                    return None;
                }
            }
        }
        let Some(repo) = repo else {
            self.error(
                Code::InvalidValue,
                item,
                key,
                "this preload_from_hub entry has no repo_id",
            );
            return None;
        };
        let repo_text = self.text(key, repo)?;
        let repo_id = match RepoId::parse(&repo_text) {
            Ok(r) => r,
            Err(why) => return Some(Err((repo, why))),
        };
        let mut paths = Vec::new();
        for (f, at) in files {
            match RepoPath::parse(&f) {
                Ok(p) => paths.push(p.as_str().to_owned()),
                Err(why) => return Some(Err((at, why))),
            }
        }
        let revision = match revision.and_then(|r| self.text(key, r).map(|t| (t, r))) {
            Some((t, at)) => match Revision::parse(&t) {
                Ok(r) => Some(r),
                Err(why) => return Some(Err((at, why))),
            },
            None => None,
        };
        Some(Ok(PreloadEntry {
            repo_id,
            files: paths,
            revision,
        }))
    }

    fn oauth_scopes(&mut self, key: &str, node: &Node) -> Vec<String> {
        let scopes = self.list(key, node);
        for (scope, item) in &scopes {
            if !KNOWN_OAUTH_SCOPES.contains(&scope.as_str()) {
                let mut w = Diagnostic::warning(
                    Code::InvalidValue,
                    item.pos,
                    format!("'{scope}' is not a documented OAuth scope; it is passed on as is"),
                )
                .with_key(key);
                if let Some(m) = did_you_mean(scope, KNOWN_OAUTH_SCOPES) {
                    w = w.with_hint(format!("did you mean '{m}'?"));
                }
                self.push(w);
            }
        }
        scopes.into_iter().map(|(s, _)| s).collect()
    }

    /// Keys that are valid but have no effect with this SDK or setting.
    fn sdk_warnings(&mut self, cfg: &SpaceConfig, entries: &[(Node, Node)]) {
        let pos_of = |name: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == name))
                .map(|(k, _)| k.pos)
        };
        let python_sdk = matches!(cfg.sdk, Sdk::Gradio | Sdk::Streamlit);
        let mut ignored: Vec<(&str, String)> = Vec::new();
        if cfg.app_port.is_some() && cfg.sdk != Sdk::Docker {
            ignored.push((
                "app_port",
                format!("{} Spaces listen on their SDK's port", cfg.sdk),
            ));
        }
        if cfg.app_build_command.is_some() && cfg.sdk != Sdk::Static {
            ignored.push((
                "app_build_command",
                "only static Spaces run a build command".into(),
            ));
        }
        if !python_sdk {
            for key in ["python_version", "sdk_version"] {
                if pos_of(key).is_some() {
                    ignored.push((key, format!("{} Spaces choose their own runtime", cfg.sdk)));
                }
            }
        }
        if cfg.sdk == Sdk::Docker && cfg.app_file.is_some() {
            ignored.push((
                "app_file",
                "docker Spaces start what their Dockerfile says".into(),
            ));
        }
        if cfg.hf_oauth != Some(true) {
            for key in [
                "hf_oauth_scopes",
                "hf_oauth_expiration_minutes",
                "hf_oauth_authorized_org",
            ] {
                if pos_of(key).is_some() {
                    ignored.push((key, "it only applies with hf_oauth: true".into()));
                }
            }
        }
        for (key, why) in ignored {
            if let Some(pos) = pos_of(key) {
                self.push(
                    Diagnostic::warning(
                        Code::IgnoredKey,
                        pos,
                        format!("{key} has no effect: {why}"),
                    )
                    .with_key(key),
                );
            }
        }
        if let Some(v) = &cfg.python_version
            && python_sdk
            && v.minor().is_some_and(|m| !(8..=14).contains(&m))
            && let Some(pos) = pos_of("python_version")
        {
            self.push(
                Diagnostic::warning(
                    Code::InvalidValue,
                    pos,
                    format!("Python {v} is unusual; images exist for 3.8 to 3.14"),
                )
                .with_key("python_version")
                .with_hint("write the version in quotes, e.g. \"3.10\", if a number was meant"),
            );
        }
    }
}

/// A top-level key: one line of printable text of sensible length. Anything
/// else is a mistake, and could not be written back as a YAML key anyway.
fn is_key_like(s: &Scalar) -> bool {
    !s.is_null()
        && s.style != Style::Block
        && s.text.chars().count() <= MAX_KEY_CHARS
        && !s.text.chars().any(char::is_control)
}

/// The longest top-level key accepted.
pub const MAX_KEY_CHARS: usize = 128;

fn example_number(key: &str, min: u64) -> u64 {
    match key {
        "app_port" => u64::from(DEFAULT_APP_PORT),
        "hf_oauth_expiration_minutes" => u64::from(DEFAULT_OAUTH_EXPIRATION_MINUTES),
        _ => min.max(1),
    }
}

/// A hardware flavor name: lowercase letters, digits and dashes. Whether it
/// exists is decided against the operator's catalog, not here.
fn flavor_name(s: &str) -> Result<String, Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Invalid {
            message: format!("'{s}' is not a hardware flavor name"),
            hint: Some("use a flavor such as cpu-basic, t4-small or a10g-large".into()),
        })
    }
}

/// Converts an uninterpreted value to JSON, resolving plain scalars the way
/// YAML 1.2's core schema does.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.kind {
        Kind::Scalar(s) => {
            if s.style != Style::Plain || s.tag.as_deref() == Some("str") {
                return Value::String(s.text.clone());
            }
            if s.is_null() {
                return Value::Null;
            }
            match s.text.as_str() {
                "true" | "True" | "TRUE" => return Value::Bool(true),
                "false" | "False" | "FALSE" => return Value::Bool(false),
                _ => {}
            }
            if let Ok(i) = s.text.parse::<i64>() {
                return Value::from(i);
            }
            if s.text.bytes().any(|b| b.is_ascii_digit())
                && let Ok(f) = s.text.parse::<f64>()
                && let Some(n) = serde_json::Number::from_f64(f)
            {
                return Value::Number(n);
            }
            Value::String(s.text.clone())
        }
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k.as_scalar() {
                        Some(s) => s.text.clone(),
                        None => to_json(k).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}
