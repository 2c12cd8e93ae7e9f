//! `wangge user …` and `wangge token …`: accounts administered on the configured store,
//! also while servers run (they see changes within the token cache's few seconds).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use wangge::auth;
use wangge::domain::{Grant, UserRole};
use wangge::store::{self, Store};

/// Where the accounts are.
#[derive(Args, Clone)]
pub struct AccountStoreArgs {
    /// postgres://… for PostGIS, sqlite://path for the embedded store.
    #[arg(long, env = "DATABASE_URL", default_value = store::DEFAULT_URL, global = true)]
    pub database_url: String,
}

#[derive(Args, Clone)]
pub struct GrantArgs {
    /// city_admin, planner, dispatcher, grid_member, department_handler or auditor.
    #[arg(long)]
    role: UserRole,
    /// Region (or grid) code the role covers, with everything under it.
    #[arg(long)]
    scope: String,
}

impl GrantArgs {
    fn grant(&self) -> Result<Grant> {
        if self.scope.is_empty() || !self.scope.chars().all(|c| c.is_ascii_digit()) {
            bail!("--scope {:?} is not a region code", self.scope);
        }
        Ok(Grant {
            role: self.role,
            scope: self.scope.clone(),
        })
    }

    /// The grant, if its scope names a loaded region or a grid that exists or existed: a
    /// mistyped code would otherwise grant nothing, silently, or later something else.
    async fn existing_grant(&self, store: &dyn Store) -> Result<Grant> {
        let grant = self.grant()?;
        let scope = grant.scope.as_str();
        let is_region = store
            .regions(Some(scope))
            .await?
            .iter()
            .any(|r| r.code == scope);
        if is_region || !store.grid_history(scope).await?.is_empty() {
            return Ok(grant);
        }
        if store.regions(None).await?.is_empty() {
            bail!(
                "--scope {scope}: no regions are loaded yet, so it cannot be checked; load them \
                 first (`wangge import regions FILE --level county|township|community`, or \
                 start `wangge serve --demo` once for the Binzhou demo)"
            );
        }
        bail!("--scope {scope} names no loaded region and no grid (`wangge export` lists them)")
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Creates a user with one grant.
    Add {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
        /// Read the password from the first line of stdin (else: token-only account).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Adds a grant.
    Grant {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Removes a grant.
    Revoke {
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Sets a new password (from stdin) and revokes the user's tokens.
    Password { name: String },
    /// Lists users and their grants.
    List,
}

/// The longest-lived token the CLI issues (ten years).
const MAX_TOKEN_DAYS: i64 = 3650;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issues a token and prints only the token (for systems calling the API).
    Issue {
        name: String,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long, default_value = "30d")]
        ttl: humantime::Duration,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Revokes every live token of a user.
    RevokeAll { name: String },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn open(s: &AccountStoreArgs) -> Result<std::sync::Arc<dyn Store>> {
    store::open(&s.database_url)
        .await
        .with_context(|| format!("opening the store at {}", s.database_url))
}

fn read_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.chars().count() < 8 {
        bail!("the password needs at least 8 characters");
    }
    Ok(password)
}

pub fn user(command: UserCommand, s: AccountStoreArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&s).await?;
        match command {
            UserCommand::Add {
                name,
                grant,
                password_stdin,
            } => {
                let grant = grant.existing_grant(store.as_ref()).await?;
                let hash = if password_stdin {
                    Some(auth::hash_password(&read_password()?)?)
                } else {
                    None
                };
                store.create_user(&name, hash.as_deref()).await?;
                store.grant(&name, &grant).await?;
                audit(
                    store.as_ref(),
                    "user_add",
                    &name,
                    Some(&grant.scope),
                    json!({"role": grant.role, "password": hash.is_some()}),
                )
                .await?;
                eprintln!("added {name} as {} of {}", grant.role, grant.scope);
            }
            UserCommand::Grant { name, grant } => {
                let grant = grant.existing_grant(store.as_ref()).await?;
                store.grant(&name, &grant).await?;
                audit(
                    store.as_ref(),
                    "user_grant",
                    &name,
                    Some(&grant.scope),
                    json!({"role": grant.role}),
                )
                .await?;
                eprintln!("{name} is now also {} of {}", grant.role, grant.scope);
            }
            UserCommand::Revoke { name, grant } => {
                let grant = grant.grant()?;
                if !store.revoke_grant(&name, &grant).await? {
                    bail!("{name} does not hold {} of {}", grant.role, grant.scope);
                }
                audit(
                    store.as_ref(),
                    "user_revoke",
                    &name,
                    Some(&grant.scope),
                    json!({"role": grant.role}),
                )
                .await?;
                eprintln!("{name} is no longer {} of {}", grant.role, grant.scope);
            }
            UserCommand::Password { name } => {
                let hash = auth::hash_password(&read_password()?)?;
                store.set_password(&name, &hash).await?;
                let n = store.revoke_user_tokens(&name).await?;
                audit(
                    store.as_ref(),
                    "user_password",
                    &name,
                    None,
                    json!({"tokens_revoked": n}),
                )
                .await?;
                eprintln!("password of {name} changed; {n} tokens revoked");
            }
            UserCommand::List => {
                for u in store.users().await? {
                    let grants: Vec<String> = u
                        .grants
                        .iter()
                        .map(|g| format!("{}@{}", g.role, g.scope))
                        .collect();
                    println!(
                        "{}\t{}\t{}",
                        u.name,
                        if u.password_hash.is_some() {
                            "password"
                        } else {
                            "token-only"
                        },
                        grants.join(",")
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Audits a CLI command on an account: under `scope` (the grant it changed), or the
/// account's broadest grant (the city's code when it holds none), so the auditors who
/// see the account's logins see this too.
async fn audit(
    store: &dyn Store,
    action: &str,
    user: &str,
    scope: Option<&str>,
    detail: serde_json::Value,
) -> Result<()> {
    let actor = std::env::var("WANGGE_ACTOR").unwrap_or_else(|_| "cli".into());
    let scope = match scope {
        Some(s) => s.to_string(),
        None => {
            let grants = store
                .user(user)
                .await?
                .map(|u| u.grants)
                .unwrap_or_default();
            let city = wangge::workflow::audit::stored_city(store).await?;
            wangge::workflow::audit::account_scope(&grants, &city)
        }
    };
    let mut detail = detail;
    detail["via"] = serde_json::json!("cli");
    wangge::workflow::audit::record(
        store,
        &actor,
        action,
        format!("users/{user}"),
        &scope,
        detail,
    )
    .await?;
    Ok(())
}

pub fn token(command: TokenCommand, s: AccountStoreArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open(&s).await?;
        match command {
            TokenCommand::Issue { name, ttl, label } => {
                if store.user(&name).await?.is_none() {
                    bail!("no user {name:?} (add it with `wangge user add`)");
                }
                let ttl = chrono::Duration::from_std(*ttl)
                    .ok()
                    .filter(|t| *t <= chrono::Duration::days(MAX_TOKEN_DAYS))
                    .with_context(|| format!("--ttl must be at most {MAX_TOKEN_DAYS} days"))?;
                let issued = auth::issue_token(&name, &label, ttl);
                store.store_token(&issued.record).await?;
                audit(
                    store.as_ref(),
                    "token_issue",
                    &name,
                    None,
                    json!({"label": label, "expires_at": issued.record.expires_at}),
                )
                .await?;
                println!("{}", issued.secret);
            }
            TokenCommand::RevokeAll { name } => {
                // A misspelt name is said, not answered with "0 tokens revoked".
                if store.user(&name).await?.is_none() {
                    bail!("no user {name:?}");
                }
                let n = store.revoke_user_tokens(&name).await?;
                audit(
                    store.as_ref(),
                    "token_revoke",
                    &name,
                    None,
                    json!({"tokens_revoked": n}),
                )
                .await?;
                eprintln!("{n} tokens of {name} revoked");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
