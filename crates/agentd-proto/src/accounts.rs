//! Wire types of accounts (issue 15, docs/accounts.md): users, password sign-in and
//! board sessions, workspace roles, members, invitations and the audit log.

use serde::{Deserialize, Serialize};

/// A user's role in a workspace, weakest first (the derived order is the rank):
/// `viewer` reads; `member` works on issues, comments and tasks; `admin` also manages
/// members, tokens, forge connections, agents and runtimes; `owner` also deletes the
/// workspace and transfers ownership. A role this side does not know decodes as
/// `Unknown`, which ranks below `viewer` (grants nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    #[default]
    Member,
    Admin,
    Owner,
    #[serde(other)]
    Unknown,
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Unknown => 0,
            Role::Viewer => 1,
            Role::Member => 2,
            Role::Admin => 3,
            Role::Owner => 4,
        }
    }

    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
            Role::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "member" => Role::Member,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    /// A server admin: every workspace, every route.
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub disabled: bool,
    /// Whether the user can sign in with a password (OIDC users cannot).
    #[serde(default)]
    pub has_password: bool,
    pub created_at: i64,
}

/// `POST /api/v1/session`: password sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

/// A board session: the answer of `POST /api/v1/session` (which also sets the session
/// cookie) and of `GET /api/v1/session`. State-changing requests authenticated by the
/// cookie must send `csrf_token` in the `X-CSRF-Token` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
    /// The user's workspaces and role in each (a server admin: empty; sees all).
    #[serde(default)]
    pub memberships: Vec<Membership>,
}

/// `POST /api/v1/users` (server admins): a local account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUserRequest {
    pub email: String,
    #[serde(default)]
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// `PATCH /api/v1/users/{id}` (server admins; a user may set its own password): the
/// fields to change. Taking over the upgrade's admin user sets all three.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `PUT /api/v1/workspaces/{wid}/members/{user}`: the user's new role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRoleRequest {
    pub role: Role,
}

/// `POST /api/v1/workspaces/{wid}/invitations`: a single-use link with a role. `email`
/// limits who may accept it; `expires_in_secs` defaults to 7 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateInvitationRequest {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// An invitation as admins see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    pub workspace_id: String,
    pub role: Role,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    #[serde(default)]
    pub used_at: Option<i64>,
    #[serde(default)]
    pub used_by: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// The answer to creating an invitation: the link (shown once; the server keeps only
/// the secret's hash). `url` is `{public URL}/#/invite/{token}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationCreated {
    pub invitation: Invitation,
    pub token: String,
    pub url: String,
}

/// `POST /api/v1/invitations/accept`. Signed in (a session or a user's token): the
/// caller joins. Not signed in: `email` and `password` make a new local account that
/// joins, and the answer starts its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptInvitationRequest {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The answer to accepting: the new membership, and the new account's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationAccepted {
    pub membership: Membership,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// A user's role in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub workspace_id: String,
    pub user_id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

/// The caller's role in one workspace (`GET /api/v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WorkspaceRole {
    pub workspace_id: String,
    pub role: Role,
}

/// An entry of the audit log. `actor_kind`: `user`, `token`, `system` or `anonymous` (a
/// failed sign-in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub actor_kind: String,
    #[serde(default)]
    pub actor_id: Option<String>,
    #[serde(default)]
    pub actor_name: String,
    /// What happened, e.g. `signin`, `signin.failed`, `token.create`.
    pub action: String,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub source_ip: String,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_and_round_trip() {
        assert!(Role::Viewer < Role::Member && Role::Member < Role::Admin);
        assert!(Role::Admin < Role::Owner && Role::Unknown < Role::Viewer);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), r);
        }
        assert_eq!(
            serde_json::from_str::<Role>("\"superuser\"").unwrap(),
            Role::Unknown
        );
        assert_eq!(Role::parse("superuser"), None);
    }
}

/// The sign-in methods the server offers besides email and password
/// (`GET /api/v1/session/providers`, no credentials needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SignInProviders {
    /// OIDC single sign-on, when configured.
    #[serde(default)]
    pub oidc: Option<OidcProvider>,
}

/// The configured OpenID provider as the board's button needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    /// The button's label: "Sign in with {name}".
    pub name: String,
    /// Where the button goes (`/api/v1/oidc/login`).
    pub login_url: String,
}

/// A workspace's account settings (`PUT /api/v1/workspaces/{wid}/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WorkspaceSettings {
    /// The role a user provisioned by OIDC sign-in gets here: viewer, member or admin;
    /// `null`: none (they join by invitation).
    #[serde(default)]
    pub oidc_default_role: Option<Role>,
}
