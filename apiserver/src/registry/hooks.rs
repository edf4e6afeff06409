//! Write hooks: side effects a kind needs around the generic store's writes
//! that a pure strategy cannot do, such as allocating a Service's cluster IP
//! and node ports in storage (Kubernetes' service REST wrapper, `alloc.go`).

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiError;

/// Called by the store with objects as JSON, after validation.
#[async_trait]
pub trait WriteHooks: Send + Sync {
    /// Before a new object is persisted. On error nothing is written.
    async fn before_create(&self, obj: &mut Value) -> Result<(), ApiError>;

    /// Before an update is persisted.
    async fn before_update(&self, old: &Value, new: &mut Value) -> Result<(), ApiError>;

    /// After an update was persisted (`Some(new)`) or failed (`None`):
    /// release what `old` held and the result no longer does.
    async fn after_update(&self, old: &Value, new: Option<&Value>, attempted: &Value);

    /// After the object is gone for good, or its create failed.
    async fn release(&self, obj: &Value);
}
