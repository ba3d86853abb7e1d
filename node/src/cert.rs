//! `shardai cert`: a CA and node certificates for the cluster bus's mutual TLS
//! (`--cluster-tls-cert-file`, `--cluster-tls-key-file`, `--cluster-tls-ca-cert-file`).
//!
//! Owns writing those files (EC P-256 keys, made with rcgen on ring); it must not start a
//! server or overwrite a file. The CA's key is written too, to sign more node
//! certificates with any tool; keep it off the nodes.

use std::{io::Write, net::IpAddr, os::unix::fs::OpenOptionsExt, path::PathBuf};

use clap::Parser;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, date_time_ymd,
};

/// `shardai cert --out DIR [--nodes N] [--years Y] [--ip IP]...`
#[derive(Debug, Parser)]
#[command(
    name = "shardai cert",
    bin_name = "shardai cert",
    about = "Writes a CA (ca.crt, ca.key) and node certificates (node-1.crt, node-1.key, ...) \
             for the cluster bus's mutual TLS. Give each node its own certificate and key, and \
             ca.crt: --cluster-tls-cert-file node-1.crt --cluster-tls-key-file node-1.key \
             --cluster-tls-ca-cert-file ca.crt. Nodes check each other's chain to the CA, not \
             the names in the certificates."
)]
struct Args {
    /// Folder to write into (created if missing; existing files are never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Node certificates to make.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Years the certificates stay valid.
    #[arg(long, default_value_t = 10)]
    years: u16,
    /// An IP address to name in every node certificate (repeatable; for other tools: the
    /// bus does not check names).
    #[arg(long = "ip")]
    ips: Vec<IpAddr>,
}

/// Runs `shardai cert ARGS` (`args[0]` is `cert`); the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let a = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match write_all(&a) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!("shardai cert: {e}");
            1
        }
    }
}

/// The current year (by the system clock), roughly: certificates start at the beginning of
/// the year before it, so a clock near New Year does not make them start in the future.
fn this_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    1970 + (secs / 31_556_952) as i32
}

fn write_all(a: &Args) -> Result<Vec<PathBuf>, String> {
    if a.nodes == 0 || a.years == 0 {
        return Err("--nodes and --years must be at least 1".into());
    }
    std::fs::create_dir_all(&a.out)
        .map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
    let mut names = vec!["ca".to_string()];
    names.extend((1..=a.nodes).map(|i| format!("node-{i}")));
    for n in &names {
        for ext in ["crt", "key"] {
            let p = a.out.join(format!("{n}.{ext}"));
            if p.exists() {
                return Err(format!("{} exists; not overwritten", p.display()));
            }
        }
    }
    let year = this_year();
    let valid = |p: &mut CertificateParams| {
        p.not_before = date_time_ymd(year - 1, 1, 1);
        p.not_after = date_time_ymd(year + i32::from(a.years), 1, 1);
    };
    let err = |e: rcgen::Error| e.to_string();
    let mut written = Vec::new();

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "shardai cluster bus CA");
    valid(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    written.push(write(a, "ca.crt", &ca_cert.pem(), 0o644)?);
    written.push(write(a, "ca.key", &ca_key.serialize_pem(), 0o600)?);
    let signer = Issuer::new(ca, ca_key);

    for i in 1..=a.nodes {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(vec![format!("node-{i}")]).map_err(err)?;
        p.subject_alt_names
            .extend(a.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.distinguished_name
            .push(DnType::CommonName, format!("shardai node {i}"));
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        valid(&mut p);
        let cert = p.signed_by(&key, &signer).map_err(err)?;
        written.push(write(a, &format!("node-{i}.crt"), &cert.pem(), 0o644)?);
        written.push(write(
            a,
            &format!("node-{i}.key"),
            &key.serialize_pem(),
            0o600,
        )?);
    }
    Ok(written)
}

/// Writes a new file `name` in the output folder with `mode`.
fn write(a: &Args, name: &str, text: &str, mode: u32) -> Result<PathBuf, String> {
    let p = a.out.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&p)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(p)
}
