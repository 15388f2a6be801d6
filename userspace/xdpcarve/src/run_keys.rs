//! The run's own flags as config keys: `[engine]`, `[live]`, `[read]` and `[output]`.
//!
//! Each key is its flag's name in snake case (`[engine] max_flows` is `--max-flows`), with one
//! inversion: `[live] pin = false` is `--no-pin`. The keys of a config file become flags placed
//! before the command line's own, and clap parses both with `args_override_self`: a flag on the
//! command line wins over the file, the file over the default, and every value goes through the
//! same parser as its flag (so `max_file_size = "1G"` and `--max-file-size 1G` mean one thing).
//! `--dump-config` prints these sections from the parsed values, defaults included.

use std::ffi::OsString;

use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, ArgMatches, Command};

/// The sections and their keys, in the order `--dump-config` prints them.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "engine",
        &[
            "hashes",
            "max_file_size",
            "max_flows",
            "reassembly_depth",
            "stream_buffer",
            "memory",
            "overlap",
            "checksums",
            "http_ports",
            "smtp_ports",
            "idle_timeout",
            "ports_only",
            "hash_threads",
            "overload_high_water",
            "overload_low_water",
            "seed",
        ],
    ),
    (
        "live",
        &[
            "interface",
            "xdp_mode",
            "queues",
            "capture_memory",
            "frame_size",
            "umem_frames",
            "fill_ring",
            "rx_ring",
            "rx_batch",
            "pin",
        ],
    ),
    ("read", &["simulate_mbps", "workers"]),
    ("output", &["quiet", "color"]),
];

/// `[live] pin` is the flag `--no-pin` turned around.
const INVERTED: &[(&str, &str)] = &[("pin", "no_pin")];

fn arg_id(key: &str) -> &str {
    INVERTED.iter().find(|(k, _)| *k == key).map_or(key, |(_, id)| id)
}

fn is_switch(cmd: &Command, id: &str) -> bool {
    cmd.get_arguments()
        .find(|a| a.get_id() == id)
        .is_some_and(|a| matches!(a.get_action(), ArgAction::SetTrue))
}

/// The sections of a config file's text that this module owns, as flags. `reading` drops
/// `[live] interface` (a `-r` on the command line reads a file even with a service's config).
pub fn flags_from(tables: &[(&str, &toml::Table)], cmd: &Command, reading: bool) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for (section, table) in tables {
        let keys = SECTIONS
            .iter()
            .find(|(s, _)| s == section)
            .map(|(_, k)| *k)
            .ok_or_else(|| anyhow!("[{section}] is not a section of the run's settings"))?;
        for (key, value) in table.iter() {
            if !keys.contains(&key.as_str()) {
                bail!(
                    "unknown key `{section}.{key}`: the keys of [{section}] are {}",
                    keys.join(", ")
                );
            }
            if reading && key == "interface" {
                continue;
            }
            let id = arg_id(key);
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .ok_or_else(|| anyhow!("`{section}.{key}` has no flag (a bug)"))?;
            let flag = format!("--{}", arg.get_long().unwrap_or(id));
            if is_switch(cmd, id) {
                let toml::Value::Boolean(b) = value else {
                    bail!("`{section}.{key} = {value}`: give true or false");
                };
                // A switch is either given or not; `pin = false` gives `--no-pin`.
                let inverted = id != key;
                if *b != inverted {
                    out.push(OsString::from(flag));
                }
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s.clone()),
                        toml::Value::Integer(i) => Ok(i.to_string()),
                        other => Err(anyhow!("`{section}.{key}`: `{other}` is not a list item here")),
                    })
                    .collect::<Result<Vec<_>>>()?
                    .join(","),
                other => bail!("`{section}.{key} = {other}`: give a string or a number"),
            };
            // The flag's own parser, so the message names the key rather than the flag.
            let alone = Command::new("xdpcarve").no_binary_name(true).arg(
                clap::Arg::new("value")
                    .allow_hyphen_values(true)
                    .value_parser(arg.get_value_parser().clone()),
            );
            if let Err(e) = alone.try_get_matches_from([text.as_str()]) {
                let message = e.to_string();
                let message = message.trim().trim_start_matches("error: ");
                let message = message.lines().next().unwrap_or_default();
                let message = message.split_once("'<value>': ").map_or(message, |(_, m)| m);
                bail!("`{section}.{key} = {value}`: {message}");
            }
            out.push(OsString::from(format!("{flag}={text}")));
        }
    }
    Ok(out)
}

