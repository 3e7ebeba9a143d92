//! Every command the docs give is one that runs: each flag of a `launch-gate <command>`
//! line is one the built CLI knows (`--help`), and each `cargo lambda invoke` names the
//! binary it invokes (cargo lambda asks for it when the project has more than one).

use std::path::Path;
use std::process::Command;

/// README.md, docs/*.md and the example app's README: (path, text).
fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![
        root.join("README.md"),
        root.join("examples/django-app/README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.strip_prefix(root).unwrap().display().to_string(), text)
        })
        .collect()
}

/// Each `launch-gate <sub> ...` command in the pages, up to the end of its code span or
/// line: (page, subcommand, the command's text).
fn launch_gate_commands() -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for (page, text) in pages() {
        for line in text.lines() {
            for (i, _) in line.match_indices("launch-gate ") {
                let rest = &line[i + "launch-gate ".len()..];
                let command: String = rest.split('`').next().unwrap_or("").to_owned();
                let sub = command.split_whitespace().next().unwrap_or("");
                if ["probe", "rollout", "doctor"].contains(&sub) {
                    found.push((page.clone(), sub.to_owned(), command));
                }
            }
        }
    }
    found
}

#[test]
fn every_flag_the_docs_give_is_one_the_cli_knows() {
    let cli = env!("CARGO_BIN_EXE_launch-gate");
    let mut checked = 0;
    for (page, sub, command) in launch_gate_commands() {
        let help = Command::new(cli)
            .args([sub.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{page}: `launch-gate {sub} --help` failed"
        );
        let help = String::from_utf8_lossy(&help.stdout);
        for word in command.split_whitespace().filter(|w| w.starts_with("--")) {
            let flag: String = word
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{page}: `launch-gate {command}` uses {flag}, which `launch-gate {sub}` does not know"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} flags found in the docs");
}

#[test]
fn every_cargo_lambda_invoke_names_the_binary() {
    for (page, text) in pages() {
        for (i, _) in text.match_indices("cargo lambda invoke") {
            let next = text[i + "cargo lambda invoke".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            assert!(
                next.starts_with("bootstrap"),
                "{page}: `cargo lambda invoke {next}...` does not name the binary (bootstrap)"
            );
        }
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_link_between_the_pages_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for (page, text) in pages() {
        let dir = root.join(&page).parent().unwrap().to_path_buf();
        for (i, _) in text.match_indices("](") {
            let target: String = text[i + 2..].chars().take_while(|c| *c != ')').collect();
            if target.starts_with("http") || target.contains(' ') {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                root.join(&page)
            } else {
                dir.join(file)
            };
            assert!(path.exists(), "{page}: the link {target} names no file");
            if let Some(anchor) = anchor {
                let linked = std::fs::read_to_string(&path).unwrap();
                let anchors: Vec<String> = linked
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| slug(l.trim_start_matches('#')))
                    .collect();
                assert!(
                    anchors.iter().any(|a| a == anchor),
                    "{page}: the link {target} names no heading of {}",
                    path.strip_prefix(root).unwrap_or(&path).display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links checked");
}

/// The port the example app publishes: nginx's `listen` in its published server block.
fn published_port() -> u16 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let conf = std::fs::read_to_string(root.join("examples/django-app/deploy/nginx.conf")).unwrap();
    conf.lines()
        .find_map(|l| {
            let l = l.trim().strip_prefix("listen ")?;
            l.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .expect("nginx.conf listens on a port")
}

/// Each number that follows `marker` (and any quotes, colons, equals signs and spaces) in
/// `text`.
fn numbers_after(text: &str, marker: &str) -> Vec<u16> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = text[i + marker.len()..].trim_start_matches(['"', '\\', ':', '=', ' ']);
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn every_health_port_in_the_docs_and_events_is_the_example_apps() {
    // One port everywhere: a snippet that names another makes every probe refused, and
    // every instance abandoned in enforce mode.
    let port = published_port();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = pages();
    for dir in ["events"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            sources.push((path.display().to_string(), text));
        }
    }
    sources.push((
        "template.yaml".into(),
        std::fs::read_to_string(root.join("template.yaml")).unwrap(),
    ));
    let mut seen = 0;
    for (page, text) in &sources {
        // `--port` of the gate's own commands only (the emulator takes one too).
        let probes: String = text
            .lines()
            .filter(|l| l.contains("launch-gate "))
            .collect::<Vec<_>>()
            .join("\n");
        for (marker, text) in [
            ("health_port", text.as_str()),
            ("--port ", probes.as_str()),
            ("ContainerPort:", text.as_str()),
        ] {
            for n in numbers_after(text, marker) {
                seen += 1;
                assert_eq!(
                    n, port,
                    "{page}: {marker} {n}, but the example app publishes {port}"
                );
            }
        }
    }
    assert!(
        seen >= 10,
        "only {seen} ports found: the scan reads nothing"
    );
}
