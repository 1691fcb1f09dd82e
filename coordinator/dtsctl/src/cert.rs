//! `dtsctl cert`: the files a TLS cluster runs on, made locally.

use crate::CertCommand;
use dts_common::secret::Keyring;
use dts_common::tls::pki::{Authority, PkiError, Validity};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Secret(#[from] dts_common::secret::SecretError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub fn run(cmd: CertCommand) -> Result<(), CertError> {
    match cmd {
        CertCommand::Ca { dir, days } => {
            let authority = Authority::generate("dts cluster CA", Validity::days(days))?;
            authority.write(&dir)?;
            println!("wrote {0}/ca.pem and {0}/ca.key", dir.display());
        }
        CertCommand::Issue {
            dir,
            name,
            role,
            hosts,
            days,
        } => {
            let authority = Authority::load(&dir)?;
            let issued = authority.issue(&name, role, &hosts, Validity::days(days))?;
            issued.write(&dir, &name)?;
            println!(
                "wrote {0}/{name}.pem and {0}/{name}.key (role {role})",
                dir.display()
            );
        }
        CertCommand::SecretsKey { file } => {
            let line = Keyring::new_key_line()?;
            let io = |source| CertError::Io {
                path: file.display().to_string(),
                source,
            };
            use std::os::unix::fs::OpenOptionsExt;
            let mut handle = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&file)
                .map_err(io)?;
            writeln!(handle, "{line}").map_err(io)?;
            let id = line.split_whitespace().next().unwrap_or_default();
            println!(
                "added key {id} to {}; it seals from the coordinators' next start",
                file.display()
            );
        }
    }
    Ok(())
}
