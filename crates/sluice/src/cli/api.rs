//! The SDK calls the commands make. Management calls return the SDK's typed values (the
//! server's own types, from `sluice-api`); catalog calls return the Iceberg JSON the tables
//! are rendered from (list calls re-wrapped in their envelope, e.g. `{"identifiers": [...]}`).

use super::error::{exit, CliError, CliResult};
use serde::Serialize;
use serde_json::{json, Value};
use sluice_client::{
    AccessKey, Client, ClientConfig, CreateWarehouseRequest, Group, NewAccessKey, Policy,
    Statement, TableIdentifier, User, Warehouse, WhoAmI,
};
use std::collections::HashMap;
use uuid::Uuid;

pub struct Api {
    client: Client,
}

fn to_json<T: Serialize>(v: &T) -> CliResult<Value> {
    serde_json::to_value(v)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot render the response: {e}")))
}

fn envelope<T: Serialize>(key: &str, items: &[T]) -> CliResult<Value> {
    Ok(json!({ key: to_json(&items)? }))
}

/// Policy statements from `--statements` JSON, checked before anything is sent.
pub fn parse_statements(v: Value) -> CliResult<Vec<Statement>> {
    serde_json::from_value(v).map_err(|e| {
        CliError::usage(format!(
            "--statements: {e} (each statement: {{\"effect\":\"allow\"|\"deny\",\"action\":[...],\"resource\":\"...\"}})"
        ))
    })
}

impl Api {
    /// A client for `sluice login`: it may run the flow interactively.
    pub fn for_login(config: ClientConfig) -> CliResult<Api> {
        Ok(Api {
            client: Client::from_config(config)?,
        })
    }

    /// A client for every other command: the login made earlier (cached token, stored
    /// secret), renewed silently where the flow can; never a browser or device prompt.
    pub fn new(config: ClientConfig) -> CliResult<Api> {
        Ok(Api {
            client: Client::from_login(config)?,
        })
    }

    /// Runs the login flow now (ignoring any cached token) and caches the result. Methods
    /// that send fixed credentials on every call (access key in Basic mode) have nothing to
    /// obtain: the whoami that follows a login checks them.
    pub async fn login(&self) -> CliResult {
        if !self.client.tokens().is_basic() {
            self.client.login().await?;
        }
        Ok(())
    }

    /// Forgets the cached token; whether there was one (never in Basic mode: an access key
    /// sent with every call).
    pub async fn logout(&self) -> CliResult<bool> {
        if self.client.tokens().is_basic() {
            return Ok(false);
        }
        // Flows without a cache (external command, AWS role) have nothing to forget.
        let had = self.client.tokens().has_token().await;
        self.client.logout().await?;
        Ok(had)
    }

    pub async fn whoami(&self) -> CliResult<WhoAmI> {
        Ok(self.client.whoami().await?)
    }

    // ------------------------------------------------------------------ warehouses

    pub async fn list_warehouses(&self) -> CliResult<Vec<Warehouse>> {
        Ok(self.client.list_warehouses().await?)
    }

    pub async fn create_warehouse(&self, req: &CreateWarehouseRequest) -> CliResult<Warehouse> {
        Ok(self.client.create_warehouse(req).await?)
    }

    /// A warehouse by name or id; a missing one is "not found" (exit 4).
    pub async fn find_warehouse(&self, name_or_id: &str) -> CliResult<Warehouse> {
        Ok(self.client.find_warehouse(name_or_id).await?)
    }

