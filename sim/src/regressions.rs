//! The list of seeds that once failed (`scenarios/regressions.toml`), replayed by `cargo test`.
//! Each entry names the scenario file, the seed, and one line of what it found.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One seed that once failed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    /// Scenario file, relative to the regressions file's folder.
    pub scenario: String,
    pub seed: u64,
    /// What it found, in one line.
    pub found: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regressions {
    #[serde(default)]
    pub regression: Vec<Regression>,
}

impl Regressions {
    /// Loads the list; errors name the file.
    pub fn load(path: &Path) -> Result<Regressions, crate::ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::ScenarioError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| crate::ScenarioError::Parse {
            file: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// The scenario file of `regression`, resolved against the list's folder.
    pub fn scenario_path(list: &Path, regression: &Regression) -> PathBuf {
        list.parent()
            .unwrap_or(Path::new("."))
            .join(&regression.scenario)
    }
}
