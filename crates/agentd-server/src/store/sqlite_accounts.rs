//! [`AccountStore`] on SQLite: users, memberships, sessions, invitations and the
//! audit log.
//! PostgreSQL's `postgres_accounts.rs` runs the same statements.

use sqlx::AssertSqlSafe;

use super::shared::{AUDIT_COLS, INVITATION_COLS, MEMBERSHIP_COLS, SESSION_COLS, USER_COLS};
use super::sqlite::SqliteStore;
use super::*;

/// SQLite's TEXT holds NUL: binds as they are (PostgreSQL's file replaces NUL).
fn nn<T>(v: T) -> T {
    v
}

impl AccountStore for SqliteStore {
    fn create_user(&self, u: UserRow) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING"
                )))
                .bind(nn(&u.id))
                .bind(nn(&u.email))
                .bind(nn(&u.name))
                .bind(nn(&u.password_hash))
                .bind(u.is_admin)
                .bind(u.disabled)
                .bind(u.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn get_user(&self, id: String) -> StoreFut<'_, Option<UserRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, UserRow>(AssertSqlSafe(format!(
                "SELECT {USER_COLS} FROM users WHERE id = $1"
            )))
            .bind(nn(id))
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn user_by_email(&self, email: String) -> StoreFut<'_, Option<UserRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, UserRow>(AssertSqlSafe(format!(
                "SELECT {USER_COLS} FROM users WHERE email = $1"
            )))
            .bind(nn(email))
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn list_users(&self) -> StoreFut<'_, Vec<UserRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, UserRow>(AssertSqlSafe(format!(
                "SELECT {USER_COLS} FROM users ORDER BY created_at, id"
            )))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn update_user(&self, u: UserRow) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let taken: Option<String> =
                    sqlx::query_scalar("SELECT id FROM users WHERE email = $1 AND id <> $2")
                        .bind(nn(&u.email))
                        .bind(nn(&u.id))
                        .fetch_optional(&mut **tx)
                        .await?;
                if taken.is_some() {
                    return Ok(false);
                }
                let r = sqlx::query(
                    "UPDATE users SET email = $2, name = $3, password_hash = $4, is_admin = $5, \
                     disabled = $6 WHERE id = $1",
                )
                .bind(nn(&u.id))
                .bind(nn(&u.email))
                .bind(nn(&u.name))
                .bind(nn(&u.password_hash))
                .bind(u.is_admin)
                .bind(u.disabled)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn set_membership(&self, m: MembershipRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO memberships ({MEMBERSHIP_COLS}) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role"
                )))
                .bind(nn(&m.workspace_id))
                .bind(nn(&m.user_id))
                .bind(nn(&m.role))
                .bind(m.created_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn remove_membership(
        &self,
        workspace_id: String,
        user_id: String,
        now: i64,
    ) -> StoreFut<'_, Option<Vec<String>>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r =
                    sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                        .bind(nn(&workspace_id))
                        .bind(nn(&user_id))
                        .execute(&mut **tx)
                        .await?;
                if r.rows_affected() == 0 {
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(nn(&user_id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                let tokens: Vec<String> = sqlx::query_scalar(
                    "SELECT t.id FROM api_tokens t JOIN token_workspaces w ON w.token_id = t.id \
                     WHERE t.owner_user_id = $1 AND w.workspace_id = $2 ORDER BY t.id",
                )
                .bind(nn(&user_id))
                .bind(nn(&workspace_id))
                .fetch_all(&mut **tx)
                .await?;
                sqlx::query(
                    "DELETE FROM token_workspaces WHERE workspace_id = $2 AND token_id IN \
                     (SELECT id FROM api_tokens WHERE owner_user_id = $1)",
                )
                .bind(nn(&user_id))
                .bind(nn(&workspace_id))
                .execute(&mut **tx)
                .await?;
                // A token left with no workspace could still create workspaces: revoked.
                sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 WHERE owner_user_id = $1 \
                     AND revoked_at IS NULL AND kind <> 'admin' AND NOT EXISTS \
                     (SELECT 1 FROM token_workspaces w WHERE w.token_id = api_tokens.id)",
                )
                .bind(nn(&user_id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(Some(tokens))
            })
        }))
    }

    fn list_memberships(
        &self,
        workspace_id: Option<String>,
        user_id: Option<String>,
    ) -> StoreFut<'_, Vec<MembershipRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, MembershipRow>(AssertSqlSafe(format!(
                "SELECT {MEMBERSHIP_COLS} FROM memberships \
                 WHERE ($1 IS NULL OR workspace_id = $1) AND ($2 IS NULL OR user_id = $2) \
                 ORDER BY created_at, workspace_id, user_id"
            )))
            .bind(nn(&workspace_id))
            .bind(nn(&user_id))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn create_session(&self, s: SessionRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                // Sessions long expired are dropped as new ones come (no sweeper needed).
                sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                    .bind(s.created_at - 30 * 24 * 3600 * 1000)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
                )))
                .bind(nn(&s.id_hash))
                .bind(nn(&s.user_id))
                .bind(nn(&s.csrf_token))
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(s.revoked_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn find_session(&self, id_hash: String) -> StoreFut<'_, Option<(SessionRow, UserRow)>> {
        Box::pin(async move {
            let Some(s) = sqlx::query_as::<_, SessionRow>(AssertSqlSafe(format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE id_hash = $1"
            )))
            .bind(nn(id_hash))
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let user = sqlx::query_as::<_, UserRow>(AssertSqlSafe(format!(
                "SELECT {USER_COLS} FROM users WHERE id = $1"
            )))
            .bind(nn(&s.user_id))
            .fetch_optional(&self.pool)
            .await?;
            Ok(user.map(|u| (s, u)))
        })
    }

    fn revoke_session(&self, id_hash: String, now: i64) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE sessions SET revoked_at = $2 WHERE id_hash = $1 AND revoked_at IS NULL",
                )
                .bind(nn(&id_hash))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn create_invitation(&self, r: InvitationRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO invitations ({INVITATION_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                )))
                .bind(nn(&r.id))
                .bind(nn(&r.token_hash))
                .bind(nn(&r.workspace_id))
                .bind(nn(&r.role))
                .bind(nn(&r.email))
                .bind(nn(&r.created_by))
                .bind(r.created_at)
                .bind(r.expires_at)
                .bind(r.used_at)
                .bind(nn(&r.used_by))
                .bind(r.revoked_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn find_invitation(
        &self,
        by_hash: Option<String>,
        id: Option<String>,
    ) -> StoreFut<'_, Option<InvitationRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(format!(
                "SELECT {INVITATION_COLS} FROM invitations \
                 WHERE token_hash = $1 OR id = $2"
            )))
            .bind(nn(by_hash.unwrap_or_default()))
            .bind(nn(id.unwrap_or_default()))
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn pending_invitations(
        &self,
        workspace_id: String,
        now: i64,
    ) -> StoreFut<'_, Vec<InvitationRow>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(format!(
                "SELECT {INVITATION_COLS} FROM invitations WHERE workspace_id = $1 \
                 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
                 ORDER BY created_at, id"
            )))
            .bind(nn(workspace_id))
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn revoke_invitation(&self, id: String, now: i64) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE invitations SET revoked_at = $2 \
                     WHERE id = $1 AND revoked_at IS NULL AND used_at IS NULL",
                )
                .bind(nn(&id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn accept_invitation(&self, id: String, user_id: String, now: i64) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE invitations SET used_at = $3, used_by = $2 WHERE id = $1 \
                     AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
                )
                .bind(nn(&id))
                .bind(nn(&user_id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                if r.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
                     SELECT workspace_id, $2, role, $3 FROM invitations WHERE id = $1 \
                     ON CONFLICT (workspace_id, user_id) DO NOTHING",
                )
                .bind(nn(&id))
                .bind(nn(&user_id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(true)
            })
        }))
    }

    fn append_audit(&self, a: AuditRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO audit_log ({AUDIT_COLS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                )))
                .bind(nn(&a.id))
                .bind(a.at)
                .bind(nn(&a.actor_kind))
                .bind(nn(&a.actor_id))
                .bind(nn(&a.actor_name))
                .bind(nn(&a.action))
                .bind(nn(&a.workspace_id))
                .bind(nn(&a.target))
                .bind(nn(&a.source_ip))
                .bind(nn(&a.detail))
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn list_audit(&self, f: AuditFilter) -> StoreFut<'_, Vec<AuditRow>> {
        Box::pin(async move {
            let scoped = f.workspace_ids.is_some();
            let ids = serde_json::to_string(&f.workspace_ids.unwrap_or_default())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(sqlx::query_as::<_, AuditRow>(AssertSqlSafe(format!(
                "SELECT {AUDIT_COLS} FROM audit_log \
                 WHERE ($1 = FALSE OR workspace_id IN (SELECT value FROM json_each($2))) \
                 AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR at < $4) \
                 ORDER BY at DESC, id DESC LIMIT $5"
            )))
            .bind(scoped)
            .bind(nn(ids))
            .bind(nn(&f.action))
            .bind(f.before)
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn count_audit(
        &self,
        action: String,
        target: String,
        source_ip: String,
        since: i64,
    ) -> StoreFut<'_, (i64, i64)> {
        Box::pin(async move {
            let by_target: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = $1 AND target = $2 AND at >= $3",
            )
            .bind(nn(&action))
            .bind(nn(&target))
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
            let by_ip: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = $1 AND source_ip = $2 AND at >= $3",
            )
            .bind(nn(&action))
            .bind(nn(&source_ip))
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
            Ok((by_target, by_ip))
        })
    }

    fn put_oidc_login(&self, row: OidcLoginRow) -> StoreFut<'_, ()> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                sqlx::query("DELETE FROM oidc_logins WHERE expires_at <= $1")
                    .bind(row.created_at)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO oidc_logins \
                     (state_hash, nonce, pkce_verifier, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(nn(&row.state_hash))
                .bind(nn(&row.nonce))
                .bind(nn(&row.pkce_verifier))
                .bind(row.created_at)
                .bind(row.expires_at)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        }))
    }

    fn take_oidc_login(&self, state_hash: String) -> StoreFut<'_, Option<OidcLoginRow>> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                Ok(sqlx::query_as::<_, OidcLoginRow>(
                    "DELETE FROM oidc_logins WHERE state_hash = $1 \
                     RETURNING state_hash, nonce, pkce_verifier, created_at, expires_at",
                )
                .bind(nn(&state_hash))
                .fetch_optional(&mut **tx)
                .await?)
            })
        }))
    }

    fn set_oidc_default_role(
        &self,
        workspace_id: String,
        role: Option<String>,
    ) -> StoreFut<'_, bool> {
        Box::pin(self.write(move |tx| {
            Box::pin(async move {
                let r = sqlx::query("UPDATE workspaces SET oidc_default_role = $2 WHERE id = $1")
                    .bind(nn(&workspace_id))
                    .bind(nn(&role))
                    .execute(&mut **tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            })
        }))
    }

    fn oidc_default_roles(&self) -> StoreFut<'_, Vec<(String, String)>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, (String, String)>(
                "SELECT id, oidc_default_role FROM workspaces \
                 WHERE oidc_default_role IS NOT NULL ORDER BY created_at, id",
            )
            .fetch_all(&self.pool)
            .await?)
        })
    }
}
