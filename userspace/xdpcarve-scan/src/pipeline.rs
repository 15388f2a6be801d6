//! Pipelines: which files go to which scanners, in which order (`[[pipelines]]`).

use crate::config::PipelineConfig;
use crate::scanner::Scanner;
use regex::{Regex, RegexSet};
use std::collections::BTreeMap;
use std::sync::Arc;
use xdpcarve_contract::Verdict;

/// Regexes over a file's sniffed type, each matched whole and case-insensitively (as the
/// submission policy's); a file of no sniffed type is matched as the empty string.
#[derive(Clone, Debug)]
pub struct MimeMatcher(RegexSet);

impl MimeMatcher {
    pub fn new(patterns: &[String]) -> Result<MimeMatcher, regex::Error> {
        RegexSet::new(patterns.iter().map(|p| whole(p))).map(MimeMatcher)
    }

    pub fn is_match(&self, mime_type: Option<&str>) -> bool {
        self.0.is_match(mime_type.unwrap_or(""))
    }
}

fn whole(pattern: &str) -> String {
    format!("(?i)^(?:{pattern})$")
}

/// One pipeline, its scanners resolved.
pub struct Pipeline {
    pub name: String,
    matcher: Regex,
    pub scanners: Vec<Arc<Scanner>>,
    /// The chain stops at the first verdict at least this bad.
    pub stop_on: Option<Verdict>,
}

/// A pipeline setting that does not work.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pipelines[{index}].match `{pattern}` is not a regex: {source}")]
    Regex {
        index: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("pipelines[{index}]: scanner `{name}` is not defined (add a [scanners.{name}] table)")]
    UnknownScanner { index: usize, name: String },
    #[error("pipelines[{index}]: no scanners listed")]
    Empty { index: usize },
    #[error("pipelines[{index}].stop_on `{value}`: choose malicious or suspicious")]
    StopOn { index: usize, value: String },
}

impl Pipeline {
    pub fn build(
        index: usize,
        cfg: &PipelineConfig,
        scanners: &BTreeMap<String, Arc<Scanner>>,
    ) -> Result<Pipeline, PipelineError> {
        let matcher = Regex::new(&whole(&cfg.match_)).map_err(|source| PipelineError::Regex {
            index,
            pattern: cfg.match_.clone(),
            source,
        })?;
        if cfg.scanners.is_empty() {
            return Err(PipelineError::Empty { index });
        }
        let chain = cfg
            .scanners
            .iter()
            .map(|name| {
                scanners
                    .get(name)
                    .cloned()
                    .ok_or_else(|| PipelineError::UnknownScanner {
                        index,
                        name: name.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stop_on = match cfg.stop_on.as_deref() {
            None => None,
            Some("malicious") => Some(Verdict::Malicious),
            Some("suspicious") => Some(Verdict::Suspicious),
            Some(other) => {
                return Err(PipelineError::StopOn {
                    index,
                    value: other.to_owned(),
                })
            }
        };
        Ok(Pipeline {
            name: cfg.name.clone().unwrap_or_else(|| format!("pipeline{index}")),
            matcher,
            scanners: chain,
            stop_on,
        })
    }

    pub fn matches(&self, mime_type: Option<&str>) -> bool {
        self.matcher.is_match(mime_type.unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_whole_and_case_insensitive() {
        let m = MimeMatcher::new(&["application/pdf".into(), "application/x-dos.*".into()]).unwrap();
        assert!(m.is_match(Some("Application/PDF")));
        assert!(m.is_match(Some("application/x-dosexec")));
        assert!(!m.is_match(Some("application/pdfx")));
        assert!(!m.is_match(None));
        assert!(MimeMatcher::new(&[".*".into()]).unwrap().is_match(None));
        assert!(!MimeMatcher::new(&[]).unwrap().is_match(Some("a/b")));
    }
}
