//! Accounts migrated with the schema (`accounts = "all" | [...]`): each
//! created on the destination as the source defines it (its password hash
//! included, so the same password logs in), with its grants mapped through
//! the route. Grants on objects the task does not select are left out and
//! logged; so are role grants.

use crate::endpoint::Database;
use crate::error::{DriverResultExt, Side, SyncError, SyncResult};
use crate::source::ddl::{tokenize_spanned, Token};
use dts_common::accounts::{Account, AccountSelection};
use dts_common::mysql::{quote_ident, quote_table};
use dts_common::route::Route;
use dts_common::spec::TaskSpec;
use dts_common::SpecError;
use mysql_async::prelude::Queryable;
use tracing::{info, warn};

const CTX: &str = "reading accounts";

fn invalid(field: &str, reason: String) -> SyncError {
    SyncError::InvalidSpec(SpecError::new(field, reason))
}

/// The accounts the task migrates, checked: each named one exists on the
/// source, and (on the task's first run, `check_destination`) none exists
/// on the destination yet.
pub async fn selected(
    spec: &TaskSpec,
    source: &Database,
    destination: &Database,
    check_destination: bool,
) -> SyncResult<Vec<Account>> {
    let Some(selection) = &spec.accounts else {
        return Ok(Vec::new());
    };
    let mut src = source.conn().await?;
    let on_source: Vec<(String, String)> = src
        .query("SELECT User, Host FROM mysql.user ORDER BY User, Host")
        .await
        .on(Side::Source, CTX)?;
    let on_source: Vec<Account> = on_source
        .into_iter()
        .map(|(user, host)| Account { user, host })
        .collect();
    // (field, account) pairs, so a refusal names the entry.
    let chosen: Vec<(String, Account)> = match selection {
        AccountSelection::All => on_source
            .iter()
            .filter(|a| {
                !a.is_system()
                    && !a.user.is_empty()
                    && !a.host.is_empty()
                    && a.user != spec.source.user
                    && a.user != spec.destination.user
            })
            .map(|a| ("accounts".to_string(), a.clone()))
            .collect(),
        AccountSelection::Named(_) => {
            let named = selection.named().map_err(SyncError::InvalidSpec)?;
            let mut chosen = Vec::new();
            for (i, account) in named.into_iter().enumerate() {
                let field = format!("accounts[{i}]");
                if !on_source.contains(&account) {
                    return Err(invalid(
                        &field,
                        format!("the source has no account `{account}`"),
                    ));
                }
                chosen.push((field, account));
            }
            chosen
        }
    };
    if check_destination {
        let mut dst = destination.conn().await?;
        for (field, account) in &chosen {
            let exists: Option<u64> = dst
                .exec_first(
                    "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?",
                    (&account.user, &account.host),
                )
                .await
                .on(Side::Destination, CTX)?;
            if exists.unwrap_or(0) > 0 {
                return Err(invalid(
                    field,
                    format!(
                        "account `{account}` already exists on the destination; drop it there, \
                         or leave it out of `accounts`"
                    ),
                ));
            }
        }
    }
    Ok(chosen.into_iter().map(|(_, a)| a).collect())
}

/// Creates each account on the destination, then its grants; an account
/// already there (a schema sync run again after a crash) is left as it is.
pub async fn migrate(
    route: &Route,
    accounts: &[Account],
    src: &mut mysql_async::Conn,
    dst: &mut mysql_async::Conn,
) -> SyncResult<()> {
    for account in accounts {
        let ctx = format!("migrating account {account}");
        let create: Option<String> = src
            .query_first(format!("SHOW CREATE USER {}", account.quoted()))
            .await
            .on(Side::Source, &ctx)?;
        let create = create.ok_or_else(|| SyncError::Query {
            side: Side::Source,
            context: ctx.clone(),
            detail: "SHOW CREATE USER returned nothing".into(),
        })?;
        let create = if_not_exists(&create);
        dst.query_drop(&create).await.on(Side::Destination, &ctx)?;
        let grants: Vec<String> = src
            .query(format!("SHOW GRANTS FOR {}", account.quoted()))
            .await
            .on(Side::Source, &ctx)?;
        let mut left_out = Vec::new();
        for grant in grants {
            match mapped_grant(route, &grant) {
                Ok(grant) => dst.query_drop(&grant).await.on(Side::Destination, &ctx)?,
                Err(reason) => left_out.push(format!("{grant} ({reason})")),
            }
        }
        info!(%account, "account migrated");
        for grant in left_out {
            warn!(%account, %grant, "grant left out");
        }
    }
    Ok(())
}

