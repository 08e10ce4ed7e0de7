//! API keys: an organization's keys, which act for that organization, and
//! operator keys, which read what spans every organization (the store-wide
//! change feed, every organization's metrics and stats) and nothing else.

use super::Store;
use crate::auth;
use crate::error::{Error, Result};
use crate::model::{ApiKey, CreatedApiKey};
use crate::organization::Organization;
use crate::validate;

/// The `organization_id` an operator key is stored under. Empty, because no
/// organization can be named so (`validate::identifier` wants 1+ bytes):
/// an operator key can never be mistaken for an organization's.
const OPERATOR: &str = "";

/// Who a token speaks for.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An organization's key: its callbacks and only those.
    Organization(Organization),
    /// An operator key: the views across organizations (the store-wide
    /// change feed, every organization's metrics). It reads no callback
    /// route: there it is UNAUTHORIZED, as an unknown token is.
    Operator,
}

impl Store {
    /// Creates an API key for an organization. The token is in the answer
    /// and nowhere else: only its hash is stored.
    pub fn create_api_key(&self, organization_id: &str, label: &str) -> Result<CreatedApiKey> {
        validate::identifier("organization_id", organization_id)?;
        self.insert_key(organization_id, label)
    }

    /// Creates an operator key (see `Caller::Operator`); the token is in
    /// the answer and nowhere else. Its `organization_id` is empty.
    pub fn create_operator_key(&self, label: &str) -> Result<CreatedApiKey> {
        self.insert_key(OPERATOR, label)
    }

    fn insert_key(&self, organization_id: &str, label: &str) -> Result<CreatedApiKey> {
        validate::identifier("label", label)?;
        let token = auth::new_token()?;
        let key = self.write(|dao| {
            let key = ApiKey {
                id: self.new_id("key_", dao.now()),
                organization_id: organization_id.to_owned(),
                label: label.to_owned(),
                created_at: dao.now(),
                revoked_at: None,
            };
            dao.insert_api_key(&key, &auth::token_hash(&token))?;
            Ok(key)
        })?;
        Ok(CreatedApiKey { key, token })
    }

    pub fn list_api_keys(&self, organization_id: &str) -> Result<Vec<ApiKey>> {
        validate::identifier("organization_id", organization_id)?;
        self.read(|dao| dao.list_api_keys(organization_id))
    }

    /// The operator keys, revoked ones included (never their tokens).
    pub fn list_operator_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|dao| dao.list_api_keys(OPERATOR))
    }

    /// Revokes a key at once; revoking it again changes nothing.
    pub fn revoke_api_key(&self, key_id: &str) -> Result<ApiKey> {
        validate::identifier("key_id", key_id)?;
        self.write(|dao| dao.revoke_api_key(key_id, dao.now()))?
            .ok_or_else(|| Error::NotFound {
                kind: "api key",
                id: key_id.to_owned(),
            })
    }

    /// The organization of a token given as `Bearer <token>` or bare.
    /// Missing, malformed, unknown and revoked tokens are all UNAUTHORIZED,
    /// and so is an operator key: it acts for no organization.
    pub fn authenticate(&self, authorization: &str) -> Result<Organization> {
        match self.authenticate_caller(authorization)? {
            Caller::Organization(org) => Ok(org),
            Caller::Operator => Err(Error::Unauthorized),
        }
    }

    /// Who a token given as `Bearer <token>` or bare speaks for: an
    /// organization or the operator. Missing, malformed, unknown and
    /// revoked tokens are UNAUTHORIZED.
    pub fn authenticate_caller(&self, authorization: &str) -> Result<Caller> {
        let token = auth::token_of(authorization).ok_or(Error::Unauthorized)?;
        let hash = auth::token_hash(token);
        let org = self
            .read(|dao| dao.organization_of_token(&hash))?
            .ok_or(Error::Unauthorized)?;
        Ok(if org == OPERATOR {
            Caller::Operator
        } else {
            Caller::Organization(Organization::new(self.clone(), org))
        })
    }
}
