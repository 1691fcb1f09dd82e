//! Which database accounts a task migrates (`accounts = "all"` or
//! `accounts = ["app@%", ...]`): created on the destination with the
//! source's password hash and their grants mapped through the route.

use crate::spec::SpecError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An account as MySQL names it: `user@host`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account {
    pub user: String,
    pub host: String,
}

impl Account {
    /// `user@host`, each part optionally quoted (`'app'@'10.%'`); the host is
    /// after the last `@`.
    pub fn parse(field: &str, text: &str) -> Result<Self, SpecError> {
        let unquote = |s: &str| {
            let s = s.trim();
            for q in ['\'', '"', '`'] {
                if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
                    return inner.to_string();
                }
            }
            s.to_string()
        };
        let Some((user, host)) = text.rsplit_once('@') else {
            return Err(SpecError::new(
                field,
                format!("`{text}` is not an account: write user@host, e.g. \"app@%\""),
            ));
        };
        let (user, host) = (unquote(user), unquote(host));
        if user.is_empty() || host.is_empty() {
            return Err(SpecError::new(
                field,
                format!("`{text}`: an account needs a user and a host (anonymous accounts are not migrated)"),
            ));
        }
        if user.len() > 128 || host.len() > 255 || text.contains(['\0', '\n']) {
            return Err(SpecError::new(
                field,
                format!("`{text}` is too long or holds control characters"),
            ));
        }
        Ok(Self { user, host })
    }

    /// `'user'@'host'`, quoted for a statement.
    pub fn quoted(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
        format!("{}@{}", q(&self.user), q(&self.host))
    }

    /// Accounts the server itself, or its packaging, owns.
    pub fn is_system(&self) -> bool {
        matches!(
            self.user.as_str(),
            "root"
                | "mariadb.sys"
                | "mysql"
                | "mysql.sys"
                | "mysql.session"
                | "mysql.infoschema"
                | "debian-sys-maint"
        )
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// `"all"`, or a list of accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountSelection {
    /// Every account but the system ones and those dts connects as.
    All,
    Named(Vec<String>),
}

impl Serialize for AccountSelection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::Named(names) => names.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for AccountSelection {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Selection;
        impl<'de> serde::de::Visitor<'de> for Selection {
            type Value = AccountSelection;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of accounts like [\"app@%\"]")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                match text {
                    "all" => Ok(AccountSelection::All),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(AccountSelection::Named(names))
            }
        }
        deserializer.deserialize_any(Selection)
    }
}

impl AccountSelection {
    /// The named accounts, parsed (none for "all"); an error names `accounts[i]`.
    pub fn named(&self) -> Result<Vec<Account>, SpecError> {
        let Self::Named(names) = self else {
            return Ok(Vec::new());
        };
        if names.is_empty() {
            return Err(SpecError::new(
                "accounts",
                "lists no account: leave it out, or name some",
            ));
        }
        let mut accounts: Vec<Account> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let field = format!("accounts[{i}]");
            let account = Account::parse(&field, name)?;
            if account.is_system() {
                return Err(SpecError::new(
                    field,
                    format!(
                        "`{account}` is a system account, which the destination has its own of"
                    ),
                ));
            }
            if accounts.contains(&account) {
                return Err(SpecError::new(
                    field,
                    format!("`{account}` is listed twice"),
                ));
            }
            accounts.push(account);
        }
        Ok(accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_read_with_or_without_quotes_and_bad_ones_name_their_field() {
        let a = Account::parse("accounts[0]", "'app'@'10.%'").map_err(|e| e.to_string());
        assert_eq!(
            a,
            Ok(Account {
                user: "app".into(),
                host: "10.%".into()
            })
        );
        let named = AccountSelection::Named(vec!["app@%".into(), "root@localhost".into()]);
        let error = named
            .named()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert!(
            error.contains("accounts[1]") && error.contains("system account"),
            "{error}"
        );
        let error = Account::parse("accounts[0]", "app")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("user@host"), "{error}");
        assert_eq!(
            Account::parse("f", "o'k@%").map(|a| a.quoted()).ok(),
            Some("'o''k'@'%'".into())
        );
    }
}
