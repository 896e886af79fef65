//! The tokio form: the same member, its blocking calls run on tokio's blocking pool so that
//! they never hold up the runtime.

use std::sync::Arc;

use super::{AreaPlace, JoinOptions, Message, Messenger, MsgError};

/// A member for async programs.
#[derive(Clone)]
pub struct AsyncMessenger {
    inner: Arc<Messenger>,
}

fn gone<T>(_: tokio::task::JoinError) -> Result<T, MsgError> {
    Err(MsgError::Stopped { rv: -108 })
}

impl AsyncMessenger {
    /// [`Messenger::join`].
    pub async fn join(
        space: &str,
        place: &AreaPlace,
        options: &JoinOptions,
    ) -> Result<AsyncMessenger, MsgError> {
        let (space, place, options) = (space.to_string(), place.clone(), options.clone());
        let m = tokio::task::spawn_blocking(move || Messenger::join(&space, &place, &options))
            .await
            .or_else(gone)??;
        Ok(AsyncMessenger { inner: Arc::new(m) })
    }

    /// [`Messenger::send`].
    pub async fn send(&self, payload: Vec<u8>) -> Result<u64, MsgError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.send(&payload))
            .await
            .or_else(gone)?
    }

    /// [`Messenger::recv`].
    pub async fn recv(&self) -> Result<Message, MsgError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.recv())
            .await
            .or_else(gone)?
    }

    /// Our host_id.
    pub fn host_id(&self) -> u64 {
        self.inner.host_id()
    }
}