/// The effective values of every key, as TOML, from the parsed command line.
pub fn dump(matches: &ArgMatches, cmd: &Command) -> Result<String> {
    let mut root = toml::Table::new();
    for (section, keys) in SECTIONS {
        let mut table = toml::Table::new();
        for key in keys.iter() {
            let id = arg_id(key);
            let raw = matches
                .get_raw(id)
                .and_then(|mut v| v.next())
                .map(|v| v.to_string_lossy().into_owned());
            let Some(raw) = raw else { continue };
            let value = if is_switch(cmd, id) {
                let on = raw == "true";
                toml::Value::Boolean(if id != *key { !on } else { on })
            } else if let Ok(i) = raw.parse::<i64>() {
                toml::Value::Integer(i)
            } else if let Ok(f) = raw
                .parse::<f64>()
                .map_err(|_| ())
                .and_then(|f| f.is_finite().then_some(f).ok_or(()))
            {
                toml::Value::Float(f)
            } else {
                toml::Value::String(raw)
            };
            table.insert(key.to_string(), value);
        }
        root.insert(section.to_string(), toml::Value::Table(table));
    }
    Ok(toml::to_string(&root)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Flags of the egress and scan parts named before the scheme (`--section-key` for
    /// `[section] key`), and the keys they set.
    const OLDER_NAMES: &[(&str, &str)] = &[
        ("files_log", "files_log.path"),
        ("state_dir", "sensor.state_dir"),
        ("webhook_batch_items", "webhook.batch_max_items"),
        ("webhook_batch_delay", "webhook.batch_max_delay"),
        ("no_dedup", "dedup.enabled"),
        ("submit_mime", "policy.mime_types"),
        ("scans_log", "scan.scans_log"),
        ("alerts_log", "scan.alerts_log"),
        // The name users know from other Redis clients (and the fleet issue's).
        ("redis_url", "fleet.redis"),
    ];

    /// Flags that are not settings: what this one run does or reads.
    const NOT_SETTINGS: &[&str] = &["help", "version", "read", "config", "dump_config", "check"];

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn every_key_is_a_flag_of_the_command() {
        let cmd = crate::cli::Cli::command();
        for (section, keys) in SECTIONS {
            for key in keys.iter() {
                let id = arg_id(key);
                assert!(
                    cmd.get_arguments().any(|a| a.get_id() == id),
                    "{section}.{key} has no flag"
                );
            }
        }
    }

    /// The README's promise: every flag is a config key, named by the scheme or listed.
    #[test]
    fn every_flag_has_a_config_key() {
        let cmd = crate::cli::Cli::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if NOT_SETTINGS.contains(&id) || SECTIONS.iter().any(|(_, keys)| keys.iter().any(|k| arg_id(k) == id)) {
                continue;
            }
            let key = OLDER_NAMES
                .iter()
                .find(|(f, _)| *f == id)
                .map(|(_, k)| k.to_string())
                .unwrap_or_else(|| {
                    let (section, key) = id.split_once('_').unwrap_or((id, ""));
                    format!("{section}.{key}")
                });
            let (section, key) = key.split_once('.').unwrap();
            // A key the file does not know is an `unknown field` error; a known one with a
            // dummy value at most a type error.
            let err = crate::config::parse_file(&format!("[{section}]\n{key} = 0\n"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                !err.contains("unknown field") && !err.contains("unknown key"),
                "--{}: no key {section}.{key}: {err}",
                arg.get_long().unwrap_or(id)
            );
        }
    }

    #[test]
    fn keys_become_flags_through_the_flags_own_parsers() {
        let cmd = crate::cli::Cli::command();
        let engine = table("max_flows = 1000\nhttp_ports = [80, 3128]\nmax_file_size = \"1G\"\nports_only = true\n");
        let live = table("pin = false\nqueues = \"0-1\"\ninterface = \"eth9\"\n");
        let flags = flags_from(&[("engine", &engine), ("live", &live)], &cmd, false).unwrap();
        let flags: Vec<String> = flags.iter().map(|f| f.to_string_lossy().into_owned()).collect();
        assert_eq!(
            flags,
            [
                "--http-ports=80,3128",
                "--max-file-size=1G",
                "--max-flows=1000",
                "--ports-only",
                "--interface=eth9",
                "--no-pin",
                "--queues=0-1"
            ]
        );
        let reading = flags_from(&[("live", &live)], &cmd, true).unwrap();
        assert!(!reading.iter().any(|f| f.to_string_lossy().starts_with("--interface")));
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        let cmd = crate::cli::Cli::command();
        let err = flags_from(&[("engine", &table("max_flowz = 3\n"))], &cmd, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("engine.max_flowz") && err.contains("max_flows"), "{err}");
        let err = flags_from(&[("engine", &table("max_file_size = \"12X\"\n"))], &cmd, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`engine.max_file_size = \"12X\"`:") && err.contains("unit"),
            "{err}"
        );
        let err = flags_from(&[("engine", &table("ports_only = \"yes\"\n"))], &cmd, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("true or false"), "{err}");
        let err = flags_from(&[("engine", &table("overlap = \"middle\"\n"))], &cmd, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("engine.overlap") && err.contains("middle"), "{err}");
    }

    #[test]
    fn the_command_line_wins_and_the_dump_shows_every_key() {
        let cmd = crate::cli::Cli::command().args_override_self(true);
        let engine = table("max_flows = 1000\nhashes = \"md5\"\n");
        let live = table("pin = false\n");
        let mut argv: Vec<OsString> = vec!["xdpcarve".into()];
        argv.extend(flags_from(&[("engine", &engine), ("live", &live)], &cmd, true).unwrap());
        argv.extend(["-r", "x.pcap", "--max-flows", "7"].map(OsString::from));
        let matches = cmd.clone().try_get_matches_from(argv).unwrap();
        assert_eq!(matches.get_one::<usize>("max_flows"), Some(&7));
        assert_eq!(matches.get_one::<String>("hashes").map(String::as_str), Some("md5"));
        use clap::parser::ValueSource;
        assert_eq!(matches.value_source("max_flows"), Some(ValueSource::CommandLine));
        assert_eq!(
            matches.value_source("hashes"),
            Some(ValueSource::CommandLine),
            "placed before it"
        );
        let dump = dump(&matches, &cmd).unwrap();
        let back = table(&dump);
        assert_eq!(back["engine"]["max_flows"].as_integer(), Some(7));
        assert_eq!(back["engine"]["hashes"].as_str(), Some("md5"));
        assert_eq!(back["engine"]["max_file_size"].as_str(), Some("256M"));
        assert_eq!(back["live"]["pin"].as_bool(), Some(false));
        assert_eq!(back["output"]["color"].as_str(), Some("auto"));
        // What the dump prints reads back as the same settings.
        let tables: Vec<(&str, &toml::Table)> = SECTIONS
            .iter()
            .map(|(s, _)| (*s, back[*s].as_table().unwrap()))
            .collect();
        let mut again: Vec<OsString> = vec!["xdpcarve".into(), "-r".into(), "x.pcap".into()];
        again.extend(flags_from(&tables, &cmd, true).unwrap());
        let matches = cmd.clone().try_get_matches_from(again).unwrap();
        assert_eq!(super::dump(&matches, &cmd).unwrap(), dump);
    }
}
