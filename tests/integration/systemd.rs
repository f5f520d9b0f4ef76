//! The shipped unit file: `systemd-analyze verify` accepts it and its
//! `systemd-analyze security` exposure stays at or below 2.0.

use std::path::Path;
use std::process::Command;

/// The unit with ExecStart pointing at the binary under test (verify
/// checks that the program exists).
fn unit_for_test(dir: &Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/postdesk.service"),
    )
    .expect("systemd/postdesk.service");
    let unit = unit.replace("/usr/local/bin/postdesk", env!("CARGO_BIN_EXE_postdesk"));
    let path = dir.join("postdesk.service");
    std::fs::write(&path, unit).expect("write unit");
    path
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}); run scripts/test.sh, which installs systemd")
        })
}

#[test]
fn the_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let unit = unit.to_str().unwrap();
    let out = analyze(&["verify", unit]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about other units on the host are not ours to judge.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("postdesk")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {stderr}"
    );

    let out = analyze(&["security", "--offline=yes", unit]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for postdesk.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    println!("systemd-analyze security exposure: {level}");
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
}
