//! Hardware flavors: the named sizes a Space can ask for.
//!
//! The built-in catalog is Hugging Face's table (same names, CPUs, memory and
//! GPU counts). An operator owns other machines, so the catalog is data: a
//! YAML file can add flavors or redefine built-in ones (matched by name). A
//! flavor's `gpu_model` selects which GPUs may serve it (matched against the
//! device name NVML or the cluster reports). This module holds no I/O but
//! reading that one file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The flavor a Space gets when nobody asked for another.
pub const DEFAULT_FLAVOR: &str = "cpu-basic";

/// One hardware size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flavor {
    /// Name as Spaces and the API spell it, e.g. `t4-small`.
    pub name: String,
    /// Virtual CPUs.
    pub cpu: f64,
    /// Memory in GB (10^9 bytes, as HF's table counts).
    pub memory_gb: f64,
    /// Number of whole GPUs.
    #[serde(default)]
    pub gpus: u32,
    /// Memory of all its GPUs together, in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_gb: Option<f64>,
    /// Which GPUs qualify: a case-insensitive part of the device name
    /// ("T4", "A10G", "A100"). None: any GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
    /// Kubernetes node selector for this flavor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes taints this flavor's pods tolerate (besides the GPU taint
    /// every GPU pod tolerates), to reach nodes kept for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<FlavorToleration>,
    /// Shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A taint a flavor's pods tolerate, in Kubernetes' terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorToleration {
    pub key: String,
    /// `Equal` (the default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; none: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

impl Flavor {
    fn builtin(
        name: &str,
        cpu: f64,
        memory_gb: f64,
        gpus: u32,
        gpu_memory_gb: f64,
        model: &str,
    ) -> Self {
        Flavor {
            name: name.to_owned(),
            cpu,
            memory_gb,
            gpus,
            gpu_memory_gb: (gpus > 0).then_some(gpu_memory_gb),
            gpu_model: (!model.is_empty()).then(|| model.to_owned()),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            description: None,
        }
    }

    /// Millicores, as container engines and Kubernetes count CPU.
    pub fn cpu_millis(&self) -> u64 {
        (self.cpu * 1000.0).round() as u64
    }

    pub fn memory_bytes(&self) -> u64 {
        (self.memory_gb * 1e9).round() as u64
    }

    /// Whether a GPU with this device name may serve the flavor.
    pub fn accepts_gpu(&self, device_name: &str) -> bool {
        self.gpu_model.as_ref().is_none_or(|m| {
            device_name
                .to_ascii_lowercase()
                .contains(&m.to_ascii_lowercase())
        })
    }

    fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(format!(
                "flavor name '{}' must be lowercase letters, digits and '-'",
                self.name
            ));
        }
        if !(self.cpu > 0.0 && self.cpu.is_finite()) {
            return Err(format!("flavor '{}': cpu must be more than 0", self.name));
        }
        if !(self.memory_gb > 0.0 && self.memory_gb.is_finite()) {
            return Err(format!(
                "flavor '{}': memory_gb must be more than 0",
                self.name
            ));
        }
        if self.gpus > 64 {
            return Err(format!("flavor '{}': at most 64 GPUs", self.name));
        }
        if self.gpus == 0 && (self.gpu_model.is_some() || self.gpu_memory_gb.is_some()) {
            return Err(format!(
                "flavor '{}' has no GPUs but names a GPU model or memory",
                self.name
            ));
        }
        Ok(())
    }
}

/// The flavors this installation offers, in a stable order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlavorCatalog {
    pub flavors: Vec<Flavor>,
}

/// What an operator's catalog file holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    /// Keep the built-in flavors (default) or offer only the file's.
    #[serde(default = "yes")]
    include_builtin: bool,
    flavors: Vec<Flavor>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("failed to read the flavor catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to parse the flavor catalog {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid flavor catalog {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Default for FlavorCatalog {
    fn default() -> Self {
        Self::builtin()
    }
}

impl FlavorCatalog {
    /// Hugging Face's flavors.
    pub fn builtin() -> Self {
        let f = Flavor::builtin;
        FlavorCatalog {
            flavors: vec![
                f("cpu-basic", 2.0, 16.0, 0, 0.0, ""),
                f("cpu-upgrade", 8.0, 32.0, 0, 0.0, ""),
                f("t4-small", 4.0, 15.0, 1, 16.0, "T4"),
                f("t4-medium", 8.0, 30.0, 1, 16.0, "T4"),
                f("l4x1", 8.0, 30.0, 1, 24.0, "L4"),
                f("l4x4", 48.0, 186.0, 4, 96.0, "L4"),
                f("l40sx1", 8.0, 62.0, 1, 48.0, "L40S"),
                f("l40sx4", 48.0, 382.0, 4, 192.0, "L40S"),
                f("l40sx8", 192.0, 1534.0, 8, 384.0, "L40S"),
                f("a10g-small", 4.0, 15.0, 1, 24.0, "A10G"),
                f("a10g-large", 12.0, 46.0, 1, 24.0, "A10G"),
                f("a10g-largex2", 24.0, 92.0, 2, 48.0, "A10G"),
                f("a10g-largex4", 48.0, 184.0, 4, 96.0, "A10G"),
                f("a100-large", 12.0, 142.0, 1, 80.0, "A100"),
                f("a100x4", 48.0, 568.0, 4, 320.0, "A100"),
                f("a100x8", 96.0, 1136.0, 8, 640.0, "A100"),
            ],
        }
    }

