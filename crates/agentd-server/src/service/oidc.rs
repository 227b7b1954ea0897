//! OIDC single sign-on (docs/accounts.md, "Single sign-on (OIDC)"): the authorization
//! code flow with PKCE (S256) against the configured provider, done by hand over the
//! server's reqwest client — discovery from `{issuer}/.well-known/openid-configuration`,
//! the JWKS fetched and cached ([`ProviderCache`]), the ID token's signature (RS256/384/
//! 512, ES256) checked with aws-lc-rs, and its `iss`, `aud`, `exp` and `nonce`.
//!
//! - **The state is bound to the browser** that started the sign-in: the login sets it
//!   in a short cookie ([`STATE_COOKIE`], path the callback, HttpOnly, SameSite=Lax),
//!   and a callback whose state is not that cookie's is 400 — a link to someone else's
//!   callback cannot sign a victim's browser into the attacker's account (login CSRF).
//! - **Pending sign-ins live in the database** (`oidc_logins`, by the SHA-256 of their
//!   `state`), so the callback may reach any instance. A state is deleted when its
//!   callback arrives: an unknown, expired or reused state, a provider error or an ID
//!   token that fails any check is 400 with no session, and is audited as
//!   `signin.failed` (detail `method: oidc`).
//! - **Users** are matched by email (linked to an existing account, password or not) or
//!   provisioned without a password on first sign-in, and then join every workspace
//!   whose OIDC default role is set ([`set_default_role`]), with that role. An email
//!   outside the allowed domains, or one the provider says is unverified, is 403.

use std::time::Duration;

use agentd_proto::accounts::{OidcProvider, Role, Session, SignInProviders, WorkspaceSettings};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::App;
use crate::auth::{Principal, hash_token};
use crate::service::{Error, account, audit, new_id, workspace};
use crate::store::{MembershipRow, OidcLoginRow, UserRow};

/// A started sign-in must come back within this.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Discovery and keys are read again after this (and at once when a token names a key
/// not in the cache, at most once per [`JWKS_MIN_REFRESH_MS`]).
pub const PROVIDER_TTL_MS: i64 = 3600 * 1000;
const JWKS_MIN_REFRESH_MS: i64 = 10 * 1000;
/// Clock skew allowed on `exp`.
const LEEWAY_S: i64 = 60;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The route the provider sends the browser back to, under the public URL.
pub const CALLBACK_PATH: &str = "/api/v1/oidc/callback";
pub const LOGIN_PATH: &str = "/api/v1/oidc/login";
/// The cookie holding the state of the browser's sign-in in progress.
pub const STATE_COOKIE: &str = "agentd_oidc_state";

/// The provider the server signs people in with (`agentd server --oidc-*`).
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the provider's ID tokens say it (`iss`).
    pub issuer: String,
    pub client_id: String,
    /// Read from a file or the environment, never a flag value.
    pub client_secret: String,
    /// Lowercased email domains allowed to sign in; empty: any.
    pub allowed_domains: Vec<String>,
    /// The board's button says "Sign in with {display_name}".
    pub display_name: String,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("allowed_domains", &self.allowed_domains)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// What discovery says (the fields used).
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// One key of the provider's JWKS (RSA or EC P-256; others are skipped).
#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Debug, Clone)]
struct Provider {
    meta: Discovery,
    keys: Vec<Jwk>,
    fetched_at: i64,
}

/// The discovered provider and its keys, shared by this instance's requests.
#[derive(Debug, Default)]
pub struct ProviderCache(tokio::sync::Mutex<Option<Provider>>);

fn config(app: &App) -> Result<&OidcConfig, Error> {
    app.config.oidc.as_ref().ok_or(Error::NotFound(
        "OIDC sign-in is not configured on this server",
    ))
}

