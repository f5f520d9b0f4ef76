//! TLS material for an instance, made with the `openssl` command (about
//! 15 ms): a private CA, a server certificate for localhost / 127.0.0.1 /
//! ::1, and a second certificate from the same CA whose name matches
//! nothing a client would ask for ("certificate does not match" tests).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The name in the wrong certificate.
pub const WRONG_NAME: &str = "wrong.invalid";

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// Writes `ca.crt`, `ca.key`, `server.key`, `server-chain.crt`,
/// `wrong.key` and `wrong-chain.crt` into `dir`.
pub fn generate(dir: &Path, mail_host: &str) -> io::Result<()> {
    openssl(
        dir,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=postdesk test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    leaf(
        dir,
        "server",
        "localhost",
        &format!("DNS:localhost,DNS:{mail_host},IP:127.0.0.1,IP:::1"),
    )?;
    leaf(dir, "wrong", WRONG_NAME, &format!("DNS:{WRONG_NAME}"))?;
    for key in ["ca.key", "server.key", "wrong.key"] {
        fs::set_permissions(dir.join(key), fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// `NAME.key` and `NAME-chain.crt` (leaf + CA), signed by the CA in `dir`.
fn leaf(dir: &Path, name: &str, cn: &str, san: &str) -> io::Result<()> {
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    openssl(
        dir,
        &[
            "-keyout",
            &key,
            "-out",
            &crt,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-addext",
            &format!("subjectAltName={san}"),
        ],
    )?;
    let mut chain = fs::read(dir.join(&crt))?;
    chain.extend(fs::read(dir.join("ca.crt"))?);
    fs::write(dir.join(format!("{name}-chain.crt")), chain)?;
    fs::remove_file(dir.join(crt))
}

/// `openssl req -x509` with an EC P-256 key, valid for ten years.
fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-nodes", "-days", "3650"])
        .args(EC)
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run openssl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl req {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