    /// The built-in flavors extended (or replaced) by an operator's YAML:
    ///
    /// ```yaml
    /// include_builtin: true   # default
    /// flavors:
    ///   - name: rtx4090
    ///     cpu: 16
    ///     memory_gb: 64
    ///     gpus: 1
    ///     gpu_memory_gb: 24
    ///     gpu_model: "RTX 4090"
    /// ```
    pub fn from_yaml(text: &str, path: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = serde_norway::from_str(text).map_err(|e| CatalogError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut catalog = if file.include_builtin {
            Self::builtin()
        } else {
            FlavorCatalog {
                flavors: Vec::new(),
            }
        };
        let mut seen = std::collections::HashSet::new();
        for flavor in file.flavors {
            flavor.check().map_err(|message| CatalogError::Invalid {
                path: path.to_owned(),
                message,
            })?;
            if !seen.insert(flavor.name.clone()) {
                return Err(CatalogError::Invalid {
                    path: path.to_owned(),
                    message: format!("flavor '{}' is defined twice", flavor.name),
                });
            }
            match catalog.flavors.iter_mut().find(|f| f.name == flavor.name) {
                Some(existing) => *existing = flavor,
                None => catalog.flavors.push(flavor),
            }
        }
        if catalog.flavors.is_empty() {
            return Err(CatalogError::Invalid {
                path: path.to_owned(),
                message: "the catalog offers no flavor".into(),
            });
        }
        Ok(catalog)
    }

    pub fn from_file(path: &Path) -> Result<Self, CatalogError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_yaml(&text, &shown)
    }

    pub fn get(&self, name: &str) -> Option<&Flavor> {
        self.flavors.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.flavors.iter().map(|f| f.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_matches_hugging_face() {
        let c = FlavorCatalog::builtin();
        assert_eq!(c.flavors.len(), 16);
        let t4 = c.get("t4-small").unwrap();
        assert_eq!((t4.cpu_millis(), t4.gpus), (4000, 1));
        assert_eq!(c.get("a100x8").unwrap().gpus, 8);
        assert_eq!(c.get("cpu-basic").unwrap().memory_bytes(), 16_000_000_000);
        for f in &c.flavors {
            f.check().unwrap();
        }
    }

    #[test]
    fn gpu_model_selects_devices_by_name() {
        let c = FlavorCatalog::builtin();
        let a10g = c.get("a10g-small").unwrap();
        assert!(a10g.accepts_gpu("NVIDIA A10G"));
        assert!(!a10g.accepts_gpu("Tesla T4"));
        let l4 = c.get("l4x1").unwrap();
        assert!(l4.accepts_gpu("NVIDIA L4"));
    }

    #[test]
    fn operator_file_adds_and_overrides() {
        let yaml = "flavors:\n  - name: rtx4090\n    cpu: 16\n    memory_gb: 64\n    gpus: 1\n    gpu_model: RTX 4090\n  - name: cpu-basic\n    cpu: 1\n    memory_gb: 4\n";
        let c = FlavorCatalog::from_yaml(yaml, "flavors.yaml").unwrap();
        assert_eq!(c.flavors.len(), 17);
        assert_eq!(c.get("cpu-basic").unwrap().cpu, 1.0);
        assert!(
            c.get("rtx4090")
                .unwrap()
                .accepts_gpu("NVIDIA GeForce RTX 4090")
        );
        let only = FlavorCatalog::from_yaml(
            "include_builtin: false\nflavors:\n  - {name: small, cpu: 1, memory_gb: 2}\n",
            "f.yaml",
        )
        .unwrap();
        assert_eq!(only.names(), ["small"]);
    }

    #[test]
    fn operator_file_errors_are_clear() {
        let bad = [
            (
                "flavors:\n  - {name: Big GPU, cpu: 1, memory_gb: 1}\n",
                "lowercase",
            ),
            ("flavors:\n  - {name: x, cpu: 0, memory_gb: 1}\n", "cpu"),
            (
                "flavors:\n  - {name: x, cpu: 1, memory_gb: 1, gpu_model: T4}\n",
                "no GPUs",
            ),
            (
                "flavors:\n  - {name: x, cpu: 1, memory_gb: 1, color: red}\n",
                "unknown field",
            ),
            (
                "flavors:\n  - {name: x, cpu: 1, memory_gb: 1}\n  - {name: x, cpu: 1, memory_gb: 1}\n",
                "twice",
            ),
            ("include_builtin: false\nflavors: []\n", "no flavor"),
        ];
        for (yaml, needle) in bad {
            let err = FlavorCatalog::from_yaml(yaml, "f.yaml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
            assert!(err.contains("f.yaml"));
        }
    }
}