fn if_not_exists(create: &str) -> String {
    let upper = create.to_ascii_uppercase();
    match upper.strip_prefix("CREATE USER ") {
        Some(rest) if !rest.starts_with("IF NOT EXISTS") => {
            format!(
                "CREATE USER IF NOT EXISTS {}",
                &create["CREATE USER ".len()..]
            )
        }
        _ => create.to_string(),
    }
}

/// A `GRANT ... ON target TO ...` line with its target mapped through the
/// route; the reason when it is left out.
fn mapped_grant(route: &Route, grant: &str) -> Result<String, &'static str> {
    let tokens = tokenize_spanned(grant);
    let word = |i: usize, w: &str| matches!(tokens.get(i), Some((Token::Word(x), _)) if x.eq_ignore_ascii_case(w));
    let Some(on) = (0..tokens.len()).find(|&i| word(i, "ON")) else {
        return Err("a role grant: roles are not migrated");
    };
    let mut at = on + 1;
    let routine = word(at, "PROCEDURE") || word(at, "FUNCTION") || word(at, "PACKAGE");
    if routine || word(at, "TABLE") {
        at += 1;
    }
    let part = |i: usize| match tokens.get(i) {
        Some((Token::Word(w) | Token::Quoted(w), span)) => Some((Some(w.clone()), span.clone())),
        Some((Token::Symbol('*'), span)) => Some((None, span.clone())),
        _ => None,
    };
    let Some((first, first_span)) = part(at) else {
        return Err("its target does not read as db.object");
    };
    let dotted = matches!(tokens.get(at + 1), Some((Token::Symbol('.'), _)));
    let second = if dotted { part(at + 2) } else { None };
    let (Some(db), Some((object, object_span))) = (first, second) else {
        // `*.*`, or `*` (the current database): global, kept as it is.
        return Ok(grant.to_string());
    };
    let replace = |span: std::ops::Range<usize>, with: String| {
        format!("{}{with}{}", &grant[..span.start], &grant[span.end..])
    };
    match object {
        // db.*: the database, wherever the route sends it.
        None => {
            if !route.selects_database(&db) {
                return Err("on a database the task does not select");
            }
            let to = route.database(&db).unwrap_or(db);
            Ok(replace(first_span, quote_ident(&to)))
        }
        Some(_) if routine => match route.whole_database(&db) {
            Some(to) => Ok(replace(first_span, quote_ident(&to))),
            None => Err("on a routine of a database the task does not select whole"),
        },
        Some(name) => match route.table(&db, &name) {
            Ok(Some(routed)) => Ok(replace(
                first_span.start..object_span.end,
                quote_table(&routed.db, &routed.table),
            )),
            _ => Err("on a table the task does not select"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::test_route as route;

    #[test]
    fn grants_follow_the_route_and_the_rest_is_left_out_with_the_reason() {
        let r = route(
            "[[objects]]\ndatabase = \"shop\"\nto = \"shop_eu\"\n\
             [[objects]]\ndatabase = \"crm\"\ntables = [{ name = \"people\", to = \"persons\" }]",
        );
        let cases = [
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'",
                Ok("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'"),
            ),
            (
                "GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`",
                Ok("GRANT SELECT, INSERT ON `shop_eu`.* TO `app`@`%`"),
            ),
            (
                "GRANT SELECT ON `crm`.`people` TO `app`@`%`",
                Ok("GRANT SELECT ON `crm`.`persons` TO `app`@`%`"),
            ),
            (
                "GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `app`@`%`",
                Ok("GRANT EXECUTE ON PROCEDURE `shop_eu`.`p` TO `app`@`%`"),
            ),
            (
                "GRANT SELECT ON `other`.* TO `app`@`%`",
                Err("on a database the task does not select"),
            ),
            (
                "GRANT SELECT ON `crm`.`secret` TO `app`@`%`",
                Err("on a table the task does not select"),
            ),
            (
                "GRANT `reader` TO `app`@`%`",
                Err("a role grant: roles are not migrated"),
            ),
        ];
        for (grant, expected) in cases {
            assert_eq!(
                mapped_grant(&r, grant),
                expected.map(str::to_string),
                "{grant}"
            );
        }
        assert_eq!(
            if_not_exists("CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '*AB'"),
            "CREATE USER IF NOT EXISTS `app`@`%` IDENTIFIED BY PASSWORD '*AB'"
        );
    }
}
