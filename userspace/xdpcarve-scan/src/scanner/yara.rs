//! YARA in process (yara-x): rules compiled once at start, swapped for a fresh compile on SIGHUP;
//! a scan in flight keeps the rules it started with. Scans run on tokio's blocking pool, so a slow
//! rule set never stalls the runtime. Any matching rule makes the file malicious, unless the rule
//! says otherwise in its meta: `verdict = "suspicious"`.

use super::{Answer, ScannerError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use xdpcarve_contract::Verdict;

pub struct YaraScanner {
    path: PathBuf,
    rules: Mutex<Arc<yara_x::Rules>>,
}

fn compile(path: &Path) -> Result<yara_x::Rules, String> {
    let source = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut compiler = yara_x::Compiler::new();
    compiler.add_source(source.as_str()).map_err(|e| e.to_string())?;
    Ok(compiler.build())
}

impl YaraScanner {
    pub fn load(name: &str, path: &Path) -> Result<YaraScanner, ScannerError> {
        let rules = compile(path).map_err(|why| ScannerError::Rules {
            name: name.to_owned(),
            path: path.to_path_buf(),
            why,
        })?;
        Ok(YaraScanner {
            path: path.to_path_buf(),
            rules: Mutex::new(Arc::new(rules)),
        })
    }

    pub async fn reload(&self, name: &str) {
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || compile(&path)).await {
            Ok(Ok(rules)) => {
                *self.rules.lock().expect("rules") = Arc::new(rules);
                tracing::info!("scanners.{name}: YARA rules {} reloaded", self.path.display());
            }
            Ok(Err(why)) => tracing::error!(
                "scanners.{name}: the YARA rules {} do not compile ({why}); the old rules stay",
                self.path.display()
            ),
            Err(e) => tracing::error!("scanners.{name}: reload failed: {e}"),
        }
    }

    pub async fn scan(&self, path: &Path) -> Answer {
        let rules = self.rules.lock().expect("rules").clone();
        let path = path.to_path_buf();
        match tokio::task::spawn_blocking(move || scan_file(&rules, &path)).await {
            Ok(a) => a,
            Err(e) => Answer::error(format!("the YARA scan failed: {e}")),
        }
    }
}

fn scan_file(rules: &yara_x::Rules, path: &Path) -> Answer {
    let mut scanner = yara_x::Scanner::new(rules);
    let results = match scanner.scan_file(path) {
        Ok(r) => r,
        Err(e) => return Answer::error(format!("YARA: {e}")),
    };
    let mut verdict = Verdict::Clean;
    let mut signatures = Vec::new();
    for rule in results.matching_rules() {
        let says_suspicious = rule
            .metadata()
            .any(|(k, v)| k == "verdict" && matches!(v, yara_x::MetaValue::String("suspicious")));
        verdict = verdict.max(if says_suspicious {
            Verdict::Suspicious
        } else {
            Verdict::Malicious
        });
        signatures.push(rule.identifier().to_owned());
    }
    Answer::flagged(verdict, signatures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matching_rules_name_the_verdict_and_reload_swaps_them() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("r.yar");
        std::fs::write(&rules, r#"rule Evil { strings: $a = "EVIL" condition: $a }"#).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"xx EVIL xx MAYBE").unwrap();
        let y = YaraScanner::load("y", &rules).unwrap();
        let a = y.scan(&file).await;
        assert_eq!((a.verdict, a.signatures), (Verdict::Malicious, vec!["Evil".into()]));

        std::fs::write(
            &rules,
            r#"rule Maybe { meta: verdict = "suspicious" strings: $a = "MAYBE" condition: $a }"#,
        )
        .unwrap();
        y.reload("y").await;
        let a = y.scan(&file).await;
        assert_eq!((a.verdict, a.signatures), (Verdict::Suspicious, vec!["Maybe".into()]));

        std::fs::write(&rules, "rule broken {").unwrap();
        y.reload("y").await;
        assert_eq!(
            y.scan(&file).await.verdict,
            Verdict::Suspicious,
            "a bad reload keeps the old rules"
        );
        assert!(YaraScanner::load("y", &rules).is_err());
    }
}