    /// The id of a warehouse given by name or id.
    pub async fn warehouse_id(&self, name_or_id: &str) -> CliResult<Uuid> {
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            return Ok(id);
        }
        Ok(self.client.find_warehouse(name_or_id).await?.id)
    }

    pub async fn delete_warehouse(&self, id: &Uuid) -> CliResult {
        Ok(self.client.delete_warehouse(*id).await?)
    }

    pub async fn rename_warehouse(&self, id: &Uuid, new_name: &str) -> CliResult<Warehouse> {
        Ok(self.client.rename_warehouse(*id, new_name).await?)
    }

    pub async fn set_warehouse_active(&self, id: &Uuid, active: bool) -> CliResult<Warehouse> {
        Ok(if active {
            self.client.activate_warehouse(*id).await?
        } else {
            self.client.deactivate_warehouse(*id).await?
        })
    }

    // ------------------------------------------------------------------ catalog

    /// The catalog prefix (the warehouse id) of a warehouse given by name or id.
    async fn prefix(&self, warehouse: &str) -> CliResult<String> {
        Ok(self.client.warehouse_prefix(warehouse).await?)
    }

    pub async fn list_namespaces(&self, warehouse: &str, parent: &[String]) -> CliResult<Value> {
        let prefix = self.prefix(warehouse).await?;
        let parent = (!parent.is_empty()).then_some(parent);
        let all = self.client.list_namespaces(&prefix, parent).await?;
        Ok(json!({ "namespaces": all }))
    }

    pub async fn create_namespace(
        &self,
        warehouse: &str,
        ns: &[String],
        props: serde_json::Map<String, Value>,
    ) -> CliResult<Value> {
        let prefix = self.prefix(warehouse).await?;
        let props: HashMap<String, String> = props
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect();
        to_json(&self.client.create_namespace(&prefix, ns, props).await?)
    }

    pub async fn load_namespace(&self, warehouse: &str, ns: &[String]) -> CliResult<Value> {
        let prefix = self.prefix(warehouse).await?;
        to_json(&self.client.load_namespace(&prefix, ns).await?)
    }

    pub async fn drop_namespace(&self, warehouse: &str, ns: &[String]) -> CliResult {
        let prefix = self.prefix(warehouse).await?;
        Ok(self.client.drop_namespace(&prefix, ns).await?)
    }

    pub async fn list_tables(&self, warehouse: &str, ns: &[String]) -> CliResult<Value> {
        let prefix = self.prefix(warehouse).await?;
        envelope("identifiers", &self.client.list_tables(&prefix, ns).await?)
    }

    pub async fn load_table(
        &self,
        warehouse: &str,
        ns: &[String],
        table: &str,
    ) -> CliResult<Value> {
        let prefix = self.prefix(warehouse).await?;
        to_json(&self.client.load_table(&prefix, ns, table).await?)
    }

    pub async fn drop_table(
        &self,
        warehouse: &str,
        ns: &[String],
        table: &str,
        purge: bool,
    ) -> CliResult {
        let prefix = self.prefix(warehouse).await?;
        Ok(self.client.drop_table(&prefix, ns, table, purge).await?)
    }

    pub async fn rename_table(
        &self,
        warehouse: &str,
        ns: &[String],
        table: &str,
        to_ns: &[String],
        to: &str,
    ) -> CliResult {
        let prefix = self.prefix(warehouse).await?;
        let from = TableIdentifier::new(ns.iter().cloned(), table);
        let to = TableIdentifier::new(to_ns.iter().cloned(), to);
        Ok(self.client.rename_table(&prefix, &from, &to).await?)
    }

    // ------------------------------------------------------------------ users

    pub async fn list_users(&self) -> CliResult<Vec<User>> {
        Ok(self.client.list_users().await?)
    }

    pub async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        friendly_name: Option<&str>,
    ) -> CliResult<User> {
        Ok(self.client.create_user(name, email, friendly_name).await?)
    }

    pub async fn get_user(&self, name: &str) -> CliResult<User> {
        Ok(self.client.get_user(name).await?)
    }

    pub async fn delete_user(&self, name: &str) -> CliResult {
        Ok(self.client.delete_user(name).await?)
    }

    // ------------------------------------------------------------------ groups

    pub async fn list_groups(&self) -> CliResult<Vec<Group>> {
        Ok(self.client.list_groups().await?)
    }

    pub async fn create_group(&self, name: &str, description: Option<&str>) -> CliResult<Group> {
        Ok(self.client.create_group(name, description).await?)
    }

    pub async fn get_group(&self, name: &str) -> CliResult<Group> {
        Ok(self.client.get_group(name).await?)
    }

    pub async fn delete_group(&self, name: &str) -> CliResult {
        Ok(self.client.delete_group(name).await?)
    }

    pub async fn add_group_member(&self, group: &str, user: &str) -> CliResult {
        Ok(self.client.add_group_member(group, user).await?)
    }

    pub async fn remove_group_member(&self, group: &str, user: &str) -> CliResult {
        Ok(self.client.remove_group_member(group, user).await?)
    }

    pub async fn group_members(&self, group: &str) -> CliResult<Vec<User>> {
        Ok(self.client.group_members(group).await?)
    }

    // ------------------------------------------------------------------ policies

    pub async fn list_policies(&self) -> CliResult<Vec<Policy>> {
        Ok(self.client.list_policies().await?)
    }

    pub async fn create_policy(
        &self,
        name: &str,
        description: Option<&str>,
        stmts: Vec<Statement>,
    ) -> CliResult<Policy> {
        Ok(self.client.create_policy(name, description, &stmts).await?)
    }

    pub async fn get_policy(&self, name: &str) -> CliResult<Policy> {
        Ok(self.client.get_policy(name).await?)
    }

    pub async fn update_policy(
        &self,
        name: &str,
        description: Option<&str>,
        stmts: Vec<Statement>,
    ) -> CliResult<Policy> {
        Ok(self.client.update_policy(name, description, &stmts).await?)
    }

    pub async fn delete_policy(&self, name: &str) -> CliResult {
        Ok(self.client.delete_policy(name).await?)
    }

    /// Attaches (`attach`) or detaches `policy` to/from a `user` or `group` (`kind`).
    pub async fn attach_policy(
        &self,
        policy: &str,
        kind: &str,
        who: &str,
        attach: bool,
    ) -> CliResult {
        let c = &self.client;
        match (kind, attach) {
            ("group", true) => c.attach_group_policy(who, policy).await?,
            ("group", false) => c.detach_group_policy(who, policy).await?,
            (_, true) => c.attach_user_policy(who, policy).await?,
            (_, false) => c.detach_user_policy(who, policy).await?,
        }
        Ok(())
    }

    // ------------------------------------------------------------------ access keys

    /// The new key including its secret: the one response that carries one.
    pub async fn create_key(&self, user: &str) -> CliResult<NewAccessKey> {
        Ok(self.client.create_access_key(user).await?)
    }

    pub async fn list_keys(&self, user: &str) -> CliResult<Vec<AccessKey>> {
        Ok(self.client.list_access_keys(user).await?)
    }

    pub async fn delete_key(&self, user: &str, key: &str) -> CliResult {
        Ok(self.client.delete_access_key(user, key).await?)
    }
}