/// What the board's sign-in form offers.
pub fn providers(app: &App) -> SignInProviders {
    SignInProviders {
        oidc: app.config.oidc.as_ref().map(|c| OidcProvider {
            name: c.display_name.clone(),
            login_url: LOGIN_PATH.into(),
        }),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(app: &App, url: &str) -> Result<T, Error> {
    let resp = app
        .forge_http
        .get(url)
        .timeout(HTTP_TIMEOUT)
        .send()
        .await
        .map_err(|e| Error::Upstream(format!("OIDC provider unreachable ({url}): {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::Upstream(format!(
            "OIDC provider answered {} for {url}",
            resp.status()
        )));
    }
    resp.json()
        .await
        .map_err(|e| Error::Upstream(format!("OIDC provider sent bad JSON at {url}: {e}")))
}

async fn fetch_provider(app: &App, cfg: &OidcConfig) -> Result<Provider, Error> {
    let issuer = cfg.issuer.trim_end_matches('/');
    let meta: Discovery =
        get_json(app, &format!("{issuer}/.well-known/openid-configuration")).await?;
    if meta.issuer != cfg.issuer {
        return Err(Error::Upstream(format!(
            "the provider's discovery names issuer {:?}, not the configured {:?}",
            meta.issuer, cfg.issuer
        )));
    }
    let jwks: JwkSet = get_json(app, &meta.jwks_uri).await?;
    Ok(Provider {
        meta,
        keys: jwks.keys,
        fetched_at: app.now(),
    })
}

/// The cached provider, read again when older than [`PROVIDER_TTL_MS`] or when
/// `refresh_keys` (a token named an unknown key) and the cache is not brand new.
async fn provider(app: &App, cfg: &OidcConfig, refresh_keys: bool) -> Result<Provider, Error> {
    let mut cached = app.oidc_cache.0.lock().await;
    let now = app.now();
    let fresh = cached.as_ref().is_some_and(|p| {
        let age = now - p.fetched_at;
        age < PROVIDER_TTL_MS && !(refresh_keys && age >= JWKS_MIN_REFRESH_MS)
    });
    if !fresh {
        *cached = Some(fetch_provider(app, cfg).await?);
    }
    cached
        .clone()
        .ok_or_else(|| Error::Internal("OIDC provider cache empty".into()))
}

fn random_b64(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    B64.encode(b)
}

/// Starts a sign-in: stores its state, nonce and PKCE verifier, and returns the
/// provider's authorization URL to send the browser to and the state (for
/// [`STATE_COOKIE`]).
pub async fn login(app: &App) -> Result<(String, String), Error> {
    let cfg = config(app)?;
    let p = provider(app, cfg, false).await?;
    let state = random_b64(32);
    let nonce = random_b64(32);
    let verifier = random_b64(32);
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    let now = app.now();
    app.store
        .put_oidc_login(OidcLoginRow {
            state_hash: hash_token(&state),
            nonce: nonce.clone(),
            pkce_verifier: verifier,
            created_at: now,
            expires_at: now + LOGIN_TTL_MS,
        })
        .await?;
    let mut url = url::Url::parse(&p.meta.authorization_endpoint).map_err(|e| {
        Error::Upstream(format!(
            "the provider's authorization_endpoint is not a URL: {e}"
        ))
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", &redirect_uri(app))
        .append_pair("scope", "openid email profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok((url.into(), state))
}

fn redirect_uri(app: &App) -> String {
    format!("{}{CALLBACK_PATH}", app.public_url())
}

/// The callback's query string.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Finishes a sign-in: a session for the user the provider vouches for (see the module
/// doc), and its cookie value. `browser_state` is the [`STATE_COOKIE`] the request
/// carried. Every refusal is audited.
pub async fn callback(
    app: &App,
    ip: &str,
    q: CallbackQuery,
    browser_state: Option<&str>,
) -> Result<(Session, String), Error> {
    let cfg = config(app)?;
    match finish(app, ip, cfg, q, browser_state).await {
        Ok(user) => {
            let (session, sid) = account::new_session(app, &user).await?;
            audit::record(
                app,
                audit::Entry::user(&user, "signin", ip)
                    .target(&user.email)
                    .detail(serde_json::json!({"method": "oidc"})),
            )
            .await;
            Ok((session, sid))
        }
        Err((email, e)) => {
            if !matches!(e, Error::Store(_)) {
                audit::record(
                    app,
                    audit::Entry::anonymous("signin.failed", ip)
                        .target(&email)
                        .detail(serde_json::json!({"method": "oidc", "reason": e.to_string()})),
                )
                .await;
            }
            Err(e)
        }
    }
}

/// The user of a callback, or the refusal with the email it was about (empty when the
/// ID token was not read).
async fn finish(
    app: &App,
    ip: &str,
    cfg: &OidcConfig,
    q: CallbackQuery,
    browser_state: Option<&str>,
) -> Result<UserRow, (String, Error)> {
    let none = |e: Error| (String::new(), e);
    let Some(state) = q.state.filter(|s| !s.is_empty()) else {
        return Err(none(Error::bad("the OIDC callback has no state")));
    };
    if !browser_state.is_some_and(|b| crate::auth::constant_time_eq(b.as_bytes(), state.as_bytes()))
    {
        return Err(none(Error::bad(
            "this OIDC sign-in was not started in this browser; sign in again",
        )));
    }
    let Some(login) = app
        .store
        .take_oidc_login(hash_token(&state))
        .await
        .map_err(|e| none(e.into()))?
    else {
        return Err(none(Error::bad(
            "unknown or already used OIDC sign-in state; sign in again",
        )));
    };
    if login.expires_at <= app.now() {
        return Err(none(Error::bad("the OIDC sign-in expired; sign in again")));
    }
    if let Some(err) = q.error {
        let desc = q.error_description.unwrap_or_default();
        return Err(none(Error::bad(format!(
            "the OIDC provider refused the sign-in: {err} {desc}"
        ))));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return Err(none(Error::bad("the OIDC callback has no code")));
    };
    let p = provider(app, cfg, false).await.map_err(none)?;
    let tokens = exchange(app, cfg, &p, &code, &login.pkce_verifier)
        .await
        .map_err(none)?;
    let mut claims = verify_id_token(app, cfg, &p, &tokens.id_token, &login.nonce)
        .await
        .map_err(none)?;
    if claims.email.is_none() {
        // With the code flow a provider may keep the profile claims for the userinfo
        // endpoint (OpenID Connect Core §5.4); oidc-provider does.
        userinfo(app, &p, tokens.access_token.as_deref(), &mut claims)
            .await
            .map_err(none)?;
    }
    let Some(email) = claims.email.as_deref().map(account::normalize_email) else {
        return Err(none(Error::bad(
            "the OIDC provider did not send an email (ask for the `email` scope)",
        )));
    };
    let fail = |e: Error| (email.clone(), e);
    if let Some(v) = &claims.email_verified
        && !(v == &serde_json::Value::Bool(true) || v == "true")
    {
        return Err(fail(Error::Forbidden(format!(
            "the OIDC provider says {email} is not verified"
        ))));
    }
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if email.split_once('@').is_none_or(|(a, _)| a.is_empty()) || domain.is_empty() {
        return Err(fail(Error::bad(format!("not an email address: {email:?}"))));
    }
    if !cfg.allowed_domains.is_empty() && !cfg.allowed_domains.iter().any(|d| d == domain) {
        return Err(fail(Error::Forbidden(format!(
            "{domain} is not an email domain allowed to sign in here"
        ))));
    }
    let user = user_for(app, ip, &email, claims.name.as_deref().unwrap_or(""))
        .await
        .map_err(fail)?;
    if user.disabled {
        return Err(fail(Error::Forbidden("this user is disabled".into())));
    }
    Ok(user)
}

/// The user with this email, provisioned (no password, the default roles) if new.
async fn user_for(app: &App, ip: &str, email: &str, name: &str) -> Result<UserRow, Error> {
    if let Some(u) = app.store.user_by_email(email.to_string()).await? {
        return Ok(u);
    }
    let row = UserRow {
        id: new_id(),
        email: email.to_string(),
        name: name.trim().to_string(),
        password_hash: None,
        is_admin: false,
        disabled: false,
        created_at: app.now(),
    };
    if !app.store.create_user(row.clone()).await? {
        // Another sign-in of the same person provisioned it first.
        return app
            .store
            .user_by_email(email.to_string())
            .await?
            .ok_or_else(|| Error::Internal("user vanished while provisioning".into()));
    }
    audit::record(
        app,
        audit::Entry::user(&row, "user.create", ip)
            .target(email)
            .detail(serde_json::json!({"user_id": row.id, "via": "oidc"})),
    )
    .await;
    for (workspace_id, role) in app.store.oidc_default_roles().await? {
        app.store
            .set_membership(MembershipRow {
                workspace_id: workspace_id.clone(),
                user_id: row.id.clone(),
                role: role.clone(),
                created_at: app.now(),
            })
            .await?;
        audit::record(
            app,
            audit::Entry::user(&row, "member.add", ip)
                .workspace(&workspace_id)
                .target(email)
                .detail(serde_json::json!({"role": role, "via": "oidc default role"})),
        )
        .await;
    }
    Ok(row)
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
}

/// Fills the email, its verification and the name from the userinfo endpoint, whose
/// `sub` must be the ID token's (OpenID Connect Core §5.3.2).
async fn userinfo(
    app: &App,
    p: &Provider,
    access_token: Option<&str>,
    claims: &mut Claims,
) -> Result<(), Error> {
    let (Some(url), Some(token)) = (&p.meta.userinfo_endpoint, access_token) else {
        return Ok(());
    };
    let resp = app
        .forge_http
        .get(url)
        .timeout(HTTP_TIMEOUT)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Error::Upstream(format!("OIDC userinfo endpoint unreachable: {e}")))?;
    if !resp.status().is_success() {
        return Err(Error::Upstream(format!(
            "OIDC userinfo endpoint answered {}",
            resp.status()
        )));
    }
    let info: UserInfo = resp
        .json()
        .await
        .map_err(|e| Error::Upstream(format!("OIDC userinfo is not JSON: {e}")))?;
    if info.sub != claims.sub {
        return Err(Error::bad("the OIDC userinfo is about another subject"));
    }
    claims.email = info.email;
    claims.email_verified = info.email_verified;
    if claims.name.is_none() {
        claims.name = info.name;
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` of one value.
fn form(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// The ID token and the access token (for the userinfo endpoint).
struct Tokens {
    id_token: String,
    access_token: Option<String>,
}

/// Redeems the code at the token endpoint (client_secret_basic, with the PKCE
/// verifier): the ID token.
async fn exchange(
    app: &App,
    cfg: &OidcConfig,
    p: &Provider,
    code: &str,
    verifier: &str,
) -> Result<Tokens, Error> {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        form(code),
        form(&redirect_uri(app)),
        form(verifier)
    );
    let resp = app
        .forge_http
        .post(&p.meta.token_endpoint)
        .timeout(HTTP_TIMEOUT)
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic.
        .basic_auth(form(&cfg.client_id), Some(form(&cfg.client_secret)))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| Error::Upstream(format!("OIDC token endpoint unreachable: {e}")))?;
    let status = resp.status();
    if status.is_client_error() {
        let text = resp.text().await.unwrap_or_default();
        return Err(Error::bad(format!(
            "the OIDC provider refused the code ({status}): {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    if !status.is_success() {
        return Err(Error::Upstream(format!(
            "OIDC token endpoint answered {status}"
        )));
    }
    let t: TokenResponse = resp
        .json()
        .await
        .map_err(|e| Error::Upstream(format!("OIDC token endpoint sent bad JSON: {e}")))?;
    let id_token = t
        .id_token
        .ok_or_else(|| Error::Upstream("the OIDC token response has no id_token".into()))?;
    Ok(Tokens {
        id_token,
        access_token: t.access_token,
    })
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The ID token's claims that are checked or used.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    #[serde(default)]
    azp: Option<String>,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// A bool, or the string "true"/"false" from some providers.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, Error> {
    B64.decode(part.trim_end_matches('='))
        .map_err(|_| Error::bad(format!("the ID token's {what} is not base64url")))
}

async fn verify_id_token(
    app: &App,
    cfg: &OidcConfig,
    p: &Provider,
    token: &str,
    nonce: &str,
) -> Result<Claims, Error> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err(Error::bad("the ID token is not a signed JWT"));
    };
    let header: Header = serde_json::from_slice(&b64(h, "header")?)
        .map_err(|e| Error::bad(format!("the ID token's header is not JSON: {e}")))?;
    let sig = b64(s, "signature")?;
    let signed = format!("{h}.{c}");
    let mut checked = check_signature(&p.keys, &header, signed.as_bytes(), &sig);
    if matches!(checked, Err(KeyMiss)) {
        // The provider may have rotated its keys.
        let p = provider(app, cfg, true).await?;
        checked = check_signature(&p.keys, &header, signed.as_bytes(), &sig);
    }
    match checked {
        Ok(true) => {}
        Ok(false) => return Err(Error::bad("the ID token's signature does not verify")),
        Err(KeyMiss) => {
            return Err(Error::bad(format!(
                "no key of the provider's JWKS verifies an {} ID token (kid {:?})",
                header.alg, header.kid
            )));
        }
    }
    let claims: Claims = serde_json::from_slice(&b64(c, "claims")?)
        .map_err(|e| Error::bad(format!("the ID token's claims are not valid: {e}")))?;
    if claims.iss != p.meta.issuer {
        return Err(Error::bad(format!(
            "the ID token's issuer {:?} is not {:?}",
            claims.iss, p.meta.issuer
        )));
    }
    let auds: Vec<&str> = match &claims.aud {
        serde_json::Value::String(a) => vec![a.as_str()],
        serde_json::Value::Array(v) => v.iter().filter_map(|a| a.as_str()).collect(),
        _ => Vec::new(),
    };
    if !auds.contains(&cfg.client_id.as_str()) {
        return Err(Error::bad("the ID token is not for this client (aud)"));
    }
    if auds.len() > 1 && claims.azp.as_deref() != Some(cfg.client_id.as_str()) {
        return Err(Error::bad("the ID token's azp is not this client"));
    }
    if claims.exp + LEEWAY_S <= app.now() / 1000 {
        return Err(Error::bad("the ID token expired"));
    }
    if claims.nonce.as_deref() != Some(nonce) {
        return Err(Error::bad(
            "the ID token's nonce does not match this sign-in",
        ));
    }
    Ok(claims)
}

/// No key of the set fits the token's `kid` and `alg`.
struct KeyMiss;

/// Whether a key of `keys` that fits the header verifies `sig` over `msg`.
fn check_signature(keys: &[Jwk], header: &Header, msg: &[u8], sig: &[u8]) -> Result<bool, KeyMiss> {
    use aws_lc_rs::signature::{self as sg, VerificationAlgorithm};
    let fits = |k: &&Jwk| {
        k.use_.as_deref().is_none_or(|u| u == "sig")
            && (header.kid.is_none() || k.kid == header.kid)
    };
    let mut tried = false;
    for k in keys.iter().filter(fits) {
        let ok = match (header.alg.as_str(), k.kty.as_str()) {
            ("RS256" | "RS384" | "RS512", "RSA") => {
                let (Some(n), Some(e)) = (&k.n, &k.e) else {
                    continue;
                };
                let (Ok(n), Ok(e)) = (B64.decode(n), B64.decode(e)) else {
                    continue;
                };
                let alg = match header.alg.as_str() {
                    "RS256" => &sg::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &sg::RSA_PKCS1_2048_8192_SHA384,
                    _ => &sg::RSA_PKCS1_2048_8192_SHA512,
                };
                sg::RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                }
                .verify(alg, msg, sig)
                .is_ok()
            }
            ("ES256", "EC") if k.crv.as_deref() == Some("P-256") => {
                let (Some(x), Some(y)) = (&k.x, &k.y) else {
                    continue;
                };
                let (Ok(x), Ok(y)) = (B64.decode(x), B64.decode(y)) else {
                    continue;
                };
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                sg::ECDSA_P256_SHA256_FIXED
                    .verify_sig(&point, msg, sig)
                    .is_ok()
            }
            _ => continue,
        };
        tried = true;
        if ok {
            return Ok(true);
        }
    }
    if tried { Ok(false) } else { Err(KeyMiss) }
}

/// A workspace's account settings (the caller must see the workspace).
pub async fn settings(app: &App, who: &Principal, wid: &str) -> Result<WorkspaceSettings, Error> {
    let ws = workspace::visible(app, who, wid).await?;
    read_settings(app, &ws.id).await
}

async fn read_settings(app: &App, workspace_id: &str) -> Result<WorkspaceSettings, Error> {
    let role = app
        .store
        .oidc_default_roles()
        .await?
        .into_iter()
        .find(|(w, _)| w == workspace_id)
        .and_then(|(_, r)| Role::parse(&r));
    Ok(WorkspaceSettings {
        oidc_default_role: role,
    })
}

/// Sets the role OIDC-provisioned users get in the workspace (viewer, member or admin;
/// `None`: none). Audited as `workspace.settings`.
pub async fn set_default_role(
    app: &App,
    who: &Principal,
    ip: &str,
    wid: &str,
    s: WorkspaceSettings,
) -> Result<WorkspaceSettings, Error> {
    // 404 outside the caller's workspaces, 403 below admin (the route's role).
    let ws = workspace::visible(app, who, wid).await?;
    let workspace_id = ws.id.as_str();
    if let Some(r) = s.oidc_default_role
        && !matches!(r, Role::Viewer | Role::Member | Role::Admin)
    {
        return Err(Error::bad(
            "oidc_default_role must be viewer, member, admin or null",
        ));
    }
    let before = read_settings(app, workspace_id).await?;
    if !app
        .store
        .set_oidc_default_role(
            workspace_id.to_string(),
            s.oidc_default_role.map(|r| r.as_str().to_string()),
        )
        .await?
    {
        return Err(Error::NotFound("workspace not found"));
    }
    audit::record(
        app,
        audit::Entry::new(Some(who), "workspace.settings", ip)
            .workspace(workspace_id)
            .target("oidc_default_role")
            .detail(serde_json::json!({
                "oidc_default_role": {
                    "from": before.oidc_default_role.map(Role::as_str),
                    "to": s.oidc_default_role.map(Role::as_str),
                }
            })),
    )
    .await;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_secret() {
        let c = OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "agentd".into(),
            client_secret: "s3cret-value".into(),
            allowed_domains: vec![],
            display_name: "IdP".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret-value"));
    }

    #[test]
    fn signatures_need_a_fitting_key() {
        let header = Header {
            alg: "RS256".into(),
            kid: Some("k1".into()),
        };
        // No key with that kid: a miss (the caller refreshes the JWKS), not a pass.
        let other = Jwk {
            kty: "RSA".into(),
            kid: Some("k2".into()),
            use_: None,
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        };
        assert!(matches!(
            check_signature(std::slice::from_ref(&other), &header, b"m", b"s"),
            Err(KeyMiss)
        ));
        // A fitting key that does not verify: false.
        let k1 = Jwk {
            kid: Some("k1".into()),
            ..other
        };
        assert!(matches!(
            check_signature(&[k1], &header, b"m", b"s"),
            Ok(false)
        ));
    }
}
