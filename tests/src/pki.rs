//! A test cluster's certificates: a CA of its own, a peer certificate per
//! coordinator, a worker certificate per worker, an admin and a viewer, and
//! a secrets key ring, all in the cluster's temporary directory.

use dts_common::secret::Keyring;
use dts_common::tls::pki::{Authority, Validity};
use dts_common::tls::{Role, TlsFiles, Transport};
use std::path::{Path, PathBuf};

pub struct TestPki {
    dir: PathBuf,
    authority: Authority,
}

impl TestPki {
    /// A new CA in `dir` (created), with `admin`, `viewer` and `secrets.key`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let authority = Authority::generate("dts test CA", Validity::days(2))?;
        authority.write(dir)?;
        let pki = Self {
            dir: dir.to_path_buf(),
            authority,
        };
        pki.issue("admin", Role::Admin)?;
        pki.issue("viewer", Role::Viewer)?;
        std::fs::write(pki.secrets_key(), Keyring::new_key_line()? + "\n")?;
        Ok(pki)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn secrets_key(&self) -> PathBuf {
        self.dir.join("secrets.key")
    }

    /// Writes `<name>.pem` and `<name>.key`, valid for a day; returns their files.
    pub fn issue(&self, name: &str, role: Role) -> anyhow::Result<TlsFiles> {
        self.authority
            .issue(name, role, &[], Validity::days(1))?
            .write(&self.dir, name)?;
        Ok(self.files(name))
    }

    /// The files of an issued certificate.
    pub fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            ca: Some(self.dir.join("ca.pem")),
            cert: Some(self.dir.join(format!("{name}.pem"))),
            key: Some(self.dir.join(format!("{name}.key"))),
        }
    }

    /// `--tls-ca ... --tls-cert ... --tls-key ...` for a new certificate.
    pub fn flags(&self, name: &str, role: Role) -> anyhow::Result<Vec<String>> {
        Ok(flags_of(&self.issue(name, role)?))
    }

    /// A client transport as `name` (issued before).
    pub fn transport(&self, name: &str) -> anyhow::Result<Transport> {
        Ok(Transport::from_settings(&self.files(name), false)?)
    }
}

pub fn flags_of(files: &TlsFiles) -> Vec<String> {
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    vec![
        "--tls-ca".into(),
        path(&files.ca),
        "--tls-cert".into(),
        path(&files.cert),
        "--tls-key".into(),
        path(&files.key),
    ]
}
